"""Predictions: can I trust this model? Its test scores, its mistakes, why it decides, and new items.

Everything about the test split is derived from the predictions stored in eval.json
(core.evaluation.report), so the page opens without TensorFlow. The model is loaded only when the
viewer classifies items or asks for the embedding view (core.evaluation / core.interpret,
imported lazily), and it is kept in this browser session only: nothing of one viewer is cached
globally. How items are shown, handed in and explained is asked of the run's kind of data (`pages._kinds`).
"""

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.engine import evaluation, interpret
from core.errors import DatasetError, TransferLabError
from core.spec import kinds as spec_kinds
from core.service import jobs
from core.store import datasets, files, runs
from pages import _charts as charts
from pages import _common
from pages import _domain, _explainers, _kinds

# Percentages with one decimal, as in the figures above the tables (Streamlit's "percent" shows two).
PERCENT = st.column_config.NumberColumn(format="%.1f%%")


def percent(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Shares (0-1) in these columns as percentages (0-100), for PERCENT columns."""
    return frame.assign(**{c: frame[c] * 100 for c in columns if c in frame})
GALLERY = 12


# ---------------------------------------------------------------- state


def run_ui(done: list[runs.RunInfo], ws: Path) -> runs.RunInfo:
    """Choose a finished run (the active one first, else the most accurate of the dataset in hand)."""
    return _common.run_picker(done, "pred.run", "Finished run", ws=ws, help="Runs that trained to the end.")


def dataset_ui(run: runs.RunInfo, ws: Path) -> None:
    """The dataset in hand, and the run's own dataset when it is another one."""
    info = _common.selected_dataset(ws)
    if info is not None:
        _common.hand_ui(info)
    if run.config is not None and (info is None or run.config.dataset_id != info["id"]):
        names = {d["id"]: d["name"] for d in datasets.list_datasets(ws)}
        st.caption(f"This run was trained on **{names.get(run.config.dataset_id, run.config.dataset_id)}**, not on the "
                   "dataset in hand.")


def dataset_root(run: runs.RunInfo) -> Path | None:
    """The run's dataset folder, or None when it is no longer in the workspace."""
    if run.config is None:
        return None
    try:
        return datasets.dataset_path(run.config.dataset_id, run.path.parent.parent)
    except DatasetError:
        return None


def session_model(run: runs.RunInfo) -> Any:
    """The run's model, loaded once and kept in this browser session (one model at a time)."""

    path = run.path / "model.keras"
    key = (str(path), path.stat().st_mtime_ns)
    held = st.session_state.get("pred.model")
    if held is None or held[0] != key:
        st.session_state.pop("pred.model", None)  # let the previous run's model go first
        with st.spinner("Loading the model (the first time takes a few seconds)…"):
            st.session_state["pred.model"] = (key, evaluation.load_model(run.path))
    return st.session_state["pred.model"][1]


def show_items(kind: spec_kinds.Kind, root: Path | None, files: list[str], captions: list[str],
               detailed: bool = False) -> None:
    """A gallery of dataset items (`detailed`: clips with their spectrograms), or a sentence when the dataset is gone."""
    _kinds.show_stored(kind, root, files, captions,
                       f"The run's dataset is no longer in the workspace, so its {kind.items} cannot be shown.", detailed=detailed)


# ---------------------------------------------------------------- test results


def headline_ui(rep: dict[str, Any], kind: spec_kinds.Kind) -> None:
    """The test accuracy and F1 scores in a row of figures."""
    cols = st.columns(5)
    cols[0].metric("Test accuracy", f"{rep['accuracy']:.1%}", help=f"Share of test {kind.items} whose class was guessed right.")
    cols[1].metric("Macro F1", f"{rep['macro']['f1-score']:.1%}",
                   help="F1 (precision and recall in one number, see below) averaged over the classes, each class "
                        "counting the same, so a weak rare class shows.")
    cols[2].metric("Weighted F1", f"{rep['weighted']['f1-score']:.1%}",
                   help=f"F1 averaged over the classes, each weighted by its number of test {kind.items}.")
    auc = rep.get("roc_auc")
    cols[3].metric("ROC-AUC", "-" if auc is None else f"{auc:.3f}",
                   help=f"Area under the ROC curve: how well the model's probabilities rank {kind.items} of a class above "
                        "the others, at any threshold. 1 is perfect, 0.5 is guessing. With more than two classes: "
                        "each class against the rest, averaged.")
    cols[4].metric(f"Test {kind.items}", rep.get("n", "-"), help=f"{kind.label} held back from training and used only for this check.")
    if rep.get("roc_auc_note"):
        st.caption(rep["roc_auc_note"])


def scores_ui(rep: dict[str, Any], kind: spec_kinds.Kind) -> None:
    """Averaged and per-class precision/recall/F1 and ROC-AUC, with ROC curves."""
    st.caption(
        f"**Precision**: when the model says 'this class', how often it is right. **Recall**: of the {kind.items} "
        "that really are this class, how many it finds. **F1** combines the two into one number."
    )
    averages = pd.DataFrame([
        {"average": name, "precision": rep[key]["precision"], "recall": rep[key]["recall"], "F1": rep[key]["f1-score"]}
        for key, name in (("macro", "macro (every class counts the same)"),
                          ("weighted", f"weighted (by test {kind.items} per class)"))
    ])
    st.dataframe(percent(averages, "precision", "recall", "F1"), hide_index=True, width="stretch",
                 column_config={"precision": PERCENT, "recall": PERCENT, "F1": PERCENT})
    left, right = st.columns([1, 1])
    with left:
        st.markdown("**Per class**")
        per_class = pd.DataFrame(rep["per_class"]).rename(columns={"f1": "F1", "support": f"test {kind.items}", "auc": "AUC"})
        st.dataframe(percent(per_class, "precision", "recall", "F1"), hide_index=True, width="stretch",
                     column_config={"precision": PERCENT, "recall": PERCENT, "F1": PERCENT,
                                    "AUC": st.column_config.NumberColumn(format="%.3f", help="ROC-AUC of this class "
                                                                         "against all others.")})
    with right:
        if rep.get("roc_curves"):
            st.plotly_chart(charts.roc_curves(rep["roc_curves"]), width="stretch", key="pred.roc")
            st.caption(f"A curve hugging the top-left corner means the model ranks this class's {kind.items} above "
                       "the others at almost every threshold; the dashed diagonal is guessing.")


def confusion_ui(rep: dict[str, Any], root: Path | None, kind: spec_kinds.Kind) -> None:
    """The confusion matrix; clicking a cell (or the selector beside it) shows that cell's items."""
    left, right = st.columns([3, 2])
    cells = rep["cells"]
    with left:
        event = st.plotly_chart(charts.confusion_matrix(rep["confusion_matrix"], rep["classes"]), width="stretch",
                                key="pred.confusion", on_select="rerun", selection_mode="points")
        st.caption("**Confusion matrix**: each row is the true class, each column the class the model guessed; "
                   f"the diagonal holds the right answers, everything else a mix-up. Click a cell to see its {kind.items}.")
    with right:
        if not cells:
            st.caption(f"This evaluation has no stored per-{kind.item} predictions, so its cells cannot be opened.")
            return
        clicked = charts.clicked_cell(event, cells)
        if clicked is not None and st.session_state.get("pred.cell_clicked") != clicked:
            # A new click moves the selector; afterwards the selector can be changed on its own again.
            st.session_state["pred.cell_clicked"] = clicked
            st.session_state["pred.cell"] = clicked
        labels = {i: f"true {c['true']} → guessed {c['predicted']} ({c['count']})" for i, c in enumerate(cells)}
        chosen = st.selectbox(f"Show the {kind.items} of one cell", list(labels), format_func=labels.get,
                              key="pred.cell", help="Mix-ups come first, the biggest first.")
        cell = cells[chosen]
        show_items(kind, root, cell["files"][:GALLERY], [Path(f).name for f in cell["files"][:GALLERY]])
        if cell["count"] > GALLERY:
            st.caption(f"The first {GALLERY} of {cell['count']} {kind.items}.")


def mistakes_ui(rep: dict[str, Any], root: Path | None, kind: spec_kinds.Kind) -> None:
    """Most-confused class pairs, the items with the highest loss, and confidence of right vs wrong answers."""
    pairs = rep["most_confused"]
    st.markdown("**Most-confused pairs**")
    if pairs:
        st.dataframe(percent(pd.DataFrame(pairs).rename(columns={"count": f"test {kind.items}",
                                                                "share": "share of the true class"}),
                             "share of the true class"),
                     hide_index=True, width="stretch",
                     column_config={"share of the true class": PERCENT})
    else:
        st.caption(f"No test {kind.item} was taken for another class.")
    losses = rep["top_losses"]
    if losses:
        wrong = [r for r in losses if not r["correct"]]
        if wrong:
            st.markdown(f"**Confident mistakes**: the wrongly classified test {kind.items} the model was most sure about")
            shown = wrong[:GALLERY]
            show_items(kind, root, [r["file"] for r in shown],
                       [f"true {r['true']} ({r['p_true']:.0%}), guessed {r['predicted']} ({r['p_predicted']:.0%})"
                        for r in shown], detailed=True)
        else:
            st.markdown(f"**Confident mistakes**: none, every test {kind.item} was classified right. The least sure right "
                        "answers are in the table below.")
        with st.expander(f"All of the {len(losses)} highest losses as a table"):
            st.dataframe(percent(pd.DataFrame(losses).rename(columns={"p_true": "probability of the true class",
                                                                       "p_predicted": "probability of the guess"}),
                                 "probability of the true class", "probability of the guess"),
                         hide_index=True, width="stretch",
                         column_config={"probability of the true class": PERCENT, "probability of the guess": PERCENT,
                                        "loss": st.column_config.NumberColumn(
                                            format="%.3f", help="How wrong the answer was: it grows as the probability "
                                                                "given to the true class falls (-log of it).")})
        conf = rep["confidence"]
        st.plotly_chart(charts.confidence_histogram(conf["confidence"], conf["correct"]), width="stretch",
                        key="pred.confidence")
        st.caption("A model you can trust is sure when it is right and unsure when it is wrong: "
                   "wrong answers bunched at high probability are confident mistakes.")


def curves_ui(run: runs.RunInfo, ws: Path) -> None:
    """The run's training and validation curves, with a sentence when it started to overfit."""

    history = jobs.progress(run.id, ws)["history"]
    if not history:
        st.caption("This run recorded no epochs.")
        return
    hint = evaluation.overfitting_hint(history)
    if hint:
        st.warning(hint)
    _common.curves_ui(history, "pred")


# ---------------------------------------------------------------- new items


def try_ui(run: runs.RunInfo, kind: spec_kinds.Kind) -> None:
    """Classify the viewer's own items (top-k bars), each explained the kind's way (images: a Grad-CAM heatmap)."""
    explains = _explainers.explainer(kind)
    st.subheader(f"Try it on your own {kind.items}")
    st.caption(explains.about)
    if not (run.path / "model.keras").is_file():
        st.info(f"This run has no saved model file, so it cannot classify new {kind.items}.")
        return
    handed = _kinds.hand_in_ui(kind)
    if not handed:
        return

    wanted = (run.id, tuple(i for i, _, _ in handed))
    cached = st.session_state.get("pred.results")
    if cached and cached[0] == wanted:
        results, explained = cached[1], cached[2]
    else:
        model = session_model(run)
        with st.spinner("Classifying…"):
            results = evaluation.predict(run.path, [(name, data) for _, name, data in handed], top_k=5, model=model)
            classes = files.read_json(run.path / "split.json")["classes"]
            explained = [
                _explainers.explain_one(kind, model, data, run.config.image_size, classes.index(r["prediction"]))
                if "prediction" in r and n < explains.shown_at_most and run.config is not None else None
                for n, ((_, _, data), r) in enumerate(zip(handed, results))
            ]
        st.session_state["pred.results"] = (wanted, results, explained)
    for i, ((_, name, data), result, why) in enumerate(zip(handed, results, explained)):
        if "error" in result:
            st.warning(result["error"])
            continue
        left, middle, right = st.columns([1, 2, 1])
        with left:
            _kinds.gallery(kind).handed(data, name, 160)
        best = result["top"][0]
        middle.markdown(f"**{result['prediction']}** ({best['probability']:.0%} sure)")
        middle.plotly_chart(charts.probabilities(result["top"]), width="stretch", key=f"pred.probabilities.{i}")
        if why and "unavailable" in why:
            right.caption(why["unavailable"])
        elif why:
            explains.show(right, why, result["prediction"], i)
    if explains.shown_at_most and len(handed) > explains.shown_at_most:
        st.caption(explains.more_note.format(n=explains.shown_at_most, items=kind.items))
    timelines_ui(run, kind, handed)


def timelines_ui(run: runs.RunInfo, kind: spec_kinds.Kind, handed: list[tuple[str, str, bytes]]) -> None:
    """For a handed-in recording longer than what the model hears at once (sounds): the top class per window."""
    if _explainers.explainer(kind).timeline is None:
        return
    wanted = (run.id, tuple(i for i, _, _ in handed))
    cached = st.session_state.get("pred.timelines")
    if not cached or cached[0] != wanted:
        classes = files.read_json(run.path / "split.json")["classes"]
        model = session_model(run)
        cached = (wanted, [_explainers.timeline_one(kind, model, data, classes) for _, _, data in handed])
        st.session_state["pred.timelines"] = cached
    for i, ((_, name, _), rows) in enumerate(zip(handed, cached[1])):
        if rows:
            st.markdown(f"**{name}**: the top class second by second")
            _explainers.show_timeline(rows, key=f"pred.timeline.{i}")


def batch_ui(run: runs.RunInfo, kind: spec_kinds.Kind) -> None:
    """Classify a zip of items and download the answers as CSV."""
    if not (run.path / "model.keras").is_file():
        return
    st.subheader("Classify a whole folder")
    upload = st.file_uploader(f"A .zip of {kind.items}", type=["zip"], key="pred.zip",
                              help=f"A zip of {_kinds.own_items(kind)} (folders inside are fine). Nothing is unpacked "
                                   f"to disk; files that are not {kind.items} are listed as skipped.")
    if upload is None:
        return

    cached = st.session_state.get("pred.batch")
    if cached and cached[0] == (run.id, upload.file_id):
        results, skipped = cached[1], cached[2]
    else:
        try:
            items, skipped = evaluation.images_from_zip(upload.getvalue())
        except TransferLabError as exc:
            st.error(str(exc))
            return
        model = session_model(run)
        with st.spinner(f"Classifying {len(items)} {kind.items}…"):
            results = evaluation.predict(run.path, items, top_k=3, model=model)
        st.session_state["pred.batch"] = ((run.id, upload.file_id), results, skipped)
    ok = [r for r in results if "prediction" in r]
    st.markdown(f"**{len(ok)}** {kind.items if len(ok) != 1 else kind.item} classified.")
    table = pd.DataFrame([{"file": r["file"], "prediction": r["prediction"], "probability": r["top"][0]["probability"]}
                          for r in ok])
    if not table.empty:
        st.dataframe(percent(table, "probability"), hide_index=True, width="stretch",
                     column_config={"probability": PERCENT})
    st.download_button("Download the predictions (CSV)", evaluation.predictions_csv(results),
                       file_name=f"predictions-{run.id}.csv", mime="text/csv", key="pred.csv",
                       icon=":material/download:",
                       help="A table for spreadsheets: each file, its predicted class and how sure the model is, "
                            "with its next guesses.")
    problems = [r["error"] for r in results if "error" in r] + [f"{s['file']}: {s['reason']}" for s in skipped]
    if problems:
        with st.expander(f"{len(problems)} file(s) skipped"):
            st.markdown("\n".join(f"- {p}" for p in problems))


# ---------------------------------------------------------------- embedding view


def embedding_ui(run: runs.RunInfo, root: Path | None, kind: spec_kinds.Kind) -> None:
    """A 2-D map of the backbone's features of the dataset items, coloured by class, with suspects listed."""

    st.caption(f"Each dot is one {kind.item} of the dataset, placed by what the backbone sees in it: {kind.items} the model "
               "finds alike sit together. A dot deep inside another class's cloud may carry the wrong label.")
    emb = interpret.load_embeddings(run.path)
    if emb is None:
        if not (run.path / "model.keras").is_file():
            st.info("This run has no saved model file, so there are no features to map.")
            return
        if not st.button("Compute the embedding view", key="pred.embed", icon=":material/scatter_plot:",
                         help=f"Runs the backbone over up to {interpret.MAX_EMBEDDED:,} dataset {kind.items} and projects "
                              "them to 2-D; it takes a while once, then it is kept with the run."):
            return
        try:
            with st.spinner(f"Computing the features of the dataset {kind.items} and their 2-D map…"):
                emb = interpret.compute_embeddings(run.path, model=session_model(run))
        except TransferLabError as exc:
            st.error(str(exc))
            return
    method = st.radio("Projection", list(emb["projections"]), horizontal=True, key="pred.projection",
                      help=f"Two ways to flatten the backbone's many numbers per {kind.item} onto a page. PCA keeps the "
                           "broad layout; t-SNE keeps close neighbours close and shows clusters better.")
    labels = [emb["classes"][i] for i in emb["labels"]]
    hover = [f"{f} ({labels[i]}, {emb['splits'][i]})" for i, f in enumerate(emb["files"])]
    flagged = [m["index"] for m in emb["mislabeled"]]
    left, right = st.columns([3, 1])
    with left:
        event = st.plotly_chart(
            charts.embedding_scatter(emb["projections"][method], labels, emb["classes"], hover, flagged,
                                     title=f"{method} of the backbone features ({len(labels)} {kind.items})"),
            width="stretch", key="pred.embedding", on_select="rerun", selection_mode="points")
    points = event["selection"]["points"] if event else []
    with right:
        if points and isinstance(points[0].get("customdata"), int):
            i = points[0]["customdata"]
            show_items(kind, root, [emb["files"][i]], [hover[i]])
        else:
            st.caption(f"Click a dot to see its {kind.item} here.")
    suspects = emb["mislabeled"]
    st.markdown(f"**Possibly mislabeled** ({len(suspects)})")
    if not suspects:
        st.caption(f"No {kind.item} sits among neighbours that are mostly of another class.")
        return
    st.caption(f"{kind.label} whose closest neighbours in feature space are mostly of one other class. Check them: "
               "a wrong label teaches the model the wrong thing. (On a weak model this list is noisy.)")
    names = {n: f"{m['file']}: labelled {m['label']}, neighbours say {m['neighbours_say']} ({m['agreement']:.0%})"
             for n, m in enumerate(suspects)}
    pick = st.selectbox("Look at one", list(names), format_func=names.get, key="pred.suspect",
                        help=f"Shows the chosen {kind.item}, so you can check its label by eye.")
    show_items(kind, root, [suspects[pick]["file"]], [names[pick]])


# ---------------------------------------------------------------- page


def page() -> None:
    ws = _common.workspace()
    st.title("Predictions")
    done = [r for r in runs.list_runs(ws) if r.state == "done"]
    if not done:
        st.info("No run has finished training yet. Start one on the Train page.")
        _common.link_to("pages/train.py", "Go to the Train page", ":material/monitoring:")
        return
    run = run_ui(done, ws)
    root = dataset_root(run)
    kind = _kinds.of_run(run)
    dataset_ui(run, ws)
    # The first tab opens with the score and the confusion matrix: no tab click needed to see them.
    scores, mistakes, training, trying, embedding = st.tabs(
        ["Test scores and confusion matrix", "Mistakes", "Training curves", "Try it", "Embedding view"])
    rep = None
    if run.evaluation:
        rep = evaluation.report(run.evaluation)
    with scores:
        st.subheader(f"How well it does on {kind.items} it never saw")
        if rep is None:
            st.warning("This run has no test evaluation (its eval.json is missing or unreadable).")
        else:
            headline_ui(rep, kind)
            # The same verdict as the Train page: against guessing and the baseline of its method, never green
            # when near chance or far below that baseline.
            _common.verdict_ui(run.path)
            confusion_ui(rep, root, kind)
            scores_ui(rep, kind)
            _domain.target_metrics_ui(rep, run.status)
            _domain.domain_map_ui(run, session_model)
    with mistakes:
        if rep is None:
            st.caption("Without a test evaluation there are no mistakes to show.")
        else:
            mistakes_ui(rep, root, kind)
    with training:
        curves_ui(run, ws)
    with trying:
        try_ui(run, kind)
        batch_ui(run, kind)
    with embedding:
        embedding_ui(run, root, kind)


_common.guarded(page)
