"""The shared mechanisms behind the corpus: folder locks, the atomic writer's temp files, the user-file loader."""

from __future__ import annotations

import os

import pytest

from stepkit.errors import DataError, StepkitError
from stepkit.io import atomic_write_text, is_temp_name, sweep_stale_temps
from stepkit.locks import LOCK_NAME, holds_lock, output_lock
from stepkit.userfiles import load_yaml, parse_json, version_problem


def test_lock_is_reentrant_and_leaves_no_trace(tmp_path):
    out = tmp_path / "out"
    with output_lock(out):
        assert (out / LOCK_NAME).is_file() and holds_lock(out)
        with output_lock(out):  # the verb and the library function it calls
            atomic_write_text(out / "a.txt", "x")
        assert holds_lock(out)
    assert not holds_lock(out) and sorted(os.listdir(out)) == ["a.txt"]
    with output_lock(tmp_path / "unused"):
        pass
    assert not (tmp_path / "unused").exists()  # created for nothing: removed again


def test_lock_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StepkitError, match="is a file"):
        with output_lock(tmp_path / "f"):
            pass


def test_taking_the_lock_sweeps_stale_temps_but_not_a_nested_stages(tmp_path):
    out = tmp_path / "run"
    (out / "graphs").mkdir(parents=True)
    (out / "stage").mkdir()
    for p in (out / ".qa.jsonl.abcd1234.tmp", out / "graphs" / ".v.json.zz_9yx8w.tmp",
              out / "stage" / ".m.json.abcdefgh.tmp", out / ".v.mp4.1234.tmp.mp4"):
        p.write_text("partial")
    (out / "stage" / LOCK_NAME).write_text("{}")  # another stage's folder
    (out / "keep.tmp").write_text("a user's file")
    with output_lock(out):
        left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == [LOCK_NAME, "keep.tmp", "stage/.m.json.abcdefgh.tmp", f"stage/{LOCK_NAME}"]
    assert sweep_stale_temps(tmp_path / "absent") == []
    assert is_temp_name(".qa.jsonl.abcd1234.tmp") and not is_temp_name("qa.jsonl")


@pytest.mark.parametrize("value, says", [
    ("1.0", None), (1.0, 'write "1.0" in quotes'), (1, 'write "1.0" in quotes'), (999, "unknown schema version 999"),
    ("2.0", "unknown schema version '2.0'"), (None, "missing"), (True, "a boolean"), ([1], "an array"),
    (float("nan"), "nan"),
])
def test_version_problem(value, says):
    got = version_problem(value, ("1.0",))
    assert (got is None) if says is None else (says in got), got


@pytest.mark.parametrize("text, says", [
    ("", "empty file"), ("[" * 2000 + "]" * 2000, "nested more than 1024"), ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": -Infinity}', "-Infinity is not"), (b"\xff{}", "UTF-8"), ('{"a": 1', "invalid JSON at line 1"),
    ("[]", "holds an object"),
])
def test_parse_json_names_the_problem(text, says):
    with pytest.raises(DataError) as err:
        parse_json(text, "f.json", expect=dict)
    assert str(err.value).startswith("f.json: ") and says in str(err.value)


def test_load_yaml_refuses_object_tags(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(DataError, match="c.yaml: refused YAML at line 1"):
        load_yaml(p)
    p.write_text("")
    assert load_yaml(p, empty={}) == {}
