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


def phase_short(name: str) -> str:
    """A training phase in a word or two, for chart marks and log lines ("fine-tuning", not "fine_tune")."""
    if name.startswith("unfreeze_") and name.removeprefix("unfreeze_").isdigit():
        k = int(name.removeprefix("unfreeze_"))
        return f"top {k} group{'s' if k > 1 else ''} open"
    return {"head": "new classifier", "fine_tune": "fine-tuning", "scratch": "from scratch",
            "train_all": "whole network", "unfreeze_stem": "all groups open", "difference": "new layers",
            "distill": "learning", "distill_head": "learning", "distill_fine_tune": "fine-tuning",
            "adapt": "adapting", "adapt_fine_tune": "fine-tuning", "prune": "pruning"}.get(name, name.replace("_", " "))


def training_curves(history: list[dict[str, Any]], metric: str = "loss") -> go.Figure:
    """Train vs validation curve of one metric over all epochs, with phase boundaries marked."""
    x = list(range(1, len(history) + 1))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[h.get(metric) for h in history], mode="lines+markers", name=f"training {metric}"))
    fig.add_trace(go.Scatter(x=x, y=[h.get(f"val_{metric}") for h in history], mode="lines+markers",
                             name=f"validation {metric}"))
    boundaries = [i for i in range(1, len(history)) if history[i]["phase"] != history[i - 1]["phase"]]
    for k, i in enumerate(boundaries):
        # Alternate sides so the names of nearby boundaries do not print over each other.
        fig.add_vline(x=i + 0.5, line_dash="dash", line_color="grey", annotation_text=phase_short(history[i]["phase"]),
                      annotation_position="top right" if k % 2 == 0 else "bottom right", annotation_font_size=11)
    fig.update_xaxes(dtick=1 if len(history) <= 20 else None)  # whole epochs only
    fig.update_layout(title=metric.capitalize(), xaxis_title="epoch", height=320, uirevision=metric,
                      margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


def confusion_matrix(matrix: list[list[int]], classes: list[str]) -> go.Figure:
    """Heatmap of true (rows) against predicted (columns) classes, with counts.

    Plotly heatmaps report no click selection to Streamlit (streamlit#8760), so a layer of square,
    almost transparent markers, one per cell, takes the clicks; a clicked cell is outlined.
    """
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Blues", text=matrix,
                               texttemplate="%{text}", hoverinfo="skip"))
    n = max(1, len(classes))
    fig.add_trace(go.Scatter(
        x=[p for _ in classes for p in classes], y=[t for t in classes for _ in classes], mode="markers",
        customdata=[matrix[i][j] for i in range(len(classes)) for j in range(len(classes))],
        marker=dict(symbol="square", size=max(10, 280 // n), color="rgba(0,0,0,0)",
                    line=dict(width=0)),
        selected=dict(marker=dict(color="rgba(255,140,0,0.35)")), unselected=dict(marker=dict(opacity=1)),
        hovertemplate="true %{y}, predicted %{x}: %{customdata} (click to see the images)<extra></extra>",
        showlegend=False, name="cells"))
    fig.update_layout(title="Confusion matrix", xaxis_title="predicted class", yaxis_title="true class",
                      yaxis_autorange="reversed", height=400, margin=dict(t=40, b=40, l=40, r=10))
    return fig


def clicked_cell(selection: Any, cells: list[dict[str, Any]]) -> int | None:
    """The index in cells ({"true", "predicted", ...}) of the confusion_matrix cell a click selected, or None."""
    points = (selection or {}).get("selection", {}).get("points") or []
    for point in points:
        for i, c in enumerate(cells):
            if (c["true"], c["predicted"]) == (point.get("y"), point.get("x")):
                return i
    return None


def probabilities(top: list[dict[str, Any]]) -> go.Figure:
    """Horizontal bars of class probabilities for one prediction."""
    fig = go.Figure(go.Bar(x=[t["probability"] for t in top][::-1], y=[t["class"] for t in top][::-1], orientation="h",
                           text=[f"{t['probability']:.0%}" for t in top][::-1], textposition="auto"))
    fig.update_layout(xaxis_range=[0, 1], xaxis_title="probability", height=60 + 40 * len(top),
                      margin=dict(t=10, b=30, l=10, r=10))
    return fig


def roc_curves(curves: list[dict[str, Any]]) -> go.Figure:
    """ROC curves (one per class, one-vs-rest; a single one for two classes), with the chance diagonal."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"),
                             name="chance", hoverinfo="skip"))
    for c in curves:
        fig.add_trace(go.Scatter(x=c["fpr"], y=c["tpr"], mode="lines", name=f"{c['class']} (AUC {c['auc']:.3f})",
                                 hovertemplate="false positives %{x:.0%}, true positives %{y:.0%}<extra></extra>"))
    fig.update_layout(title="ROC curves", xaxis_title="false positive rate", yaxis_title="true positive rate",
                      xaxis_range=[0, 1], yaxis_range=[0, 1.02], height=400, margin=dict(t=40, b=40, l=40, r=10),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def confidence_histogram(confidence: list[float], correct: list[bool]) -> go.Figure:
    """How sure the model was of its answer, for right and for wrong answers (overlaid histograms)."""
    fig = go.Figure()
    for flag, name, colour in ((True, "right", "#2ca02c"), (False, "wrong", "#d62728")):
        values = [c for c, ok in zip(confidence, correct) if ok is flag]
        fig.add_trace(go.Histogram(x=values, name=f"{name} ({len(values)})", marker_color=colour, opacity=0.7,
                                   xbins=dict(start=0, end=1.0001, size=0.05)))
    fig.update_layout(title="Confidence of right and wrong answers", barmode="overlay", xaxis_range=[0, 1],
                      xaxis_title="probability of the predicted class", yaxis_title="test images", height=320,
                      margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


# Ten clearly different colours (Tableau 10) for classes: the theme's default puts two similar blues side by side.
CLASS_COLOURS = ("#4E79A7", "#F28E2B", "#E15759", "#59A14F", "#B07AA1", "#EDC948", "#76B7B2", "#FF9DA7", "#9C755F",
                 "#BAB0AC")


def embedding_scatter(points: Any, labels: list[str], classes: list[str], hover: list[str],
                      flagged: list[int] | None = None, title: str = "") -> go.Figure:
    """2-D map of images coloured by class; customdata holds each point's index, flagged points are ringed."""
    fig = go.Figure()
    for k, name in enumerate(classes):
        idx = [i for i, label in enumerate(labels) if label == name]
        fig.add_trace(go.Scatter(x=[float(points[i][0]) for i in idx], y=[float(points[i][1]) for i in idx],
                                 mode="markers", name=name, customdata=idx, text=[hover[i] for i in idx],
                                 marker=dict(size=7, opacity=0.8, color=CLASS_COLOURS[k % len(CLASS_COLOURS)]),
                                 hovertemplate="%{text}<extra></extra>"))
    if flagged:
        fig.add_trace(go.Scatter(x=[float(points[i][0]) for i in flagged], y=[float(points[i][1]) for i in flagged],
                                 mode="markers", name="possibly mislabeled", customdata=list(flagged),
                                 text=[hover[i] for i in flagged], hovertemplate="%{text}<extra></extra>",
                                 marker=dict(size=14, symbol="circle-open", color="black", line=dict(width=2))))
    fig.update_layout(title=title, height=480, xaxis=dict(showticklabels=False, title=None),
                      yaxis=dict(showticklabels=False, title=None), margin=dict(t=40, b=10, l=10, r=10),
                      legend=dict(orientation="h", y=-0.05), uirevision=title)
    return fig


def gradcam_overlay(image: Any, heatmap: Any, title: str = "") -> go.Figure:
    """An RGB image (H, W, 3 uint8) with a Grad-CAM heatmap (H, W, 0-1) laid over it, half transparent."""
    fig = go.Figure(go.Image(z=image, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=heatmap, colorscale="Jet", opacity=0.45, zmin=0, zmax=1, showscale=False,
                             hovertemplate="attention %{z:.0%}<extra></extra>"))
    fig.update_layout(title=title, height=300, margin=dict(t=30 if title else 0, b=0, l=0, r=0),
                      xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"))
    return fig


def image_sizes(sizes: list[list[int]]) -> go.Figure:
    """Original image sizes (width against height); identical sizes are one marker sized by how many share it."""
    shared: dict[tuple[int, int], int] = {}
    for w, h in sizes:
        shared[(w, h)] = shared.get((w, h), 0) + 1
    keys = list(shared)
    n = [shared[k] for k in keys]
    top = max(n, default=1)
    fig = go.Figure(go.Scatter(
        x=[k[0] for k in keys], y=[k[1] for k in keys], mode="markers",
        marker=dict(size=[6 + 24 * (c / top) ** 0.5 for c in n], opacity=0.6),
        customdata=n, hovertemplate="%{x} × %{y} px: %{customdata} image(s)<extra></extra>",
    ))
    fig.update_layout(title="Image sizes (as uploaded)", xaxis_title="width (px)", yaxis_title="height (px)",
                      height=320, margin=dict(t=40, b=40, l=40, r=10))
    return fig


def split_counts(counts: dict[str, dict[str, int]]) -> go.Figure:
    """Stacked bars of training, validation and test images per class."""
    classes = list(counts)
    fig = go.Figure([
        go.Bar(name=name, x=classes, y=[counts[c][part] for c in classes], text=[counts[c][part] for c in classes],
               textposition="inside")
        for part, name in (("train", "training"), ("val", "validation"), ("test", "test"))
    ])
    fig.update_layout(title="Images per class in each part of the split", barmode="stack", xaxis_title="class",
                      yaxis_title="images", height=320, margin=dict(t=40, b=40, l=40, r=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def overlaid_curves(series: list[tuple[str, list[dict[str, Any]]]], metric: str, title: str) -> go.Figure:
    """One line per run of one metric over its epochs (all phases in a row), to compare runs' learning."""
    fig = go.Figure()
    for name, history in series:
        fig.add_trace(go.Scatter(x=list(range(1, len(history) + 1)), y=[h.get(metric) for h in history],
                                 mode="lines+markers", name=name,
                                 hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>"))
    # A legend even for one line, so the line is named; the axis says the metric in words.
    fig.update_layout(title=title, xaxis_title="epoch (all phases)", yaxis_title=title.lower(), height=360,
                      uirevision=metric, margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25),
                      showlegend=True)
    return fig


def _padded(values: list[float], share: float) -> list[float] | None:
    """An axis range around the values with a margin of `share` of their spread on each side."""
    if not values:
        return None
    low, high = min(values), max(values)
    pad = (high - low) * share or abs(high) * share or 1.0
    return [low - pad, high + pad]


def runs_scatter(points: list[dict[str, Any]], x: str, y: str, x_title: str, y_title: str, title: str,
                 log_x: bool = False) -> go.Figure:
    """Runs as labelled points (x against y); points marked `selected` are drawn larger and outlined."""
    shown = [p for p in points if p.get(x) is not None and p.get(y) is not None]
    fig = go.Figure(go.Scatter(
        x=[p[x] for p in shown], y=[p[y] for p in shown], mode="markers+text",
        text=[p.get("label", "") for p in shown], textposition="top center", cliponaxis=False,
        customdata=[p.get("hover", p.get("label", "")) for p in shown],
        marker=dict(size=[16 if p.get("selected") else 10 for p in shown],
                    line=dict(width=[2 if p.get("selected") else 0 for p in shown], color="black")),
        hovertemplate="%{customdata}<br>" + x_title + ": %{x:.3g}<br>" + y_title + ": %{y:.1%}<extra></extra>",
    ))
    # Room around the points, so labels at the edges are not cut off.
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=360,
                      margin=dict(t=50, b=40, l=50, r=40), xaxis_type="log" if log_x else None,
                      yaxis_tickformat=".0%")
    fig.update_yaxes(range=_padded([p[y] for p in shown], 0.08))
    if not log_x:
        fig.update_xaxes(range=_padded([p[x] for p in shown], 0.12))
    return fig


_PHASE_STATES = {"frozen": (0, "frozen"), "partly": (1, "partly trains"), "trainable": (2, "trains")}


def strategy_phases(table: dict[str, Any], title: str = "") -> go.Figure:
    """A strategy's picture: layer groups (rows, the head on top) frozen or trainable in each phase (columns)."""
    z = [[_PHASE_STATES[c][0] for c in row] for row in table["cells"]]
    text = [[_PHASE_STATES[c][1] for c in row] for row in table["cells"]]
    columns = [f"{i}. {name}" for i, name in enumerate(table["phases"], start=1)]
    hover = [[f"{label}" for label in table["labels"]] for _ in table["rows"]]
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=table["rows"], text=text, texttemplate="%{text}", customdata=hover, zmin=0, zmax=2,
        colorscale=[[0, "#d9dee6"], [0.5, "#9ecae1"], [1, "#2b8cbe"]], showscale=False, xgap=3, ygap=3,
        hovertemplate="%{y} in phase %{x}: %{text}<br>%{customdata}<extra></extra>",
    ))
    fig.update_layout(title=title or "What trains in each phase", xaxis_title="phase", yaxis_autorange="reversed",
                      height=120 + 34 * len(table["rows"]), margin=dict(t=40, b=40, l=10, r=10))
    return fig
