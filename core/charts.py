"""Plotly figure builders: pure functions from data to go.Figure (the only core module using plotly)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go


def class_counts(counts: dict[str, int]) -> go.Figure:
    """Bar chart of images per class."""
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()), text=list(counts.values()), textposition="auto"))
    fig.update_layout(title="Images per class", xaxis_title="class", yaxis_title="images", height=320,
                      margin=dict(t=40, b=40, l=40, r=10))
    return fig


def training_curves(history: list[dict[str, Any]], metric: str = "loss") -> go.Figure:
    """Train vs validation curve of one metric over all epochs, with phase boundaries marked."""
    x = list(range(1, len(history) + 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[h.get(metric) for h in history], mode="lines+markers", name=f"training {metric}"))
    fig.add_trace(go.Scatter(x=x, y=[h.get(f"val_{metric}") for h in history], mode="lines+markers",
                             name=f"validation {metric}"))
    for i in range(1, len(history)):
        if history[i]["phase"] != history[i - 1]["phase"]:
            fig.add_vline(x=i + 0.5, line_dash="dash", line_color="grey",
                          annotation_text=history[i]["phase"], annotation_position="top")
    fig.update_layout(title=metric.capitalize(), xaxis_title="epoch", height=320, uirevision=metric,
                      margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


def confusion_matrix(matrix: list[list[int]], classes: list[str]) -> go.Figure:
    """Heatmap of true (rows) against predicted (columns) classes, with counts."""
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", text=matrix,
                               texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(title="Confusion matrix", xaxis_title="predicted class", yaxis_title="true class",
                      yaxis_autorange="reversed", height=400, margin=dict(t=40, b=40, l=40, r=10))
    return fig


def probabilities(top: list[dict[str, Any]]) -> go.Figure:
    """Horizontal bars of class probabilities for one prediction."""
    fig = go.Figure(go.Bar(x=[t["probability"] for t in top][::-1], y=[t["class"] for t in top][::-1], orientation="h",
                           text=[f"{t['probability']:.0%}" for t in top][::-1], textposition="auto"))
    fig.update_layout(xaxis_range=[0, 1], xaxis_title="probability", height=60 + 40 * len(top),
                      margin=dict(t=10, b=30, l=10, r=10))
    return fig
