"""Reading model answers: every shape real models produce, and rejects (never crashes) for the rest."""

from __future__ import annotations

import random

import pytest

from stepkit.induce.vlm import _read_attributes, _read_kind, _read_motion, _read_objects, _read_relation, _Stats
from stepkit.induce.vlm_parse import (
    Reject,
    clean_sentence,
    extract_json,
    normalize_label,
    parse_yes_no,
)


@pytest.mark.parametrize("text", [
    '{"objects": ["cup", "table"]}',
    '```json\n{"objects": ["cup", "table"]}\n```',
    '```\n{"objects": ["cup", "table"]}\n```',
    'Sure! Here is the JSON you asked for:\n{"objects": ["cup", "table"]}\nLet me know if you need more.',
    '{"objects": ["cup", "table",],}',
    "{'objects': ['cup', 'table']}",
    '{"objects": ["cup", "table"]',  # truncated at max_new_tokens
    'Objects [1]: {"objects": ["cup", "table"]}',  # a bracket in the prose before the JSON
    "Here's what I see: {\"objects\": [\"cup\", \"table\"]}",
])
def test_extract_json_recovers_the_value(text):
    assert extract_json(text) == {"objects": ["cup", "table"]}


def test_extract_json_python_literals_and_types():
    assert extract_json("{'a': True, 'b': None}") == {"a": True, "b": None}
    assert extract_json('{"a": true, "b": null}') == {"a": True, "b": None}
    assert extract_json('noise [1, 2] then {"k": 1}', dict) == {"k": 1}
    with pytest.raises(Reject) as e:
        extract_json("[1, 2]", dict)
    assert e.value.reason == "wrong_type"


@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("I see a cup and a table.", "no_json"),
    ("{not json at all}", "bad_json"),
    (None, "not_text"),
])
def test_extract_json_rejects(text, reason):
    with pytest.raises(Reject) as e:
        extract_json(text)
    assert e.value.reason == reason


def test_fuzzed_garbage_only_ever_rejects():
    rng = random.Random(0)
    alphabet = '{}[]",:\'`\\ntruefalsenul0123 abcxyz\n'
    readers = [_read_objects, _read_kind, _read_motion, lambda t: _read_relation(t, "cup", "table"),
               lambda t: _read_attributes(t, ["color"], _Stats()), parse_yes_no, clean_sentence]
    for _ in range(1500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        for read in readers:
            try:
                read(text)
            except Reject:
                pass


def test_normalize_label():
    assert normalize_label("The Red_Cup.") == "red cup"
    assert normalize_label("  an  apple ") == "apple"
    for bad in ["", "a", "the", 3, None, "one two three four five", "x" * 50, "猫"]:
        with pytest.raises(Reject):
            normalize_label(bad)


@pytest.mark.parametrize("text,value", [
    ("Yes", True), ("yes.", True), ("YES, there is a cup.", True), ("No", False), ("no, it isn't", False),
    ('{"answer": "yes"}', True), ('```json\n{"answer": false}\n```', False), ("  **Yes**", True),
])
def test_parse_yes_no(text, value):
    assert parse_yes_no(text) is value


@pytest.mark.parametrize("text", ["maybe", "", "Yesterday", "I cannot tell", "nobody"])
def test_parse_yes_no_rejects(text):
    with pytest.raises(Reject):
        parse_yes_no(text)


def test_readers_of_each_question():
    assert _read_objects('["Person", "the cup", "person"]') == ["person", "cup"]
    assert _read_objects('{"objects": [{"name": "cup"}, {"label": "table"}]}') == ["cup", "table"]
    with pytest.raises(Reject, match="wrong_keys"):
        _read_objects('{"object_list": ["cup"]}')
    assert _read_kind('{"Kind": " Static "}') == "static"
    with pytest.raises(Reject, match="bad_value"):
        _read_kind('{"kind": "moving"}')
    assert _read_relation('{"subject": "cup", "predicate": "On", "object": "table"}', "cup", "table") == [("cup", "on", "table")]
    assert _read_relation('{"predicate": "none"}', "cup", "table") == []
    assert _read_relation('{"relations": [{"subject": "table", "predicate": "under", "object": "cup"}]}', "cup", "table") == [
        ("table", "under", "cup")]
    with pytest.raises(Reject, match="wrong_objects"):
        _read_relation('{"subject": "cup", "predicate": "on", "object": "cup"}', "cup", "table")
    assert _read_motion('{"verb": "Pick up", "object": "the cup"}') == ("pick up", "cup")
    assert _read_motion('{"verb": "walk", "object": null}') == ("walk", None)
    assert _read_motion('{"verb": "did not move"}') is None
    stats = _Stats()
    assert _read_attributes('{"attributes": {"color": "Red", "shape": null, "weight": "1kg"}}', ["color", "shape"], stats) == {
        "color": "red"}
    assert stats.filtered["unknown_attribute"]["attributes"] == 1
    with pytest.raises(Reject, match="wrong_keys"):
        _read_attributes('{"weight": "heavy"}', ["color"], _Stats())


def test_clean_sentence():
    assert clean_sentence('  "The person opens the door."  ') == "The person opens the door."
    assert clean_sentence('```json\n{"event": "A man walks in."}\n```') == "A man walks in."
    assert clean_sentence("Event: a dog runs.\n") == "a dog runs."
    assert len(clean_sentence("word " * 200)) <= 400
    with pytest.raises(Reject):
        clean_sentence("!!! ...")


def test_clean_sentence_drops_control_characters():
    assert clean_sentence("neC holding\x18 purple~\x0f\ufffd black\n") == "neC holding purple~ black"
