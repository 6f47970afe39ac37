"""Transfer across architectures: the layers two networks share, copied; the others (difference layers) trained.

A *shared layer* of backbone B is one whose name and weight shapes are those of a layer of the
source network (an earlier run's trained backbone, or a plain registry backbone with its ImageNet or
random weights): its weights are copied byte for byte. Every other weighted layer of B is a
*difference layer* and keeps B's own initial weights. This is how Net2Net grows a network: ResNet-50's
layers are all in ResNet-101 under the same names, EfficientNet-B0's all in B1.

The transfer map (shared layers with parameter counts, difference layers, the share of B's
parameters that transfer) is computed before anything trains; the layer_transfer strategy writes it
into the run folder as transfer_report.json. TensorFlow is imported inside the functions.

As a training method (core.engine.method), `Transfer` keeps its backbone, copies the shared layers
once the classifier is built, and holds them frozen in the first phase.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from core import events, settings
from core.engine import modeling, networks
from core.engine.method import Run, Settle
from core.engine.plain import Plain
from core.errors import ConfigError, RunStateError, WeightsUnavailable
from core.spec import backbones, strategies
from core.spec.config import RunConfig
from core.spec.strategies import Phase
from core.store import runs
from core.store.files import read_json, write_json

REPORT = "transfer_report.json"
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{12}")


# ---------------------------------------------------------------- matching two networks


def _shapes(layer: Any) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in w.shape) for w in layer.weights]


def match(source: Any, target: Any) -> list[dict[str, Any]]:
    """One row per weighted layer of target, in its order: name, type, params, shared, and why not when not.

    Shared: the source has a layer of the same name whose weights have the same shapes, in order.
    """
    by_name = {layer.name: layer for layer in getattr(source, "layers", []) if layer.weights}
    rows = []
    for layer in getattr(target, "layers", []):
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is None:
            why = "no layer of this name in the source"
        elif _shapes(other) != _shapes(layer):
            why = f"the source's layer has other weight shapes ({_shapes(other)} instead of {_shapes(layer)})"
        else:
            why = ""
        rows.append({"name": layer.name, "type": type(layer).__name__, "params": int(layer.count_params()),
                     "shared": not why, **({"why": why} if why else {})})
    return rows


def copy_shared(source: Any, target: Any, rows: list[dict[str, Any]]) -> int:
    """Copy the shared layers' weights from source into target; returns how many layers were copied."""
    copied = 0
    for row in rows:
        if row["shared"]:
            target.get_layer(row["name"]).set_weights(source.get_layer(row["name"]).get_weights())
            copied += 1
    return copied


