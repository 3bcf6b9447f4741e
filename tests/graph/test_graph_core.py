"""STSG round trip, validation messages, the CLI's validate/show, and the temporal index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.errors import GraphError
from stepkit.graph import (
    STSG,
    Action,
    Attribute,
    Box,
    Clip,
    Object,
    Reference,
    Relation,
    TemporalIndex,
    graph_problems,
    load_graph,
    save_graph,
)

runner = CliRunner()


def small_graph() -> STSG:
    g = STSG(video_id="kitchen", fps=10.0, duration=8.0, num_frames=80, width=160, height=120)
    g.objects += [
        Object("p1", "person", "dynamic"),
        Object("c1", "cup", "dynamic", [Attribute("color", "red")], [Box(1.0, (10, 10, 20, 20), 10)]),
        Object("t1", "table", "static", [Attribute("material", "wood")]),
        Object("d1", "door", "static", [Attribute("state", "closed", 0.0, 5.0), Attribute("state", "open", 5.0, 8.0)]),
    ]
    g.relations += [
        Relation("r1", "p1", "holding", "c1", 1.0, 3.0),
        Relation("r2", "c1", "on", "t1", 3.5, 8.0),
        Relation("r3", "p1", "looking at", "d1", 4.0, 6.0),
    ]
    g.actions += [
        Action("a1", "p1", "pick up", 0.5, 1.0, object="c1"),
        Action("a2", "p1", "put down", 3.0, 3.5, object="c1", target="t1"),
        Action("a3", "p1", "open", 4.5, 5.0, object="d1"),
    ]
    g.clips += [Clip("s0", 0.0, 4.0, "a person picks up a cup", [1.0]), Clip("s1", 4.0, 8.0, "a person opens the door", [5.0])]
    g.references += [Reference("ref1", "c1", "c1")]
    return g


def test_round_trip_is_exact_and_byte_stable(tmp_path: Path) -> None:
    g = small_graph()
    save_graph(g, tmp_path / "a.json")
    again = load_graph(tmp_path / "a.json")
    assert again == g
    save_graph(again, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_time_varying_attribute() -> None:
    door = small_graph().object("d1")
    assert door.attribute("state", 1.0) == "closed"
    assert door.attribute("state", 6.0) == "open"


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (lambda d: d["relations"][0].__setitem__("object", "ghost"), "relations[0].object", "unknown object id 'ghost'"),
        (lambda d: d["actions"][0].__setitem__("t1", 0.1), "actions[0]", "ends before it starts"),
        (lambda d: d["relations"][1].__setitem__("t1", 99.0), "relations[1].t1", "past the video's duration"),
        (lambda d: d.__setitem__("schema_version", "7.3"), "schema_version", "unknown schema version"),
        (lambda d: d["objects"][0].__setitem__("kind", "flying"), "objects[0].kind", "is not one of"),
        (lambda d: d.__delitem__("fps"), "(document)", "'fps' is a required property"),
        (lambda d: d["objects"].append(dict(d["objects"][0])), "objects[4].id", "duplicate id"),
    ],
)
def test_problems_name_the_field(mutate, field: str, words: str) -> None:
    doc = small_graph().to_dict()
    mutate(doc)
    problems = graph_problems(doc)
    assert any(p.startswith(field + ":") and words in p for p in problems), problems


def test_load_graph_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"schema_version": "1.0", "video_id": ')
    with pytest.raises(GraphError, match=r"broken\.json: invalid JSON"):
        load_graph(bad)
    with pytest.raises(GraphError, match="no such graph file"):
        load_graph(tmp_path / "absent.json")


def test_cli_validate_rejects_each_kind_of_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    save_graph(small_graph(), good)
    doc = small_graph().to_dict()
    doc["relations"][0]["subject"] = "nobody"
    (tmp_path / "unknown_ref.json").write_text(json.dumps(doc))
    doc = small_graph().to_dict()
    doc["actions"][1]["t0"], doc["actions"][1]["t1"] = 3.5, 3.0
    (tmp_path / "backwards.json").write_text(json.dumps(doc))
    doc = small_graph().to_dict()
    doc["clips"][1]["t1"] = 20.0
    (tmp_path / "too_long.json").write_text(json.dumps(doc))
    doc = small_graph().to_dict()
    doc["schema_version"] = "0.1"
    (tmp_path / "version.json").write_text(json.dumps(doc))
    (tmp_path / "truncated.json").write_text(good.read_text()[:100])

    result = runner.invoke(app, ["graph", "validate", str(tmp_path)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "unknown_ref.json: relations[0].subject: unknown object id 'nobody'" in out
    assert "backwards.json: actions[1]: interval ends before it starts" in out
    assert "too_long.json: clips[1].t1: 20.0 is past the video's duration" in out
    assert "version.json: schema_version: unknown schema version '0.1'" in out
    assert "truncated.json: invalid JSON" in out
    assert "good.json" not in out.replace("1/6", "")

    ok = runner.invoke(app, ["graph", "validate", str(good)])
    assert ok.exit_code == 0, ok.output


def test_cli_show_prints_a_timeline(tmp_path: Path) -> None:
    save_graph(small_graph(), tmp_path / "g.json")
    result = runner.invoke(app, ["graph", "show", str(tmp_path / "g.json")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("cup#c1 (dynamic; color=red)" in line for line in lines)
    timeline = lines[lines.index("timeline:") + 1 :]
    assert "ACTION person#p1 pick up cup#c1" in timeline[0]
    assert any("person#p1 holding cup#c1" in line for line in timeline)


def test_temporal_index_queries() -> None:
    ix = TemporalIndex(small_graph())
    assert {r.id for r in ix.relations_at(2.0)} == {"r1"}
    assert {r.id for r in ix.relations_during(3.2, 4.5)} == {"r2", "r3"}
    assert [a.id for a in ix.actions_before(3.0)] == ["a1"]
    assert [a.id for a in ix.actions_after(3.0)] == ["a3"]
    assert [a.id for a in ix.actions_during(2.0, 3.2)] == ["a2"]
    assert [a.id for a in ix.actions_by_object["c1"]] == ["a1", "a2"]
    assert ix.visible_span("c1") == (0.5, 8.0)
