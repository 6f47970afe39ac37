"""Class-size warnings: one sentence per kind of problem, naming each class, not one near-identical line per class."""

from core.data import health


def test_small_classes_share_one_sentence():
    five = {name: 60 for name in ("daisy", "dandelion", "roses", "sunflowers", "tulips")}
    (only,) = health.health_warnings(five)
    assert only.startswith("Every class has fewer than 100 images") and all(f"'{c}': 60" in only for c in five)
    mixed = health.health_warnings({"a": 6, "b": 4, "c": 40, "d": 45})
    assert mixed[0] == "2 classes have fewer than 10 images ('a': 6, 'b': 4); add at least 10 to each before training."
    assert mixed[1].startswith("2 classes have fewer than 100 images ('c': 40, 'd': 45)")
    assert health.health_warnings({"a": 6, "b": 400})[0] == "Class 'a' has only 6 images; add at least 10 before training."
