"""The measured figures of the backbone registry (core/spec/backbone_facts.json): parameters,
GFLOPs, layer groups and estimated milliseconds per image, counted from the built networks.

Slow (every network is built): run by hand after adding a backbone, e.g.
`python -c "from core.engine import facts; facts.write_facts(['its_id'])"`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.engine import modeling, networks
from core.spec import backbones


def count_flops(model: Any) -> int:
    """Floating-point operations for one image: two per multiply-add of every kernel at every output position."""
    import tf_keras as keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            macs += count_flops(layer) // 2
            continue
        shape = layer.output_shape
        positions = math.prod(shape[1:-1]) if isinstance(shape, tuple) and len(shape) > 2 else 1
        for w in layer.weights:
            if "kernel" in w.name:
                macs += positions * math.prod(w.shape)
    return 2 * macs


def measure(spec: backbones.BackboneSpec) -> dict[str, Any]:
    """Build one backbone at its default size (random weights) and measure what the registry shows."""
    import tf_keras as keras

    size = spec.default_size
    keras.backend.clear_session()
    full = networks.make_network(spec, size, include_top=True)
    params = int(full.count_params())
    del full
    keras.backend.clear_session()
    net = networks.make_network(spec, size)
    return {
        "params": params,
        "base_params": int(net.count_params()),
        "gflops": round(count_flops(net) / 1e9, 3),
        "out_shape": list(net.output_shape[1:]),
        "groups": group_facts(modeling.conv_groups(net)),
    }


def group_facts(groups: list[list[Any]]) -> list[dict[str, Any]]:
    """What the registry stores of each group: its name, first and last layer, weighted layers, parameters."""
    return [
        {"name": name, "first": group[0].name, "last": group[-1].name,
         "layers": sum(1 for layer in group if layer.weights),
         "params": int(sum(layer.count_params() for layer in group))}
        for name, group in zip(modeling.group_names(groups), groups)
    ]


def write_facts(ids: list[str] | None = None) -> Path:
    """Measure backbones (all by default) into core/spec/backbone_facts.json; keeps the others' entries. Slow."""
    path = Path(backbones.__file__).with_name("backbone_facts.json")
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for backbone_id in ids or backbones.ids():
        data[backbone_id] = measure(backbones.get(backbone_id))
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    backbones.facts.cache_clear()
    return path


def measure_speed(ids: list[str], batch: int = 32, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Milliseconds per image of each backbone's forward pass at its default size on this machine (random weights),
    with its GFLOPs (calibrate_speed uses it)."""
    import tensorflow as tf
    import tf_keras as keras

    out = {}
    for backbone_id in ids:
        spec = backbones.get(backbone_id)
        keras.backend.clear_session()
        base = networks.build_base(spec, spec.default_size, "none")
        images = np.random.default_rng(0).uniform(0, 255, (batch, spec.default_size, spec.default_size, 3))
        run = tf.function(lambda x: base(x, training=False))  # noqa: B023 - used in this iteration only
        run(tf.constant(images, tf.float32))  # trace once
        started = time.perf_counter()
        for _ in range(repeats):
            run(tf.constant(images, tf.float32)).numpy()
        ms = (time.perf_counter() - started) * 1000 / (repeats * batch)
        out[backbone_id] = {"ms_per_image": round(ms, 2), "gflops": spec.gflops,
                            "ms_per_gflop": round(ms / spec.gflops, 2) if spec.gflops else None}
    return out


def calibrate_speed(batch: int = 8, repeats: int = 2) -> dict[str, float]:
    """Time one backbone per family on this machine and store every backbone's estimated ms per image in the facts.

    Milliseconds per GFLOP differ a lot between families (depthwise and 7x7 convolutions run far
    below a CPU's peak, dense 3x3 ones near it), so each family gets its own factor. Slow.
    """
    families: dict[str, list[backbones.BackboneSpec]] = {}
    for spec in backbones.BACKBONES.values():
        families.setdefault(spec.family, []).append(spec)
    factors = {}
    for family, specs in families.items():
        # The smallest member that is not dominated by per-call overhead.
        usable = [s for s in specs if s.gflops >= 0.3] or specs
        chosen = min(usable, key=lambda s: s.gflops)
        factors[family] = measure_speed([chosen.id], batch, repeats)[chosen.id]["ms_per_gflop"]
    path = Path(backbones.__file__).with_name("backbone_facts.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    for spec in backbones.BACKBONES.values():
        data[spec.id]["ms_per_image"] = round(factors[spec.family] * data[spec.id]["gflops"], 1)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    backbones.facts.cache_clear()
    return factors


def refresh_groups(ids: list[str] | None = None) -> None:
    """Re-measure only the layer groups in the facts (one build per backbone, no classifier): after changing conv_groups."""
    import tf_keras as keras

    path = Path(backbones.__file__).with_name("backbone_facts.json")
    for backbone_id in ids or backbones.ids():
        spec = backbones.get(backbone_id)
        keras.backend.clear_session()
        groups = group_facts(modeling.conv_groups(networks.make_network(spec, spec.default_size)))
        data = json.loads(path.read_text(encoding="utf-8"))
        data[backbone_id]["groups"] = groups
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    backbones.facts.cache_clear()
