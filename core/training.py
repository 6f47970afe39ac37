"""The trainer: phases from the strategy, Keras callbacks turned into typed events, checkpoints, cancel.

training.run() is what the command line calls in the foreground and what a background job calls
in its child process; it writes only inside its own run folder.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

from core import backbones, datasets, events, runs, strategies
from core.config import RunConfig
from core.errors import TrainingFailed, TransferLabError, WeightsUnavailable

# A network trained from scratch needs more passes than a head on pretrained features.
SCRATCH_MIN_EPOCHS = 30


def resolve_weights(config: RunConfig) -> tuple[RunConfig, list[str]]:
    """Make sure the backbone's weights can be had; otherwise fall back, and say so in a sentence.

    Order: the requested weights (cached, else downloaded by Keras); the most accurate backbone
    whose ImageNet weights are cached; a small network trained from scratch.
    """
    spec = backbones.get(config.backbone)
    if config.weights != "imagenet":
        return config, []
    try:
        backbones.fetch_weights(spec, config.image_size)
        return config, []
    except WeightsUnavailable as exc:
        missing = str(exc)
    alternative = backbones.best_available(config.image_size)
    if alternative is not None:
        new = config.with_changes(backbone=alternative.id)
        return new.validate(), [f"{missing} Training {alternative.label} instead, whose ImageNet weights are cached."]
    # From scratch: small images and batches (more updates per epoch), and no early stopping,
    # since a network learning from nothing often plateaus before it improves.
    new = config.with_changes(
        backbone="small_cnn",
        weights="none",
        strategy="from_scratch",
        image_size=backbones.get("small_cnn").default_size,
        epochs=max(config.epochs, SCRATCH_MIN_EPOCHS),
        batch_size=min(config.batch_size, 16),
        patience=0,
    )
    return new.validate(), [
        f"{missing} No pretrained backbone is cached, so a small network is trained from scratch instead "
        f"({new.epochs} epochs)."
    ]


def _event_callback(listener: events.Listener, phase: str, epochs: int, steps: int, should_stop: Callable[[], bool]):
    import tf_keras as keras

    class EventCallback(keras.callbacks.Callback):
        """Keras callback -> typed events; checks cancel and NaN after every batch."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.epochs_run = 0
            self.cancelled = False
            self.nan = False
            self.started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            self.started = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            loss = float(logs.get("loss", float("nan")))
            listener(events.BatchEnd(phase, self.epoch, batch + 1, steps, loss, float(logs.get("accuracy", 0.0))))
            if not math.isfinite(loss):
                self.nan = True
                self.model.stop_training = True
            elif should_stop():
                self.cancelled = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_run = epoch + 1
            metrics = {k: float(v) for k, v in (logs or {}).items()}
            listener(events.EpochEnd(phase, epoch + 1, epochs, metrics, round(time.monotonic() - self.started, 3)))

    return EventCallback()


