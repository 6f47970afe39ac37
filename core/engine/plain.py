"""The plain training method: the classifier learns its labels, on cached features or on images.

Feature extraction, fine-tuning, gradual unfreezing, from scratch, domain weights and weight
initialisation are all this method; they differ only in their phases (core.spec.strategies). A
phase with a frozen backbone trains the head alone on feature vectors computed once (the feature
cache, core.engine.features); a phase that opens the backbone passes the images through it each
epoch (core.data.tfdata). The other methods extend this class and replace what they change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import events
from core.data import tfdata
from core.engine import features, modeling
from core.engine.method import PhaseData, Run, Settle, Train
from core.spec import strategies
from core.spec.config import RunConfig
from core.spec.strategies import Phase


class Plain:
    """The usual method: every hook of core.engine.method.Method, with the classifier's own labels and loss."""

    id = "plain"
    ships_source_run = False

    def prepare(self, config: RunConfig, settle: Settle) -> tuple[RunConfig, list[str]]:
        """The config as trained: the trainer's weights fallback and epoch cap, nothing of its own."""
        return settle(config)

    def build(self, run: Run) -> None:
        """Build run.model and run.base; start the backbone from an earlier run where the strategy says so."""
        shared = run.shared  # a study's trial that trains its head alone: its head on the backbone others built
        built = shared.classifier(run.config, len(run.info["classes"])) if shared is not None else None
        if built is not None:
            run.model, run.base = built
        else:
            with run.scope():
                run.model, run.base = modeling.build(run.config, len(run.info["classes"]))
            if shared is not None:
                shared.keep(run.config, run.model, run.base)
        if not run.resume:
            for message in modeling.init_from_source(run.base, run.config, run.ws):
                run.emit(events.Notice(message))

    def open(self, run: Run, phase: Phase) -> None:
        """Make trainable what this phase trains (core.engine.modeling.apply_phase)."""
        modeling.apply_phase(run.base, phase)

    def data(self, run: Run, phase: Phase, epochs: int) -> PhaseData:
        """The head on cached features when the backbone is frozen (and the cache can serve), else the images."""
        if strategies.uses_feature_cache(run.config, phase):
            return self.feature_data(run, phase)
        if "images" not in run.memo:  # one pipeline for every phase that passes images
            config = run.config
            # Sounds with time shift on: random seconds of each longer clip, as many per epoch as its window has.
            crop = tfdata.crop_views(run.root, config.image_size) if config.augment.shift else 0
            run.memo["images"] = (
                tfdata.pipeline(run.root, run.parts["train"], config.image_size, config.batch_size, True, config.seed,
                                crop=crop),
                tfdata.pipeline(run.root, run.parts["val"], config.image_size, config.batch_size, False, config.seed),
                tfdata.batches(len(run.parts["train"]), config.batch_size, crop) if crop > 1 else None,
            )
        train, val, steps = run.memo["images"]
        return PhaseData(run.model, train, val, steps)

    def feature_data(self, run: Run, phase: Phase) -> PhaseData:
        """The head alone, fitted on the backbone's cached features (augmented views when asked)."""
        config, ws = run.config, run.ws
        views = config.augment_views if config.augment.any() else 0
        if run.shared is not None:  # a study's trial: features read once per study process
            (train_x, fig), (val_x, val_fig) = run.shared.features(run, "train", views), run.shared.features(run, "val", 0)
        else:
            extractor = features.feature_extractor(run.model, run.base, augmented=bool(views))
            train_x, fig = features.features_for(extractor, run.info, run.root, run.parts["train"], config,
                                                 features.cache_file(ws, config, views), views)
            clean = features.feature_extractor(run.model, run.base, augmented=False) if views else extractor
            val_x, val_fig = features.features_for(clean, run.info, run.root, run.parts["val"], config,
                                                   features.cache_file(ws, config, 0))
        run.emit(events.FeaturePass(phase.name, fig["images"] + val_fig["images"], fig["computed"] + val_fig["computed"],
                                    views, round(fig["seconds"] + val_fig["seconds"], 3)))
        with run.scope():
            trainer = features.head_model(run.model)
        train, steps = features.train_dataset(train_x, run.labels, config.batch_size, config.seed, views)
        return PhaseData(trainer, train, features.eval_dataset(val_x, run.val_labels, config.batch_size), steps)

    def compile(self, run: Run, trainer: Any, rate: Any) -> None:
        """Compile with the config's optimizer, the usual loss and label smoothing."""
        smoothing = {"label_smoothing": run.config.label_smoothing} if run.config.label_smoothing else {}
        modeling.compile_for(trainer, run.config.optimizer, rate, **smoothing)

    def finish(self, run_dir: Path, config: RunConfig, train: Train) -> dict[str, Any]:
        """Nothing beyond the run itself (the from-scratch baseline is every method's, in training)."""
        return {}


METHOD = Plain()
