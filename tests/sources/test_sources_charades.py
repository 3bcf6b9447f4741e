"""Charades action timelines → STSG."""

from __future__ import annotations

import csv
import json
import time

import pytest
from typer.testing import CliRunner

from stepkit.errors import DataError
from stepkit.graph.serialize import load_graph
from stepkit.graph.validate import graph_problems
from stepkit.sources.charades import import_charades, parse_actions, row_to_graph
from stepkit.sources.vocab import canonical_object, charades_actions, star_actions

HEADER = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
          "actions", "length"]


def _row(**kw):
    row = dict.fromkeys(HEADER, "")
    row.update(id="46GP8", scene="Kitchen", objects="food;stove;cup", length="24.83",
               actions="c107 1.00 6.00;c109 5.50 9.00;c123 0.00 25.90")
    row.update(kw)
    return row


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)


def test_vocabulary_covers_every_charades_class():
    classes = charades_actions()
    assert sorted(classes) == [f"c{i:03d}" for i in range(157)]
    assert classes["c000"].verb == "hold" and classes["c000"].object == "clothes"
    assert classes["c000"].relation == "holding"
    assert classes["c059"].verb == "sit on" and classes["c059"].relation == "sitting_on"
    assert classes["c009"].object is None and classes["c009"].target == "table"
    # STAR's verbs for the classes STAR kept: every STAR (verb, object) pair is some Charades class's.
    charades_pairs = {(a.verb, a.object) for a in classes.values()}
    missing = {(a.verb, a.object) for a in star_actions().values()} - charades_pairs
    assert not missing, missing


def test_parse_actions_and_errors():
    assert parse_actions("c092 11.90 21.20;c147 0.00 12.60") == [("c092", 11.9, 21.2), ("c147", 0.0, 12.6)]
    assert parse_actions("") == []
    with pytest.raises(DataError, match="not 'cNNN t0 t1'"):
        parse_actions("c092 11.90")
    with pytest.raises(DataError, match="non-numeric"):
        parse_actions("c092 a b")


def test_row_to_graph_maps_actions_objects_and_implied_relations():
    g, warnings = row_to_graph(_row())
    assert graph_problems(g.to_dict()) == []
    labels = {o.id: o.label for o in g.objects}
    assert labels["person"] == "person"
    assert canonical_object("cup") == "cup/glass/bottle" and "cup/glass/bottle" in labels.values()
    acts = [(a.verb, labels.get(a.object), a.t0, a.t1) for a in g.actions]
    assert ("hold", "cup/glass/bottle", 1.0, 6.0) in acts
    assert ("put down", "cup/glass/bottle", 5.5, 9.0) in acts
    # the sofa segment ends past the video's length: clipped, with a warning
    assert ("sit on", "sofa/couch", 0.0, 24.83) in acts
    assert any("clipped" in w for w in warnings)
    rels = {(r.predicate, labels[r.object], r.t0, r.t1) for r in g.relations}
    assert rels == {("holding", "cup/glass/bottle", 1.0, 6.0), ("sitting_on", "sofa/couch", 0.0, 24.83)}
    kinds = {o.label: o.kind for o in g.objects}
    assert kinds["stove"] == "static" and kinds["food"] == "dynamic"


def test_bad_rows_are_reported_not_fatal(tmp_path):
    src = tmp_path / "c.csv"
    _write_csv(src, [_row(), _row(id="BAD01", length="abc"), _row(id="BAD02", actions="c999 1 2"),
                     _row(id="BAD03", actions="c001 1")])
    summary = import_charades(src, tmp_path / "out", workers=1)
    assert summary["written"] == 1
    assert set(summary["failed"]) == {"BAD01", "BAD02", "BAD03"}
    assert "length" in summary["failed"]["BAD01"] and "c999" in summary["failed"]["BAD02"]
    assert load_graph(tmp_path / "out" / "46GP8.json").video_id == "46GP8"
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["n_failed"] == 3


def test_not_a_charades_csv(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        import_charades(p, tmp_path / "out")


def test_cli_import_charades_exit_status(tmp_path):
    from stepkit.cli import app

    src = tmp_path / "c.csv"
    _write_csv(src, [_row(), _row(id="BAD01", length="-1")])
    res = CliRunner().invoke(app, ["import", "charades", str(src), "--out", str(tmp_path / "g")])
    assert res.exit_code == 1
    assert "1 graphs written, 1 failed" in res.output and "BAD01" in res.output
    assert (tmp_path / "g" / "46GP8.json").is_file()


def test_shared_charades_csv_every_row(shared_data, tmp_path):
    """Every row of the shared CSV becomes a valid graph or is reported (row id + why)."""
    src = shared_data / "charades" / "Charades_v1_train.csv"
    with open(src, encoding="utf-8") as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    started = time.perf_counter()
    summary = import_charades(src, tmp_path / "g")
    elapsed = time.perf_counter() - started
    assert summary["written"] + summary["n_failed"] == n_rows == 7985
    assert summary["n_failed"] == 0, list(summary["failed"].items())[:3]
    files = [p for p in (tmp_path / "g").glob("*.json") if p.name != "summary.json"]
    assert len(files) == n_rows
    g = load_graph(tmp_path / "g" / "46GP8.json")
    assert {(a.verb, a.t0, a.t1) for a in g.actions} == {("cook", 0.0, 12.6), ("watch outside", 11.9, 21.2)}
    # the done-when is < 20 s on an idle 2-core machine; leave room for a loaded CI box
    assert elapsed < 120, elapsed
