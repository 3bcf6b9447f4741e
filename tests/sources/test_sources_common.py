"""Batch atomic writes and ids shared by the importers."""

from __future__ import annotations

import pytest

from stepkit.io import atomic_write_many
from stepkit.sources.common import object_id, safe_name


def test_atomic_write_many_writes_all_and_leaves_no_temporaries(tmp_path):
    (tmp_path / "b.json").write_text("old")
    paths = atomic_write_many([(tmp_path / "a.json", "A"), (tmp_path / "b.json", b"B"), (tmp_path / "d" / "c", "C")])
    assert [p.name for p in paths] == ["a.json", "b.json", "c"]
    assert (tmp_path / "a.json").read_text() == "A" and (tmp_path / "b.json").read_text() == "B"
    assert (tmp_path / "d" / "c").read_text() == "C"
    assert not list(tmp_path.rglob("*.tmp"))


def test_atomic_write_many_failure_keeps_old_files(tmp_path):
    (tmp_path / "a.json").write_text("old")

    def items():
        yield tmp_path / "a.json", "new"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_write_many(items())
    assert (tmp_path / "a.json").read_text() == "old"
    assert not list(tmp_path.rglob("*.tmp"))


def test_ids():
    assert object_id("closet/cabinet") == "obj_closet_cabinet"
    assert safe_name("a/b c") == "a_b_c"