def run(config: RunConfig, run_dir: Path, listener: events.Listener | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Train, checkpoint the best model, evaluate on the test split; status.json says how it ended."""
    ws = run_dir.parent.parent
    should_stop = should_stop or (lambda: runs.cancel_requested(run_dir))

    def emit(event: events.Event) -> None:
        runs.append_event(run_dir, events.to_dict(event))
        if listener is not None:
            listener(event)

    runs.update_status(run_dir, "running", started=time.time(), pid=os.getpid())
    try:
        return _train(config, run_dir, ws, emit, should_stop)
    except TransferLabError as exc:
        runs.update_status(run_dir, "failed", finished=time.time(), message=str(exc))
        raise
    except MemoryError:
        message = "Training ran out of memory; choose a smaller batch size or image size and try again."
        runs.update_status(run_dir, "failed", finished=time.time(), message=message)
        raise TrainingFailed(message) from None
    except BaseException as exc:
        if _is_oom(exc):
            message = "Training ran out of memory; choose a smaller batch size or image size and try again."
            runs.update_status(run_dir, "failed", finished=time.time(), message=message)
            raise TrainingFailed(message) from None
        state = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        runs.update_status(
            run_dir, state, finished=time.time(), message=f"Training stopped unexpectedly ({type(exc).__name__}).",
            detail=traceback.format_exc(limit=20),
        )
        raise


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "ResourceExhaustedError"


def _train(config: RunConfig, run_dir: Path, ws: Path, emit: events.Listener, should_stop: Callable[[], bool]) -> dict:
    import tf_keras as keras
    from sklearn.utils.class_weight import compute_class_weight

    from core import evaluation, modeling

    config.validate()
    info = datasets.load_dataset(config.dataset_id, ws)
    datasets.check_trainable(info)
    config, notices = resolve_weights(config)
    runs.save_config(run_dir, config)  # config.json holds what is actually trained
    for message in notices:
        emit(events.Notice(message))

    keras.utils.set_random_seed(config.seed)
    parts = datasets.split(info, config.val_fraction, config.test_fraction, config.seed)
    runs.write_json(run_dir / "split.json", {"classes": info["classes"], **parts})
    root = datasets.dataset_path(config.dataset_id, ws)
    train_ds = datasets.pipeline(root, parts["train"], config.image_size, config.batch_size, True, config.seed)
    val_ds = datasets.pipeline(root, parts["val"], config.image_size, config.batch_size, False, config.seed)
    steps = math.ceil(len(parts["train"]) / config.batch_size)
    labels = np.array([label for _, label in parts["train"]])
    present = np.unique(labels)
    class_weight = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=labels).tolist()))

    model, base = modeling.build(config, len(info["classes"]))
    checkpoint = run_dir / "checkpoints" / "best.weights.h5"
    checkpoint.parent.mkdir(exist_ok=True)
    best_val_loss = math.inf
    phases = [p for p in strategies.get(config.strategy).phases(config) if p.epochs > 0]
    cancelled = False
    started = time.monotonic()
    for index, phase in enumerate(phases, start=1):
        modeling.apply_phase(base, phase)
        modeling.compile_for(model, config.optimizer, phase.learning_rate)
        runs.update_status(run_dir, phase=phase.name, phase_index=index, phases=len(phases))
        emit(events.PhaseStart(phase.name, index, len(phases), phase.epochs, steps, modeling.count_trainable(model)))
        tracker = _event_callback(emit, phase.name, phase.epochs, steps, should_stop)
        saver = keras.callbacks.ModelCheckpoint(
            str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True,
            initial_value_threshold=best_val_loss if math.isfinite(best_val_loss) else None,
        )
        callbacks = [tracker, saver]
        stopper = None
        if config.patience > 0:
            stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience)
            callbacks.append(stopper)
        history = model.fit(
            train_ds, validation_data=val_ds, epochs=phase.epochs, callbacks=callbacks,
            class_weight=class_weight, verbose=0,
        )
        val_losses = [v for v in history.history.get("val_loss", []) if math.isfinite(v)]
        best_val_loss = min([best_val_loss, *val_losses])
        stopped_early = bool(stopper and stopper.stopped_epoch > 0)
        emit(events.PhaseEnd(phase.name, tracker.epochs_run, stopped_early))
        if tracker.nan:
            raise TrainingFailed(
                f"The loss became NaN (not a number) in the {phase.name} phase, so training stopped; "
                "lower the learning rate and try again."
            )
        if tracker.cancelled:
            cancelled = True
            break

    if checkpoint.exists():
        model.load_weights(str(checkpoint))  # the best epoch across all phases
    model.save(run_dir / "model.keras")
    seconds = round(time.monotonic() - started, 2)
    if cancelled:
        runs.update_status(run_dir, "cancelled", finished=time.time(), train_seconds=seconds,
                           message="Training was cancelled; the best model so far was kept.")
        return {"state": "cancelled", "train_seconds": seconds}
    report = evaluation.evaluate(run_dir, model=model)
    runs.update_status(run_dir, "done", finished=time.time(), train_seconds=seconds, test_accuracy=report["accuracy"])
    return {"state": "done", "train_seconds": seconds, "test_accuracy": report["accuracy"]}
