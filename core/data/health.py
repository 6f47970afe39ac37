"""The health report of a dataset: class sizes and balance, image sizes, exact duplicates within and
across classes, and how the default split would divide it; and the check that it can be trained on."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from core.data import images, kinds, splits
from core.errors import DatasetError
from core.spec.config import RunConfig

MIN_IMAGES_TO_TRAIN = 10
ADVISED_IMAGES = 100
IMBALANCE_WARNING = 3.0  # largest class / smallest class
SMALL_SIDE = images.SMALL_SIDE  # the image kind's threshold, named here for the Data page

# The split the health report shows when nothing else is chosen: the RunConfig defaults.
_DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.name in ("val_fraction", "test_fraction", "seed")}


def health_warnings(counts: dict[str, int], items: str = "images") -> list[str]:
    """Plain sentences about class sizes and balance; `items`: the kind's word for several (core.spec.kinds)."""
    out = []
    # One sentence per kind of problem, naming every class it concerns (not one near-identical line per class).
    too_few = {label: n for label, n in sorted(counts.items()) if n < MIN_IMAGES_TO_TRAIN}
    few = {label: n for label, n in sorted(counts.items()) if MIN_IMAGES_TO_TRAIN <= n < ADVISED_IMAGES}
    if len(too_few) == 1:
        (label, n), = too_few.items()
        out.append(f"Class '{label}' has only {n} {items}; add at least {MIN_IMAGES_TO_TRAIN} before training.")
    elif too_few:
        out.append(f"{len(too_few)} classes have fewer than {MIN_IMAGES_TO_TRAIN} {items} ({_listed(too_few)}); "
                   f"add at least {MIN_IMAGES_TO_TRAIN} to each before training.")
    if len(few) == 1:
        (label, n), = few.items()
        out.append(f"Class '{label}' has {n} {items}; {ADVISED_IMAGES} or more per class usually gives a more "
                   "reliable model.")
    elif few:
        who = "Every class has" if len(few) == len(counts) else f"{len(few)} classes have"
        out.append(f"{who} fewer than {ADVISED_IMAGES} {items} ({_listed(few)}); {ADVISED_IMAGES} or more per class "
                   "usually gives a more reliable model.")
    if counts and min(counts.values()) and max(counts.values()) / min(counts.values()) >= IMBALANCE_WARNING:
        out.append(
            f"The classes are imbalanced ({max(counts.values())} vs {min(counts.values())} {items}); "
            "class weights will balance their influence during training."
        )
    return out


def _listed(sizes: dict[str, int]) -> str:
    """"'a': 4, 'b': 6" for a sentence."""
    return ", ".join(f"'{label}': {n}" for label, n in sizes.items())


