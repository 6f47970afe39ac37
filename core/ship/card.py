"""The text that travels with a model: the model card (data, settings, every metric, intended use and
limits) and the README of the training-code export."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from core.engine import distill, features, methods, transfer
from core.errors import TransferLabError
from core.ship import codegen, runfiles
from core.spec import backbones, strategies
from core.spec import kinds as spec_kinds
from core.spec.config import RunConfig
from core.store import datasets, runs
from core.store.files import read_json

README_CLASSES = 12  # class folders the code export's README draws; CLASS_DIRS in train.py has them all


def _installed_version(*names: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


SOUND_CODE_README = (
    "# Training code of a sound run\n\n`train.py` does not train this run: TransferLab writes standalone training "
    "scripts for sounds on a log-mel backbone with a plain strategy (from scratch, feature extraction, fine-tuning), "
    "and this run uses a TF Hub sound model or a teacher, source run or target domain. It takes one second of 16 kHz "
    "sound as a float waveform, with its front end inside the model; retrain it with TransferLab (`python -m core "
    "train config.json`). `config.json`, `split.json` and `labels.txt` describe the run.\n")
SOUND_SCRIPT_README = (
    "# Training code of a sound run\n\n`train.py` trains this run's model with plain tf_keras (`pip install "
    "tensorflow tf_keras`): one class folder of clips per class, each clip a 16 kHz mono WAV of one second (the "
    "way TransferLab stores them: use the dataset's folder from its workspace), the same log-mel front end inside "
    "the model (its code copied from TransferLab) and the same phases.\n\n"
    "    python train.py DATA_DIR OUT_DIR\n\n"
    "With `split.json` beside the clips it trains on this run's own split. It writes `model.keras` (taking the "
    "waveform) and `labels.txt` to OUT_DIR. `config.json` holds the run's settings.\n")
TEXT_CODE_README = (
    "# Training code of a text run\n\n`train.py` does not train: TransferLab writes standalone training scripts for "
    "images and sounds, not texts. This run takes texts, with its encoder inside the model; retrain it with TransferLab "
    "(`python -m core train config.json`). `config.json`, `split.json` and `labels.txt` describe the run.\n")


def code_readme(run_dir: Path, data_folder: str, source_folder: str) -> str:
    """README.md of the code export: what is in it, what to install, the image folder layout, the command."""
    config = runs.load_config(run_dir)
    ws = run_dir.parent.parent
    spec = backbones.get(config.backbone)
    if spec.front_end or spec.kind == "text":  # a sound script, or one that says why it does not train
        if codegen.script_trains(config):
            return SOUND_SCRIPT_README
        return SOUND_CODE_README if spec.front_end else TEXT_CODE_README
    strategy = strategies.get(config.strategy)
    names = runfiles.classes(run_dir)
    try:
        dirs = datasets.load_dataset(config.dataset_id, ws).get("class_dirs", {})
    except TransferLabError:
        dirs = {}
    folders = [dirs.get(name, name) for name in names]
    packages = ["tensorflow", "tf_keras"] + (["tensorflow-hub"] if spec.hub_handle else [])
    versions = {"tensorflow": _installed_version("tensorflow", "tensorflow-cpu"), "tf_keras": _installed_version("tf_keras"),
                "tensorflow-hub": _installed_version("tensorflow_hub")}
    pinned = [f"{p}=={versions[p]}" for p in packages if versions.get(p)]
    source = _source_description(config, ws)
    shipped = source is not None and features.source_weights_file(ws, config).is_file()
    lines = [
        f"# Training code for TransferLab run {run_dir.name}",
        "",
        f"`train.py` trains {spec.label} with the {strategy.label.lower()} strategy, with the same settings as the "
        "run (they are in `config.json`, and written out at the top of the script). It needs only TensorFlow.",
        "",
        "In this folder: `train.py` (the script), `config.json` (the run's settings), `labels.txt` (the class names, "
        "line i naming the model's output i), `split.json` (which images the run used for training, validation and "
        "testing)" + (f", `{source_folder}/` (the weights the run started from)" if shipped else "") + ".",
        "",
        "## 1. Install",
        "",
        "    pip install " + " ".join(packages),
        "",
    ]
    if pinned:
        lines += [f"The run was made with {', '.join(pinned)}; to reproduce it as closely as possible install those "
                  f"versions: `pip install {' '.join(pinned)}`.", ""]
    lines += [
        "## 2. Your images",
        "",
        "One folder per class, holding that class's images (.jpg, .jpeg, .png, .bmp or .gif):",
        "",
        "    data/",
    ]
    for name, folder in list(zip(names, folders))[:README_CLASSES]:
        lines.append(f"      {folder}/" + ("" if folder == name else f"        (class \"{name}\")"))
        lines.append("        photo1.jpg  photo2.png  ...")
    if len(names) > README_CLASSES:
        lines.append(f"      ... {len(names) - README_CLASSES} more (CLASS_DIRS in train.py lists every folder)")
    lines += [
        "",
        "The folder names must be exactly these. To train and test on exactly the run's images, put a copy of "
        "`split.json` inside the image folder: the script then uses its lists (paths relative to the image folder). "
        f"Without it the script draws its own stratified split (seed {config.seed}).",
        "",
        "## 3. Run",
        "",
        "    python train.py DATA_DIR OUT_DIR",
        "",
        f"DATA_DIR defaults to `{data_folder}`" + (" (where the images were when this was exported)"
                                                   if Path(data_folder).is_absolute() else "") + "; OUT_DIR defaults to "
        "`trained`. The script prints each phase and the test accuracy, and writes `OUT_DIR/model.keras` (raw 0-255 "
        "RGB images in, one probability per class out) and `OUT_DIR/labels.txt`.",
    ]
    if config.weights == "imagenet" and not spec.hub_handle:
        lines += ["", f"On its first run Keras downloads {spec.label}'s ImageNet weights into `~/.keras/models`."]
    if spec.hub_handle:
        lines += ["", f"On its first run tensorflow-hub downloads the model `{spec.hub_handle}`."]
    if source is not None:
        lines += _starting_weights(config, ws, source, source_folder, shipped)
    return "\n".join(lines) + "\n"


def _starting_weights(config: RunConfig, ws: Path, source: str, source_folder: str, shipped: bool) -> list[str]:
    """The code README's section on the earlier run's weights a run started from."""
    file = features.source_weights_file(ws, config)
    where = f"`{source_folder}/{file.name}`"
    lines = ["", "## Starting weights", "", f"The run started from {source}."]
    if shipped:
        lines.append(f"That file is included as {where}; `train.py` loads it from there (SOURCE_WEIGHTS).")
    else:
        lines.append(f"That file was missing from the workspace when this was exported: fetch "
                     f"`runs/{config.source_run}/{file.relative_to(runs.runs_root(ws) / config.source_run).as_posix()}` "
                     f"from the TransferLab workspace where run {config.source_run} was trained and put it at "
                     f"{where}, next to `train.py`; the script stops with a message until it is there.")
    return lines


def _source_description(config: RunConfig, ws: Path) -> str | None:
    """"run X's weights (its trained backbone), a <backbone> trained on dataset <name>" for a config that starts
    from an earlier run; None for one that does not."""
    how = strategies.get(config.strategy).source
    if how is None:
        return None
    what = "its backbone after its first epoch" if how == "early" else "its trained backbone"
    text = f"run `{config.source_run}`'s weights ({what})"
    try:
        source = runs.load_config(runs.run_path(config.source_run, ws))
    except (TransferLabError, OSError, ValueError):
        return text + "; that run is no longer in this workspace"
    try:
        dataset = f"\"{datasets.load_dataset(source.dataset_id, ws)['name']}\" (`{source.dataset_id}`)"
    except (TransferLabError, OSError, ValueError, KeyError):
        dataset = f"`{source.dataset_id}`"
    return text + f", a {backbones.get(source.backbone).label} trained on dataset {dataset}"


# ---------------------------------------------------------------- model card

# eval.json keys that are not metrics (or are shown in their own section of the card).
_NOT_METRICS = ("split", "n", "classes", "predictions", "per_class", "confusion_matrix")


def _metric_rows(evaluation: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """Every metric of eval.json by its own name (nested ones as 'key sub-key'), and the keys of data too
    large for a table (curves), which the card names without showing."""
    rows: list[tuple[str, str]] = []
    other: list[str] = []
    for key, value in evaluation.items():
        if key in _NOT_METRICS or key.endswith("_note"):
            continue
        if _is_number(value):
            rows.append((f"`{key}`", f"{value:.4g}"))
        elif value is None:
            note = evaluation.get(f"{key}_note")
            rows.append((f"`{key}`", "not defined" + (f": {note}" if note else "")))
        elif isinstance(value, dict):
            rows += [(f"`{key}` {sub}", f"{v:.4g}") for sub, v in value.items() if _is_number(v)]
        else:
            other.append(key)
    return rows, other


def _target_lines(config: RunConfig, split: dict[str, Any], ws: Path) -> list[str]:
    """The target domain a run was adapted to (or measured on), in a paragraph of the Data section."""
    if not config.target_dataset_id:
        return []
    try:
        name = f"\"{datasets.load_dataset(config.target_dataset_id, ws)['name']}\" (`{config.target_dataset_id}`)"
    except TransferLabError:
        name = f"`{config.target_dataset_id}`"
    target = split.get("target") or {}
    how = (f"adapted to the target domain {name} with {strategies.get(config.strategy).label}: "
           f"{len(target.get('adapt', []))} of its images trained without labels"
           if strategies.get(config.strategy).adapts and config.adapt_weight > 0
           else f"trained without adaptation (the source-only baseline) and measured on the target domain {name}")
    held = len(target.get("test", []))
    return [f"Target domain: this model was {how}"
            + (f"; {held} labelled target images were held out to measure it there (`target` in the metrics)."
               if held else "; the target had no labels matching the classes, so its accuracy there is unknown."), ""]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _accuracy_interval(accuracy: float, n: int) -> tuple[float, float]:
    """95% Wilson interval of a test accuracy measured on n images."""
    from scipy.stats import binomtest

    ci = binomtest(int(round(accuracy * n)), n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def model_card(run_dir: Path) -> str:
    """A markdown model card: data, configuration, every metric in eval.json, intended use and limits."""
    config = runs.load_config(run_dir)
    split = runfiles.read_split(run_dir)
    names = split["classes"]
    status = runs.read_status(run_dir)
    spec = backbones.get(config.backbone)
    strategy = strategies.get(config.strategy)
    evaluation = read_json(run_dir / "eval.json") if (run_dir / "eval.json").is_file() else None
    try:
        info: dict[str, Any] | None = datasets.load_dataset(config.dataset_id, run_dir.parent.parent)
    except TransferLabError:
        info = None
    counts = {part: [0] * len(names) for part in ("train", "val", "test")}
    for part in counts:
        for _, label in split[part]:
            counts[part][label] += 1

    kind = spec_kinds.get(spec.kind)
    lines = [f"# Model card: {info['name'] if info else config.dataset_id} {kind.item} classifier", ""]
    lines += [
        f"Trained with TransferLab, run `{run_dir.name}` ({time.strftime('%Y-%m-%d', time.localtime(status.get('finished', status.get('created', 0))))}).",
        "",
        "## Model",
        "",
        f"- Classifies {'an' if kind.item[0] in 'aeiou' else 'a'} {kind.item} into one of {len(names)} classes: "
        f"{', '.join(names)}.",
        f"- Backbone: {spec.label} (`{spec.id}`), {_weights_sentence(config, run_dir.parent.parent)}.",
        f"- Transfer strategy: {strategy.label} (`{strategy.id}`): {strategy.sentence}",
        _input_line(config, spec),
        "",
        "## Data",
        "",
        f"Dataset `{config.dataset_id}`" + (f" (\"{info['name']}\", imported from {info.get('source', 'unknown')})" if info else "")
        + f". {kind.label} per class and split (training / validation / test):",
        "",
        "| class | train | validation | test |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {counts['train'][i]} | {counts['val'][i]} | {counts['test'][i]} |" for i, name in enumerate(names)]
    lines += ["", f"The test {kind.items} were never used for training or for choosing the best epoch.", ""]
    lines += _target_lines(config, split, run_dir.parent.parent)
    lines += ["## Training configuration", "", "| setting | value |", "|---|---|"]
    lines += [f"| `{key}` | {value} |" for key, value in _flat(json.loads(config.to_json()))]
    metric_lines, limits = _metric_lines(evaluation, names, counts, kind.items)
    lines += metric_lines
    lines += _knowledge_source(config, run_dir)
    lines += _use_and_limits(config, names, counts, limits, info, kind)
    return "\n".join(lines)


def _input_line(config: RunConfig, spec: backbones.BackboneSpec) -> str:
    """The card's sentence about what the model takes in (a sound model: a 16 kHz waveform and its front end)."""
    out = "Output: one probability per class, in the order of `labels.txt`."
    if spec.front_end == "logmel":
        return ("- Input: one second of mono sound as a 16 kHz float waveform (16,000 samples, -1 to 1; a longer "
                "recording is cut into one-second windows). The front end is inside the model: a log-mel spectrogram "
                "(25 ms windows every 10 ms, 64 mel bands from 125 to 7,500 Hz, in dB) drawn as a "
                f"{config.image_size}×{config.image_size} picture for the backbone. " + out)
    if spec.kind == "text":
        ids = (" The SavedModel and TFLite exports take its token ids instead (int32, padded with -1), because its "
               "tokenizer cannot run inside TensorFlow: `tokenizer.json` and `predict_texts.py` in the export turn "
               "texts into them." if spec.package_file else "")
        return f"- Input: one text as a string; the encoder ({spec.label}) is inside the model.{ids} " + out
    if spec.front_end:
        return ("- Input: one second of mono sound as a 16 kHz float waveform (16,000 samples, -1 to 1); the TF Hub "
                "sound model inside makes its own spectrogram and one embedding per clip. " + out)
    return (f"- Input: RGB images of {config.image_size}×{config.image_size} pixels, raw values 0-255 (the "
            "preprocessing is inside the model). " + out)


