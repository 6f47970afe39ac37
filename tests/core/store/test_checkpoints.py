"""Checkpoint pointers: a checkpoint is published by one atomic pointer file; a torn one is never published."""

from core.store import runs


def _write_generation(prefix, payload: str):
    files = runs.new_checkpoint_files(prefix)
    (files.parent / f"{files.name}.index").write_text(payload)
    (files.parent / f"{files.name}.data-00000-of-00001").write_text(payload)
    return files


def test_published_checkpoint_is_what_the_pointer_names_and_older_ones_are_removed(tmp_path):
    prefix = tmp_path / "checkpoints" / "last"
    assert runs.checkpoint_files(prefix) is None
    first = _write_generation(prefix, "1")
    runs.publish_checkpoint(prefix, first)
    assert runs.checkpoint_files(prefix) == first
    second = _write_generation(prefix, "2")
    assert second != first
    runs.publish_checkpoint(prefix, second)
    assert runs.checkpoint_files(prefix) == second
    names = sorted(p.name for p in prefix.parent.iterdir())
    assert names == sorted(["last.json", f"{second.name}.index", f"{second.name}.data-00000-of-00001"])


def test_a_torn_checkpoint_is_never_published(tmp_path):
    prefix = tmp_path / "checkpoints" / "best"
    good = _write_generation(prefix, "good")
    runs.publish_checkpoint(prefix, good)
    torn = runs.new_checkpoint_files(prefix)  # a process killed while writing: data but no index, no pointer
    (torn.parent / f"{torn.name}.data-00000-of-00001").write_text("half")
    assert runs.checkpoint_files(prefix) == good
    (prefix.parent / "best.json").write_text('{"files": "be')  # even a torn pointer never names half a checkpoint
    assert runs.checkpoint_files(prefix) is None
    runs.publish_checkpoint(prefix, good)  # the next publication clears the leftovers of the killed process
    assert runs.checkpoint_files(prefix) == good and not any(torn.name in p.name for p in prefix.parent.iterdir())


def test_a_checkpoint_of_an_older_version_without_pointer_is_still_found(tmp_path):
    prefix = tmp_path / "checkpoints" / "last"
    prefix.parent.mkdir()
    (prefix.parent / "last.index").write_text("old")
    assert runs.checkpoint_files(prefix) == prefix
