"""Snapshot tests of the inducer's prompt templates.

Each prompt kind is rendered with fixed inputs and compared with ``snapshots/prompts_<version>/<kind>.txt``.
After an intended change of a shipped template, regenerate with::

    STEPKIT_UPDATE_SNAPSHOTS=1 pytest tests/induce/test_vlm_prompts.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stepkit.errors import ConfigError
from stepkit.induce.vlm_prompts import PROMPT_KINDS, PromptSet, shipped_versions

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("STEPKIT_UPDATE_SNAPSHOTS") == "1"

FIXED = {
    "time": "1.50", "narrative": "A person holds a red cup next to a wooden table.", "object": "cup",
    "attribute_names": "color, size, shape, material, state", "a": "person", "b": "cup", "phrase": "a red cup",
    "name": "color", "value": "red", "subject": "person", "predicate": "holding", "t0": "0.50", "t1": "2.50",
    "others": "person, table", "agent": "person", "verb": "pick up", "object_phrase": " the cup", "label": "person",
    "count": "3",
}


@pytest.mark.parametrize("version", shipped_versions())
@pytest.mark.parametrize("kind", sorted(PROMPT_KINDS))
def test_prompt_snapshot(version, kind):
    ps = PromptSet.load(version)
    text = ps.render(kind, **{k: FIXED[k] for k in PROMPT_KINDS[kind]}) + "\n"
    path = SNAPSHOTS / f"prompts_{version}" / f"{kind}.txt"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"no snapshot {path}; run with STEPKIT_UPDATE_SNAPSHOTS=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"prompt {version}/{kind} changed; see the module docstring"


def test_every_snapshot_belongs_to_a_prompt():
    for version in shipped_versions():
        stored = {p.stem for p in (SNAPSHOTS / f"prompts_{version}").glob("*.txt")}
        assert stored == set(PROMPT_KINDS)


def test_custom_prompt_folder_is_checked(tmp_path):
    ps = PromptSet.load("v1")
    for kind, text in ps.templates.items():
        (tmp_path / f"{kind}.txt").write_text(text, encoding="utf-8")
    assert PromptSet.load(str(tmp_path)).digest() == ps.digest()
    (tmp_path / "kind.txt").write_text("Is the $thing static?", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kind.txt must use exactly the placeholders"):
        PromptSet.load(str(tmp_path))
    (tmp_path / "event.txt").unlink()
    with pytest.raises(ConfigError, match="missing template files event.txt"):
        PromptSet.load(str(tmp_path))
    with pytest.raises(ConfigError, match="neither a folder nor a shipped prompt version"):
        PromptSet.load("v999")