def _metric_lines(evaluation: dict[str, Any] | None, names: list[str], counts: dict[str, list[int]],
                  items: str = "images") -> tuple[list[str], list[str]]:
    """The card's Metrics section, and the limitations its figures show (sentences)."""
    lines = ["", "## Metrics", ""]
    limits = []
    if evaluation is None:
        lines.append(f"This run was not evaluated on its test {items} (it was cancelled before the end), so there are "
                     "no test metrics.")
        limits.append(f"The model was never measured on held-out {items}: its accuracy is unknown.")
    else:
        n = int(evaluation.get("n", sum(counts["test"])))
        lines += [f"Measured on the {n} test {items} (`eval.json`).", "", "| metric | value |", "|---|---:|"]
        rows, other = _metric_rows(evaluation)
        lines += [f"| {name} | {value} |" for name, value in rows]
        if other:
            lines += ["", "Also in eval.json: " + ", ".join(f"`{key}`" for key in other) + "."]
        if evaluation.get("per_class"):
            auc = any("auc" in r for r in evaluation["per_class"])
            lines += ["", "Per class (`per_class`):", "",
                      "| class | precision | recall | F1 |" + (" AUC |" if auc else "") + f" test {items} |",
                      "|---|---:|---:|---:|" + ("---:|" if auc else "") + "---:|"]
            lines += [f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} |"
                      + (f" {r['auc']:.3f} |" if auc and _is_number(r.get("auc")) else " - |" if auc else "")
                      + f" {r['support']} |" for r in evaluation["per_class"]]
        if evaluation.get("confusion_matrix"):
            lines += ["", "Confusion matrix (`confusion_matrix`; rows: true class, columns: predicted class):", "",
                      "| true \\ predicted | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
            lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                      for name, row in zip(names, evaluation["confusion_matrix"])]
        if "accuracy" in evaluation and n:
            low, high = _accuracy_interval(float(evaluation["accuracy"]), n)
            limits.append(f"The test accuracy of {evaluation['accuracy']:.1%} comes from {n} {items}; with so many, the "
                          f"true accuracy on similar {items} plausibly lies between {low:.1%} and {high:.1%} (95% Wilson interval).")
        weakest = min(evaluation.get("per_class") or [], key=lambda r: r["f1"], default=None)
        if weakest is not None and len(names) > 1:
            limits.append(f"The weakest class is '{weakest['class']}' (F1 {weakest['f1']:.2f}): expect more mistakes on it.")
    return lines, limits


