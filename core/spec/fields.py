"""Every setting of a run, declared once: its label and help on the Model page, its flag on the command line,
its span in a hyperparameter search and the kinds of data it applies to.

`RunConfig` (core/spec/config.py) says what a setting is (its type and default) and `CHOICES`/`RANGES`
what values it takes; this table says how a person meets it. The `config` command makes its flags from
it (core/cli/configure.py), the Model page its labels and help (pages/model.py), and a study its search
space (core/service/studies.py). To add a setting: a field in RunConfig (with its bounds), then one
`Setting` here; a kind of data that adds settings of its own lists its kind in `kinds`.

Help texts with `{names}` are filled in where they are shown (`Setting.help_for`), for the words that
depend on the chosen backbone or strategy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from core.spec import backbones, strategies
from core.spec.config import CHOICES, RANGES, AugmentConfig, HeadConfig, RunConfig


@dataclass(frozen=True)
class Flag:
    """A command-line flag of the `config` command that sets a setting."""

    name: str  # without the leading dashes: "fine-tune-lr"
    help: str | None = None  # the short help `--help` shows (None: none)
    switch: bool = False  # a flag without a value: giving it sets `value`
    value: Any = None
    convert: Callable[[Any], Any] | None = None  # turns the flag's text into the setting's value

    @property
    def dest(self) -> str:
        """The argparse attribute holding the flag's value."""
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class Search:
    """How a study searches a setting: a span (low, high; on a log scale or not) or a list of values.

    Neither: the setting's declared CHOICES. The span is intersected with the setting's RANGES."""

    name: str  # the short name --search and the Search page use
    order: int  # the place in the Search page's list
    words: str
    span: tuple[float, float] | None = None
    log: bool = False
    values: tuple[Any, ...] | None = None
    label: str | None = None  # when the Search page words it apart from the Model page


@dataclass(frozen=True)
class Setting:
    """One setting of a run: the RunConfig field (dotted for the head's) and how a person meets it."""

    field: str
    label: str
    help: str = ""
    flags: tuple[Flag, ...] = ()
    search: Search | None = None
    kinds: tuple[str, ...] | None = None  # the kinds of data it applies to; None: every kind
    variants: dict[str, tuple[str, str]] = field(default_factory=dict)  # strategy id -> (label, help) in its words

    @property
    def type(self) -> Any:
        """The setting's Python type, read from RunConfig (or its head or augmentation)."""
        owner, _, name = self.field.rpartition(".")
        cls = {"": RunConfig, "head": HeadConfig, "augment": AugmentConfig}[owner]
        kind = {f.name: f.type for f in fields(cls)}[name]
        return {"int": int, "float": float, "str": str, "bool": bool}.get(kind, kind) if isinstance(kind, str) else kind

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The values the setting takes, where it is a choice among words."""
        return CHOICES.get(self.field)

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The lowest and highest value validate() accepts, where the setting is a number."""
        return RANGES.get(self.field)

    def applies_to(self, kind: str) -> bool:
        """Whether the setting means something for this kind of data."""
        return self.kinds is None or kind in self.kinds

    def label_for(self, strategy: str = "", **words: Any) -> str:
        """The page's label, in the strategy's words where it has its own."""
        return self.variants.get(strategy, (self.label, self.help))[0].format(**words)

    def help_for(self, strategy: str = "", **words: Any) -> str:
        """The page's help, its `{names}` filled in, in the strategy's words where it has its own."""
        return self.variants.get(strategy, (self.label, self.help))[1].format(**words)


_ALL_OFF = {name: False for name in asdict(AugmentConfig())}

