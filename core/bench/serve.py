"""`serve` benchmark: images per second through `python -m core serve` against `predict` in-process.

MobileNetV2 (width 0.35, ImageNet weights) at 224 px, feature extraction for EPOCHS epochs on the
first PER_CLASS photos of each class of ../shared/datasets/flowers (a small run: the figure of
interest is the server's overhead, not accuracy). Then `python -m core serve RUN --port 0` in its
own process, and REQUESTS sequential `:classify` requests (one photo each, multipart, one
keep-alive connection, as a client program would send them) and as many `:predict` requests with
the photo as `{"b64": ...}`; against it, the same photos through `core.engine.evaluation.predict`
in this process, one at a time (the same work without HTTP) and in one batch. The answers of the
server and of `predict` are compared too.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.export import FLOWERS, PROJECT, cli, flowers_workspace
from core.engine import evaluation
from core.errors import TransferLabError

PER_CLASS = 20
EPOCHS = 2
REQUESTS = 200


def _photos(n: int) -> list[Path]:
    """n flower photos, taken round-robin from the classes, none of them among the training photos."""
    folders = sorted(p for p in FLOWERS.iterdir() if p.is_dir())
    pools = [sorted(f.glob("*.jpg"))[PER_CLASS:] for f in folders]
    return [pools[i % len(pools)][i // len(pools)] for i in range(n)]


def _timed(calls: list[Any]) -> tuple[float, list[float]]:
    """Wall seconds for calling each in turn, and each call's milliseconds."""
    each = []
    started = time.perf_counter()
    for call in calls:
        t = time.perf_counter()
        call()
        each.append(1000 * (time.perf_counter() - t))
    return time.perf_counter() - started, each


def _figures(seconds: float, each: list[float]) -> dict[str, float]:
    ordered = sorted(each)
    return {"images_per_second": round(len(each) / seconds, 2), "ms_median": round(statistics.median(each), 2),
            "ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2)}


def run(keras_cache: str | None = None) -> dict[str, Any]:
    """Train the small flowers run, serve it, time REQUESTS classify and predict requests; return the figures."""
    import requests  # Streamlit's own dependency: the plainest HTTP client a user's program would use

    with tempfile.TemporaryDirectory(prefix="tl-bench-serve-") as tmp:
        env, dataset = flowers_workspace(Path(tmp), keras_cache, PER_CLASS, "serve")
        ws = Path(tmp) / "workspace"
        config = json.loads(cli(["config", "--dataset", dataset["id"], "--preset", "quick", "--backbone",
                                  "mobilenet_v2_0.35", "--image-size", "224", "--epochs", str(EPOCHS)], env,
                                 json_out=False))
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))
        trained = cli(["train", str(config_path), "--quiet"], env)
        run_dir = ws / "runs" / trained["id"]
        photos = [(p.name, p.read_bytes()) for p in _photos(REQUESTS)]

        server = subprocess.Popen([sys.executable, "-m", "core", "serve", trained["id"], "--port", "0", "--json"],
                                  cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            started = time.monotonic()
            lines = [server.stdout.readline()]
            while lines[-1] and not lines[-1].startswith("}"):
                lines.append(server.stdout.readline())
            if not lines[-1]:
                raise TransferLabError("The benchmark's model server did not start.")
            start_seconds = time.monotonic() - started
            info = json.loads("".join(lines))["models"][0]
            with requests.Session() as http:
                answers: list[dict[str, Any]] = []

                def classify(name: str, data: bytes) -> None:
                    reply = http.post(info["classify"], files={"file": (name, data, "image/jpeg")}, timeout=60)
                    reply.raise_for_status()
                    answers.append(reply.json()["results"][0])

                def predict(data: bytes) -> None:
                    body = {"instances": [{"b64": base64.b64encode(data).decode()}]}
                    http.post(info["predict"], json=body, timeout=60).raise_for_status()

                classify(*photos[0])  # the first request of a connection is not part of the rate
                answers.clear()
                classify_s, classify_ms = _timed([lambda p=p: classify(*p) for p in photos])
                predict_s, predict_ms = _timed([lambda p=p: predict(p[1]) for p in photos])
        finally:
            server.terminate()
            server.wait(timeout=30)

        model = evaluation.load_model(run_dir)
        evaluation.predict(run_dir, photos[:1], model=model)  # warm, as the server is
        local: list[dict[str, Any]] = []
        local_s, local_ms = _timed([lambda p=p: local.extend(evaluation.predict(run_dir, [p], model=model))
                                    for p in photos])
        started = time.perf_counter()
        evaluation.predict(run_dir, photos, model=model)
        batch_s = time.perf_counter() - started

    def probs(result: dict[str, Any]) -> dict[str, float]:
        return {t["class"]: t["probability"] for t in result["top"]}

    diff = max(abs(probs(a)[c] - probs(b)[c]) for a, b in zip(answers, local) for c in probs(b))
    served = _figures(classify_s, classify_ms)
    return {
        "benchmark": "serve",
        "command": "python -m core bench serve",
        "backbone": config["backbone"], "image_size": config["image_size"], "strategy": config["strategy"],
        "train_images": sum(dataset["counts"].values()), "requests": REQUESTS,
        "photo_kb_mean": round(float(np.mean([len(d) for _, d in photos])) / 1024, 1),
        "server_start_seconds": round(start_seconds, 1),
        "classify_http": served,
        "predict_b64_http": _figures(predict_s, predict_ms),
        "predict_in_process_one_at_a_time": _figures(local_s, local_ms),
        "predict_in_process_batch": {"images_per_second": round(REQUESTS / batch_s, 2)},
        "http_share_of_classify": round((served["ms_median"] - statistics.median(local_ms)) / served["ms_median"], 3),
        "same_answers": all(a["prediction"] == b["prediction"] for a, b in zip(answers, local)),
        "max_probability_difference": round(diff, 8),
        "cpus": os.cpu_count(),
    }


def describe(result: dict[str, Any]) -> str:
    """The rates side by side."""
    rows = [("classify over HTTP (multipart)", result["classify_http"]),
            ("predict over HTTP (b64 JSON)", result["predict_b64_http"]),
            ("predict in-process, one at a time", result["predict_in_process_one_at_a_time"])]
    lines = [f"serve: {result['backbone']} at {result['image_size']} px, {result['requests']} sequential requests of "
             f"one flower photo each ({result['photo_kb_mean']:.0f} KB on average); the server started in "
             f"{result['server_start_seconds']:.1f} s",
             f"  {'path':<36}{'images/s':>10}{'median ms':>11}{'p95 ms':>9}"]
    lines += [f"  {name:<36}{r['images_per_second']:>10.1f}{r['ms_median']:>11.1f}{r['ms_p95']:>9.1f}" for name, r in rows]
    lines.append(f"  {'predict in-process, one batch':<36}{result['predict_in_process_batch']['images_per_second']:>10.1f}")
    lines.append(f"  HTTP's share of a classify request: {result['http_share_of_classify']:.0%}; same answers as "
                 f"predict: {'yes' if result['same_answers'] else 'NO'} (largest probability difference "
                 f"{result['max_probability_difference']:.1e})")
    return "\n".join(lines)