def _use_and_limits(config: RunConfig, names: list[str], counts: dict[str, list[int]], limits: list[str],
                    info: dict[str, Any] | None, kind: spec_kinds.Kind | None = None) -> list[str]:
    """The card's Intended use and Limitations sections, in the words of the run's kind of data."""
    spec = backbones.get(config.backbone)
    kind = kind or spec_kinds.get(spec.kind)
    use = (f"Sorting or pre-screening {kind.items} like the training {kind.items} into the classes "
           f"{', '.join(names)}, with a person checking the results that matter. Good for teaching, prototyping, "
           "and tasks where an occasional mistake is cheap.")
    unlike = f"{kind.items} unlike the training {kind.items}"
    answer = (f"- The model always answers with one of its {len(names)} classes, even for "
              f"{'an' if kind.item[0] in 'aeiou' else 'a'} {kind.item} that belongs to none of them; a high "
              "probability is not proof that it belongs to any.")
    learned = f"- It learned from {sum(counts['train'])} training {kind.items}. {kind.differently}".rstrip()
    size_line = f"- {kind.input_note.format(size=config.image_size)}" if kind.input_note else ""
    lines = ["", "## Intended use", "", use, "",
             f"Not intended for decisions about people, for medical, legal or safety-critical use, or for {unlike}.",
             "", "## Limitations", "", answer, learned] + ([size_line] if size_line else [])
    lines += [f"- {text}" for text in limits]
    if info:
        lines += [f"- Data warning from the import: {w}" for w in info.get("warnings", [])]
    if spec.hub_handle:
        lines.append(f"- The backbone was pretrained by the publisher of `{spec.hub_handle}` and carries the gaps and "
                     "biases of the images it was trained on.")
    elif config.weights == "imagenet":
        lines.append("- The backbone was pretrained on ImageNet photos and carries that collection's gaps and biases."
                     if spec.kind != "text" else
                     f"- The encoder ({spec.label}) was pretrained on large collections of text and carries their gaps "
                     "and biases (mostly English web text).")
    elif config.weights == "run":
        lines.append(f"- The backbone started from run `{config.source_run}`: what that run's images taught it, their "
                     "gaps and biases included, carries over.")
    lines.append("")
    return lines