_SETTINGS = (
    # The order is the `config` command's (its flags in --help).
    Setting("backbone", "Backbone",
            "The pretrained network that turns each image into features for the new classifier; bigger ones are "
            "usually more accurate but slower. ImageNet top-1: how often its first guess was right on ImageNet's "
            "1,000 categories, a rough guide to how well it sees.",
            flags=(Flag("backbone", "a backbone id from 'python -m core backbones'"),
                   Flag("hub", "a TF Hub feature-vector handle: a URL or a SavedModel folder (instead of --backbone)",
                        convert=backbones.hub_id))),
    Setting("strategy", "Transfer strategy",
            "How much of the backbone is retrained on your images. Feature extraction keeps it frozen (unchanged) and "
            "trains only the new classifier; fine-tuning and gradual unfreezing then adjust its top layers too; from "
            "scratch trains everything from random weights.",
            flags=(Flag("strategy", "a strategy id from 'python -m core strategies'"),)),
    Setting("source_run", "Earlier run to start from",
            "A model trained earlier in this workspace, best on images like yours.",
            flags=(Flag("source-run", "the earlier run domain_weights and weight_init start from"),)),
    Setting("weights", "Starting weights",
            "Weights are the numbers a network learns. Pretrained ones, learned from ImageNet's 1.2 million everyday "
            "photos, are what makes transfer learning work; random weights show what the network learns from your "
            "images alone.",
            flags=(Flag("weights"),)),
    Setting("epochs", "Epochs",
            "The most passes over all the training images{phase}; early stopping (under Advanced settings) can end "
            "training sooner.",
            flags=(Flag("epochs", "epochs of the first phase"),)),
    Setting("learning_rate", "Learning rate",
            "How big a change the model makes to its weights after each batch of images. Too high and training jumps "
            "around; too low and it learns slowly. 0.001 is a good start.",
            flags=(Flag("learning-rate", "learning rate of the first phase"),),
            search=Search("lr", 0, "how big a step each update takes", span=(1e-5, 1e-1), log=True)),
    Setting("fine_tune_epochs", "Fine-tuning epochs",
            "Epochs after the classifier has been trained, with the top of the backbone unfrozen{zero}",
            flags=(Flag("fine-tune-epochs", "epochs of the fine-tuning phase, or of each unfreezing step"),),
            variants={"gradual_unfreeze": ("Epochs per step",
                                           "Epochs after each group of layers is opened (made trainable)."),
                      "distill": ("Fine-tuning epochs",
                                  "Epochs after the student's classifier has been trained, with the top of its "
                                  "backbone unfrozen{zero} A pretrained student learns most from a long schedule, so "
                                  "choosing distillation sets 20, with every layer open (1000 layers to retrain), "
                                  "zoom added to the augmentation and no early stopping; use fewer when time matters "
                                  "more than coming close to the teacher.")}),
    Setting("fine_tune_learning_rate", "Learning rate after the head",
            "The learning rate once the backbone is being retrained. Kept low so the pretrained knowledge is "
            "adjusted, not overwritten.",
            flags=(Flag("fine-tune-lr", "learning rate of the later phases"),),
            search=Search("fine_tune_lr", 8, "the learning rate once the backbone is opened", span=(1e-6, 1e-3),
                          log=True, label="Fine-tuning rate")),
    Setting("fine_tune_layers", "Backbone {unit} to retrain",
            "How many of the backbone's top layers (those with weights), or top layer groups, are retrained.",
            flags=(Flag("fine-tune-layers", "how many top layers (or groups) fine-tuning opens"),),
            search=Search("fine_tune_layers", 7, "how many top layers (or groups) of the backbone fine-tuning trains",
                          span=(5, 100), label="Layers to open")),
    Setting("fine_tune_unit", "Count the top of the backbone in",
            "Layers: single layers with weights. Groups: whole stages of the backbone, found from its structure "
            "(shown in the picture above).",
            flags=(Flag("fine-tune-unit"),)),
    Setting("image_size", "Image size (pixels per side)",
            "Images are resized to this square size. {backbone} was pretrained at {pretrained} px; smaller is faster, "
            "larger can see finer detail. The range is what its weights allow.",
            flags=(Flag("image-size"),), kinds=("image",)),
    Setting("batch_size", "Batch size",
            "How many images the model looks at before each update of its weights. Smaller uses less memory; larger "
            "gives steadier updates.",
            flags=(Flag("batch-size"),)),
    Setting("optimizer", "Optimizer",
            "The rule that updates the weights (the numbers the network learns) after each batch; Adam is a safe "
            "default.",
            flags=(Flag("optimizer"),),
            search=Search("optimizer", 6, "the update rule")),
    Setting("schedule", "Learning-rate schedule",
            "How the learning rate changes during a phase. Constant keeps it; cosine lowers it smoothly to zero by the "
            "phase's end; warm-up then cosine first climbs to it over 15 % of the phase (use it when a network "
            "learns from random weights: the small network trained from scratch gets it); the last one divides it by "
            "three whenever the validation loss (how wrong the model is on the validation images) stops improving.",
            flags=(Flag("schedule"),)),
    Setting("label_smoothing", "Label smoothing",
            "Trains towards 'probably this class' instead of 'certainly': makes the model less over-confident.",
            flags=(Flag("label-smoothing"),),
            search=Search("label_smoothing", 3, "how much the labels are softened against overconfidence",
                          span=(0.0, 0.2))),
    Setting("class_weights", "Class weights",
            "Makes mistakes on rare classes count more, so the model does not ignore them. Automatic switches it on "
            f"when the largest class has more than {strategies.IMBALANCE_AUTO:g} times the images of the smallest.",
            flags=(Flag("class-weights"),)),
    Setting("patience", "Early-stopping patience (epochs)",
            "Stop a phase after this many epochs without a better validation loss (how wrong the model is on the "
            "validation images). The best epoch is kept either way; 0 never stops early.",
            flags=(Flag("patience"),)),
    Setting("seed", "Random seed", "The same seed gives the same split of the images and the same start.",
            flags=(Flag("seed"),)),
    Setting("mixed_precision", "Mixed precision (GPU only)",
            "Computes with 16-bit instead of 32-bit numbers on a GPU (graphics card): faster and lighter. Without a "
            "GPU it is ignored, and the Train page says so.",
            flags=(Flag("mixed-precision", "float16 compute (GPU only)", switch=True, value=True),)),
    Setting("head.pooling", "Pooling",
            "The backbone describes each patch of the image; pooling turns that grid into one list of numbers for the "
            "classifier: the average over the image (the usual choice), the strongest response, the strongest in each "
            "2x2 block of patches (keeps a coarse layout), or every patch (many more weights). A TF Hub model does "
            "this by itself.",
            flags=(Flag("pooling"),),
            search=Search("pooling", 5, "how the backbone's feature map becomes one vector")),
    Setting("head.dropout", "Dropout",
            "The share of features switched off at random while training, so the classifier cannot lean on a few of "
            "them. Helps against overfitting.",
            flags=(Flag("dropout"),),
            search=Search("dropout", 1, "share of the head's inputs switched off at random while training",
                          span=(0.0, 0.6))),
    Setting("head.hidden_units", "Hidden units",
            "0 goes straight from the backbone's features to one score per class. More adds an extra layer of that "
            "many units in between, which can combine features but needs more images.",
            flags=(Flag("hidden-units"),),
            search=Search("hidden_units", 2, "size of an extra layer in the head (0: none)",
                          values=(0, 64, 128, 256, 512))),
    Setting("head.l2", "Weight penalty (L2)",
            "Keeps the classifier's weights small, which helps against overfitting: memorising the few training "
            "images instead of learning what the classes have in common.",
            flags=(Flag("l2"),),
            search=Search("l2", 4, "how strongly large head weights are discouraged", values=(0.0, 1e-5, 1e-4, 1e-3),
                          label="L2 penalty")),
    Setting("augment", "Augmentation",
            "Shows the model slightly changed copies of the training images (mirrored, turned, zoomed…), new ones "
            "every epoch, so it learns what matters instead of memorising the exact pictures.",
            flags=(Flag("no-augment", switch=True, value=_ALL_OFF),),
            search=Search("augment", 9, "random flips and turns of the training images, on or off",
                          values=(True, False)),
            kinds=("image",)),
    Setting("source_backbone", "Backbone to copy layers from",
            "Copies the shared layers from a plain backbone (its ImageNet or random weights) instead of an earlier run.",
            flags=(Flag("source-backbone", "layer_transfer: copy shared layers from this backbone instead of a run"),)),
    Setting("temperature", "Temperature",
            "How much the teacher's answers are softened before the student learns from them.",
            flags=(Flag("temperature", "distill: how much the teacher's answers are softened (default 4)"),)),
    Setting("distill_weight", "Teacher's share",
            "How much the teacher's answers count against the true labels, from 0 to 1.",
            flags=(Flag("distill-weight", "distill: the teacher's share of the loss, 0-1 (default 0.7)"),)),
    Setting("compare_student_alone", "Also train the student alone",
            "The same student trained without its teacher, with the same budget, to show whether the teacher helped.",
            flags=(Flag("compare-student-alone",
                        "distill: also train the same student without the teacher, same budget", switch=True,
                        value=True),)),
    Setting("augment_views", "Prepared augmented copies per image",
            "While the backbone is frozen (not retrained), TransferLab can run it once on this many changed copies of "
            "each image and reuse the results, which is much faster. 0 runs it on fresh copies every epoch: slower, "
            "with endless variety.",
            flags=(Flag("augment-views", "with a frozen backbone: augmented views per image to cache"),),
            kinds=("image",)),
    Setting("compare_scratch", "Also train from scratch, to check that transfer learning helped",
            "After this run, a small network is trained from random weights on the same images, the way that works "
            "best without pretrained weights (as when none can be had), for at least as many epochs. If that "
            "baseline does better, the run is flagged 'transfer hurt'. Takes about as long again.",
            flags=(Flag("compare-scratch", "also train a small network from scratch, to show whether transfer helped",
                        switch=True, value=True),)),
    Setting("target_dataset_id", "Target dataset",
            "Images from where the model will be used; they train without their labels, which only measure accuracy "
            "there.",
            flags=(Flag("target-dataset", "domain adaptation: a dataset of images from where the model will be used "
                                          "(its labels only measure accuracy there)"),)),
    Setting("adapt_weight", "Adaptation weight",
            "How much lining up the two domains counts against learning the labels (re-colouring: the share of the "
            "way to the target's colour, 1 at most).",
            flags=(Flag("adapt-weight", "how much lining up the two domains counts (default 1)"),)),
    Setting("adapt_loss", "Adaptation loss",
            "How the two domains are lined up: recolor (the default: the labelled images' features are given the "
            "target's mean and correlations before the head learns), or a loss on the adaptation layer, MMD or CORAL.",
            flags=(Flag("adapt-loss", "adaptive_layers: recolor (default), mmd or coral"),)),
    Setting("adapt_recolor", "Re-colour first",
            "Before the adversarial training, your images' features are given the mean and correlations of the "
            "target's (CORAL). Use it when the two kinds of images differ in colour, light or background; it is on by "
            "default because it measured most of DANN's gain on the sample's field photos.",
            flags=(Flag("no-recolor", "domain_adversarial: do not re-colour the features like the target's first",
                        switch=True, value=False),)),
    Setting("target_labeled_per_class", "Labelled target images per class",
            "Also trains on this many labelled images of each class from the target dataset (0: none).",
            flags=(Flag("target-labeled-per-class",
                        "also train on this many labelled target images per class (default 0)"),)),
    Setting("compare_source_only", "Also train without adaptation",
            "The same run without adaptation, to show whether adaptation helped on the target.",
            flags=(Flag("compare-source-only",
                        "also train the source-only baseline, to show whether adaptation helped on the target",
                        switch=True, value=True),)),
    Setting("val_fraction", "Validation share",
            "The model learns from the training images. Validation images check it after every epoch; test images are "
            "kept aside and used once at the end to measure accuracy honestly."),
    Setting("test_fraction", "Test share",
            "The model learns from the training images. Validation images check it after every epoch; test images are "
            "kept aside and used once at the end to measure accuracy honestly."),
)

SETTINGS: dict[str, Setting] = {s.field: s for s in _SETTINGS}


def get(name: str) -> Setting:
    """The setting of a RunConfig field (dotted for the head's: "head.dropout")."""
    return SETTINGS[name]


def for_kind(kind: str) -> list[Setting]:
    """The settings that mean something for a kind of data, in the table's order."""
    return [s for s in SETTINGS.values() if s.applies_to(kind)]


def searchable() -> list[Setting]:
    """The settings a study can search, in the Search page's order."""
    return sorted((s for s in SETTINGS.values() if s.search), key=lambda s: s.search.order)


def given(values: dict[str, Any]) -> dict[str, Any]:
    """Settings from command-line flags: {flag dest: value or None} -> {field: value} for the flags given
    (a later flag of the same setting wins: --hub over --backbone)."""
    out: dict[str, Any] = {}
    for setting in SETTINGS.values():
        for flag in setting.flags:
            value = values.get(flag.dest)
            if flag.switch:
                if value:
                    out[setting.field] = flag.value
            elif value is not None:
                out[setting.field] = flag.convert(value) if flag.convert else value
    return out