def find_duplicates(info: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Exact copies (same original bytes) within one class, and across classes (label conflicts)."""
    label_of = {rel: label for label in info["classes"] for rel in info["images"][label]}
    groups: dict[str, list[str]] = {}
    for rel, digest in info.get("hashes", {}).items():
        if rel in label_of:
            groups.setdefault(digest, []).append(rel)
    within, across = [], []
    for files in groups.values():
        if len(files) < 2:
            continue
        files = sorted(files)
        classes = sorted({label_of[f] for f in files}, key=info["classes"].index)
        group = {"classes": classes, "files": files}
        (across if len(classes) > 1 else within).append(group)
    return {"within": within, "across": across}


def duplicate_warnings(duplicates: dict[str, list[dict[str, Any]]], item: str = "image") -> list[str]:
    """Plain sentences about exact copies."""
    out = []
    extra = sum(len(g["files"]) - 1 for g in duplicates["within"])
    if extra:
        out.append(
            f"{extra} {item}(s) are exact copies of another {item} in the same class; copies count twice and can "
            "land in both training and test, which flatters the test accuracy."
        )
    if duplicates["across"]:
        out.append(
            f"{len(duplicates['across'])} {item}(s) appear in more than one class (label conflicts); "
            "look at them in the health report and remove the copies with the wrong label."
        )
    return out


def split_counts(info: dict[str, Any], parts: dict[str, list[tuple[str, int]]]) -> dict[str, dict[str, int]]:
    """Images per class in each part of a split: {class: {"train": n, "val": n, "test": n}}."""
    out = {label: {p: 0 for p in splits.PARTS} for label in info["classes"]}
    for part in splits.PARTS:
        for _, index in parts[part]:
            out[info["classes"][index]][part] += 1
    return out


def health_report(
    info: dict[str, Any], val_fraction: float = _DEFAULTS["val_fraction"], test_fraction: float = _DEFAULTS["test_fraction"],
    seed: int = _DEFAULTS["seed"],
) -> dict[str, Any]:
    """Everything the health report shows, from a dataset.json (works for datasets imported before it existed)."""
    counts = info["counts"]
    if not counts:
        return unlabelled_report(info)
    largest, smallest = max(counts.values()), min(counts.values())
    ratio = largest / max(smallest, 1)
    duplicates = find_duplicates(info)
    try:
        parts = splits.split(info, val_fraction, test_fraction, seed)
        split_info: dict[str, Any] = {"counts": split_counts(info, parts), "problem": None}
    except DatasetError as exc:
        split_info = {"counts": None, "problem": str(exc)}
    split_info |= {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed,
                   "predefined": bool(info.get("predefined_split"))}
    return {
        "images": sum(counts.values()),
        "classes": len(counts),
        "counts": counts,
        "imbalance_ratio": round(ratio, 2),
        "imbalanced": ratio >= IMBALANCE_WARNING,
        "remedy": (
            "Class weights are applied automatically during training, so each class counts equally; "
            f"adding {kinds.of(info).spec.items} to the smallest classes helps most."
        ),
        "too_small_to_train": sorted(c for c, n in counts.items() if n < MIN_IMAGES_TO_TRAIN),
        "below_advised": sorted(c for c, n in counts.items() if MIN_IMAGES_TO_TRAIN <= n < ADVISED_IMAGES),
        **kinds.of(info).health(info),  # the kind's own facts (images: their sizes)
        "skipped": len(info.get("skipped", [])),
        "ignored_system_files": info.get("ignored_system_files", 0),
        "duplicates": {"within": len(duplicates["within"]), "across": len(duplicates["across"])},
        "unlabeled": len(info.get("unlabeled", [])),
        "split": split_info,
    }


def unlabelled_report(info: dict[str, Any]) -> dict[str, Any]:
    """The health report of a dataset without classes (images from where the model will be used): a sentence."""
    n, items = len(info.get("unlabeled", [])), kinds.of(info).spec.items
    note = (f"{n:,} unlabelled {items} from where the model will be used, and no classes: this dataset cannot be "
            "trained on by itself; choose it on the Model page as the target of a domain-adaptation strategy, "
            f"and a model trained on a labelled dataset learns to work on {items} like these.")
    return {
        "images": n, "classes": 0, "counts": {}, "imbalance_ratio": 1.0, "imbalanced": False, "remedy": "",
        "too_small_to_train": [], "below_advised": [], "sizes": {"width": None, "height": None, "small": 0},
        "skipped": len(info.get("skipped", [])), "ignored_system_files": info.get("ignored_system_files", 0),
        "duplicates": {"within": 0, "across": 0}, "unlabeled": n, "role": info.get("role", "target"), "note": note,
        "split": {"counts": None, "problem": f"{items.capitalize()} without classes are not split; they adapt a model as its target.",
                  "predefined": False},
    }


def check_trainable(info: dict[str, Any], backbone: str | None = None) -> None:
    """Refuse, in one sentence, a dataset too small to train on, or one the backbone cannot read."""
    if backbone is not None:
        kinds.check_backbone(info, backbone)
    if not info["counts"]:
        items = kinds.of(info).spec.items
        raise DatasetError(
            f"The dataset '{info['name']}' holds only unlabelled {items} (no classes), so it cannot be trained on; "
            f"train on a labelled dataset and choose this one as its target ({items} from where the model will be used).")
    small = {c: n for c, n in info["counts"].items() if n < MIN_IMAGES_TO_TRAIN}
    items = kinds.of(info).spec.items
    if small:
        label, n = next(iter(small.items()))
        raise DatasetError(
            f"Class '{label}' has only {n} {items}; add at least {MIN_IMAGES_TO_TRAIN} {items} to every class before "
            "training."
        )