def _knowledge_source(config: RunConfig, run_dir: Path) -> list[str]:
    """layer_transfer: the source and the share of weights copied; distill: the teacher and the verdict."""
    if methods.is_method(config, transfer.METHOD):
        report = transfer.read_report(run_dir)
        source = (f"run `{config.source_run}`" if config.source_run
                  else f"the backbone {backbones.get(config.source_backbone).label} (`{config.source_backbone}`)")
        lines = ["", "## Where its knowledge came from", "", f"Layers shared with {source} were copied into "
                 f"{backbones.get(config.backbone).label} before training (same name, same weight shapes)."]
        if report:
            lines.append(f"{report['sentence']} ({report['shared_params']:,} of {report['total_params']:,} "
                         "backbone parameters; the layer list is in `transfer_report.json`).")
        return lines
    if methods.is_method(config, distill.METHOD):
        report = distill.read_report(run_dir)
        try:
            teacher = runs.load_config(runs.run_path(config.source_run, run_dir.parent.parent))
            who = f"run `{config.source_run}`, a {backbones.get(teacher.backbone).label}"
        except (TransferLabError, OSError, ValueError):
            who = f"run `{config.source_run}` (no longer in this workspace)"
        lines = ["", "## Where its knowledge came from", "",
                 f"Distilled from a teacher, {who}: it learned from the teacher's answers softened at temperature "
                 f"{config.temperature:g} (weight {config.distill_weight:g}) and from the true labels (weight "
                 f"{1 - config.distill_weight:g}). The teacher's mistakes and biases can carry over."]
        if report:
            lines.append(report["verdict"])
        return lines
    return []


def _weights_sentence(config: RunConfig, ws: Path) -> str:
    """Where the backbone's starting weights came from, for the model card."""
    spec = backbones.get(config.backbone)
    if spec.hub_handle:
        return f"weights `{config.weights}`: pretrained, from the TF Hub model `{spec.hub_handle}`"
    if config.weights == "imagenet" and spec.kind == "text":
        return f"weights `imagenet`: the encoder's own pretrained weights ({spec.label})"
    if config.weights == "imagenet":
        return "weights `imagenet` (pretrained on ImageNet)"
    if config.weights == "run":
        return f"weights `run`: the network started from {_source_description(config, ws)}"
    return f"weights `{config.weights}`: trained from scratch, starting from random weights (no pretraining)"


def _flat(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out.append((prefix + key, value))
    return out