def summarise(rows: list[dict[str, Any]], source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """The transfer map: shared and difference layers, parameter totals, the share transferred, one sentence."""
    shared = [r for r in rows if r["shared"]]
    difference = [r for r in rows if not r["shared"]]
    total = sum(r["params"] for r in rows)
    moved = sum(r["params"] for r in shared)
    share = moved / total if total else 0.0
    if not shared:
        sentence = (f"{source['label']} and {target['label']} have no layer in common (none with the same name and "
                    f"the same weight shapes), so nothing can be copied; use the distill strategy instead, where a "
                    f"trained run teaches {target['label']} through its predictions, whatever the architecture.")
    else:
        sentence = (f"{share:.0%} of {target['label']}'s weights come from {source['label']}: {len(shared)} shared "
                    f"layers are copied, {len(difference)} difference layers keep {target['label']}'s own initial "
                    "weights and train first.")
    return {"source": source, "target": target, "shared": shared, "difference": difference,
            "shared_layers": len(shared), "difference_layers": len(difference),
            "shared_params": moved, "total_params": total, "share": round(share, 4), "sentence": sentence}


# ---------------------------------------------------------------- sources: a run or a backbone


def _check_layered(backbone_id: str) -> None:
    if backbones.is_hub(backbone_id):
        raise ConfigError(f"{backbones.get(backbone_id).label} is a TF Hub model, whose layers cannot be read one by "
                          "one, so it cannot share layers; use the distill strategy instead.")


def _run_network(run_id: str, ws: Path) -> tuple[Any, dict[str, Any]]:
    run_dir = runs.run_path(run_id, ws)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise RunStateError(f"Run {run_id} has no trained model yet; choose a finished run.")
    config = runs.load_config(run_dir)
    _check_layered(config.backbone)
    spec = backbones.get(config.backbone)
    model = modeling.load(model_path)
    net = modeling.network(model.get_layer(backbones.base_name(spec)))
    return net, {"kind": "run", "id": run_id, "backbone": config.backbone,
                 "label": f"run {run_id} ({spec.label})"}


def _usable_weights(spec: backbones.BackboneSpec, weights: str, image_size: int) -> str:
    """ImageNet where it can be had (cached or downloadable), else random."""
    if weights != "imagenet" or "imagenet" not in spec.weights_options:
        return "none"
    try:
        networks.fetch_weights(spec, image_size)
        return "imagenet"
    except WeightsUnavailable:
        return "none"


def _backbone_network(backbone_id: str, image_size: int, weights: str) -> tuple[Any, dict[str, Any]]:
    backbones.check_id(backbone_id)
    _check_layered(backbone_id)
    spec = backbones.get(backbone_id)
    size = min(max(image_size, spec.min_size), spec.max_size)
    used = _usable_weights(spec, weights, size)
    base = networks.build_base(spec, size, used)
    what = "ImageNet weights" if used == "imagenet" else "random weights"
    return modeling.network(base), {"kind": "backbone", "id": backbone_id, "backbone": backbone_id,
                                     "label": spec.label, "weights": used, "weights_label": what}


def source_network(source: str, ws: Path, image_size: int, weights: str = "none") -> tuple[Any, dict[str, Any]]:
    """The network layers are copied from: an earlier run's trained backbone, or a registry backbone."""
    if _RUN_ID.fullmatch(source):
        return _run_network(source, ws)
    if source in backbones.BACKBONES or backbones.is_hub(source):
        return _backbone_network(source, image_size, weights)
    raise ConfigError(f"'{source}' is neither a run id (list them with 'python -m core runs') nor a backbone id "
                      "(list them with 'python -m core backbones').")


def transfer_map(source: str, target: str, ws: Path, image_size: int | None = None) -> dict[str, Any]:
    """The transfer map from a run or backbone to backbone target, before anything trains (random weights, offline)."""
    backbones.check_id(target)
    _check_layered(target)
    spec = backbones.get(target)
    size = image_size or spec.default_size
    src_net, src_info = source_network(source, ws, size)
    tgt_net = modeling.network(networks.build_base(spec, size, "none"))
    return summarise(match(src_net, tgt_net), src_info, {"id": target, "label": spec.label})


# ---------------------------------------------------------------- the layer_transfer strategy


def random_start_sentence(config: RunConfig, why: str) -> str:
    """Why a layer_transfer or distill run would start from random weights, and what can be done instead."""
    spec = backbones.get(config.backbone)
    copied = " where nothing is copied" if strategies.get(config.strategy).method == "transfer" else ""
    return (f"The ImageNet weights of {spec.label} are not on this computer and {why}, so it would start from random "
            f"weights{copied} and may learn little; choose a backbone whose weights are on this computer, or train it "
            "from random weights on purpose (weights 'none', --weights none on the command line).")


def offline_refusal(config: RunConfig) -> str | None:
    """Before training, without downloading: the sentence refusing a run about its own backbone (layer transfer,
    distillation) whose ImageNet weights are missing on a computer set to offline; None when it can start."""
    if not strategies.get(config.strategy).keeps_backbone or config.weights != "imagenet" or not settings.offline():
        return None
    spec = backbones.get(config.backbone)
    if spec.hub_handle or "imagenet" not in spec.weights_options or backbones.cached_weights(spec, config.image_size):
        return None
    return random_start_sentence(config, "this computer is set to work offline")


def keep_backbone(config: RunConfig) -> tuple[RunConfig, list[str]]:
    """For a method about this very backbone (layer transfer, distillation): without its ImageNet weights the run is
    refused with a sentence (never silently started from random weights, nor moved to another backbone as the
    weights fallback of other strategies would)."""
    if config.weights != "imagenet":
        return config, []
    spec = backbones.get(config.backbone)
    if _usable_weights(spec, config.weights, config.image_size) == "imagenet":
        return config, []
    raise WeightsUnavailable(random_start_sentence(config, "they could not be downloaded"))


def prepare(base: Any, config: RunConfig, ws: Path, run_dir: Path, resume: bool) -> tuple[set[str], list[str]]:
    """For layer_transfer: copy the shared layers into base's network and write transfer_report.json.

    Returns the shared layer names (frozen in the first phase) and a sentence for the run's notices. On a
    resume the weights come from the checkpoint, so only the names are read back.
    """
    path = run_dir / REPORT
    if resume and path.is_file():
        return {r["name"] for r in read_json(path)["shared"]}, []
    _check_layered(config.backbone)
    source = config.source_run or config.source_backbone
    src_net, src_info = source_network(source, ws, config.image_size, "imagenet")
    target = modeling.network(base)
    rows = match(src_net, target)
    report = summarise(rows, src_info, {"id": config.backbone, "label": backbones.get(config.backbone).label})
    if not report["shared"]:
        raise ConfigError(report["sentence"])
    copy_shared(src_net, target, rows)
    write_json(path, report)
    notice = report["sentence"]
    if src_info.get("weights_label"):
        notice += f" The copied layers hold {src_info['label']}'s {src_info['weights_label']}."
    return {r["name"] for r in report["shared"]}, [notice]


def apply_phase(base: Any, phase: Phase, shared: set[str], config: RunConfig) -> None:
    """The first layer_transfer phase: shared layers frozen, difference layers open (after modeling.apply_phase)."""
    if phase.base_trainable != "difference":
        return
    from tf_keras import layers as kl

    base.trainable = True
    for layer in modeling.network(base).layers:
        # Pretrained BatchNorm statistics stay in inference mode, as everywhere (modeling.build).
        pretrained_bn = isinstance(layer, kl.BatchNormalization) and config.weights != "none"
        layer.trainable = layer.name not in shared and not pretrained_bn


def read_report(run_dir: Path) -> dict[str, Any] | None:
    """A run's transfer_report.json, or None."""
    path = run_dir / REPORT
    return read_json(path) if path.is_file() else None


# ---------------------------------------------------------------- the method


class Transfer(Plain):
    """The plain method on a backbone that first receives the layers it shares with a source network."""

    id = "transfer"
    ships_source_run = True  # a source run's model.keras is where the shared layers come from

    def prepare(self, config: RunConfig, settle: Settle) -> tuple[RunConfig, list[str]]:
        """Keep this backbone (random weights where nothing is copied, if ImageNet's cannot be had), then settle."""
        config, notices = keep_backbone(config)
        config, more = settle(config)
        return config, notices + more

    def build(self, run: Run) -> None:
        """The classifier, then the shared layers copied in (and transfer_report.json written)."""
        super().build(run)
        run.memo["shared"], messages = prepare(run.base, run.config, run.ws, run.run_dir, run.resume)
        for message in messages:
            run.emit(events.Notice(message))

    def open(self, run: Run, phase: Phase) -> None:
        """The strategy's phase, then the shared layers frozen where the phase opens the difference layers only."""
        super().open(run, phase)
        apply_phase(run.base, phase, run.memo["shared"], run.config)


METHOD = Transfer()
