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
from stepkit.sources.vocab import (
    canonical_object,
    charades_actions,
    charades_relations,
    label_forms,
    label_synonyms,
    natural_label,
    star_actions,
    star_relations,
    with_star_labels,
)

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
    # the slash class is named with the row's own word ("cup"), its other words kept as synonyms
    assert canonical_object("cup") == "cup/glass/bottle" and "cup" in labels.values()
    assert not any("/" in lb for lb in labels.values())
    assert g.meta["synonyms"] == {"cup": ["glass", "bottle"], "sofa": ["couch"]}
    acts = [(a.verb, labels.get(a.object), a.t0, a.t1) for a in g.actions]
    assert ("hold", "cup", 1.0, 6.0) in acts
    assert ("put down", "cup", 5.5, 9.0) in acts
    # the sofa segment ends past the video's length: clipped, with a warning
    assert ("sit on", "sofa", 0.0, 24.83) in acts
    assert any("clipped" in w for w in warnings)
    rels = {(r.predicate, labels[r.object], r.t0, r.t1) for r in g.relations}
    # holding (1-6) and putting down (5.5-9) each imply holding and touching the cup: merged into one
    assert rels == {("holding", "cup", 1.0, 9.0), ("touching", "cup", 1.0, 9.0),
                    ("sitting_on", "sofa", 0.0, 24.83), ("touching", "sofa", 0.0, 24.83)}
    kinds = {o.label: o.kind for o in g.objects}
    assert kinds["stove"] == "static" and kinds["food"] == "dynamic" and kinds["sofa"] == "static"


def test_derived_relations_carry_their_provenance():
    # c040 hold box, c097 walk through a doorway (holding while walking: carrying), c072 snuggle with a
    # blanket, c009 put something on a table (near it), c153 sneeze (implies nothing)
    g, _ = row_to_graph(_row(objects="box;blanket", actions="c040 0 10;c097 2 4;c072 12 15;c009 16 18;c153 1 2"))
    assert graph_problems(g.to_dict()) == []
    labels = {o.id: o.label for o in g.objects}
    acts = {a.id: (a.verb, labels.get(a.object) or labels.get(a.target)) for a in g.actions}
    rels = {r.id: (r.predicate, labels[r.object], r.t0, r.t1) for r in g.relations}
    assert set(rels.values()) == {
        ("holding", "box", 0.0, 10.0), ("touching", "box", 0.0, 10.0), ("carrying", "box", 2.0, 4.0),
        ("standing_on", "floor", 2.0, 4.0), ("covered_by", "blanket", 12.0, 15.0),
        ("touching", "blanket", 12.0, 15.0), ("near", "table", 16.0, 18.0)}
    prov = g.meta["derived_relations"]
    assert prov["rules"].endswith("charades_relations.txt")
    assert set(prov["from_actions"]) == set(rels)
    for rid, (pred, label, _, _) in rels.items():
        sources = [acts[a] for a in prov["from_actions"][rid]]
        assert sources, rid
        if pred == "carrying":
            assert sorted(sources) == [("hold", "box"), ("walk through", "doorway")]
        elif label != "floor":
            assert all(obj == label for _, obj in sources), (rid, sources)
    assert not any(a.verb == "sneeze" for a in g.actions if a.id in sum(prov["from_actions"].values(), []))


def test_derived_states_of_opened_and_closed_things():
    # the door: opened 2-4, closed 10-11, opened 20-21; the laptop: opened 5-6 while being closed
    # 5.5-8 (overlapping: no state between); the light: turned on 1-2
    g, _ = row_to_graph(_row(objects="door;laptop", length="30",
                             actions="c008 2 4;c006 10 11;c008 20 21;c048 5 6;c046 5.5 8;c104 1 2"))
    assert graph_problems(g.to_dict()) == []
    states = {o.label: [(a.name, a.value, a.t0, a.t1) for a in o.attributes] for o in g.objects}
    assert states["door"] == [("state", "closed", 0.0, 2.0), ("state", "open", 4.0, 10.0),
                              ("state", "closed", 11.0, 20.0), ("state", "open", 21.0, 30.0)]
    assert states["laptop"] == [("state", "closed", 0.0, 5.0), ("state", "closed", 8.0, 30.0)]
    assert states["light"] == [("state", "off", 0.0, 1.0), ("state", "on", 2.0, 30.0)]
    prov = g.meta["derived_attributes"]
    assert prov["rules"].endswith("charades_states.txt")
    acts = {a.id: a.verb for a in g.actions}
    door = next(o.id for o in g.objects if o.label == "door")
    assert [sorted(acts[x] for x in d["actions"]) for d in prov["from_actions"][door]] == [
        ["open"], ["close", "open"], ["close", "open"], ["open"]]
    # opened twice without a closing between: the annotations disagree, no state between them
    g, _ = row_to_graph(_row(objects="door", length="30", actions="c008 2 4;c008 10 11"))
    door = next(o for o in g.objects if o.label == "door")
    assert [(a.value, a.t0, a.t1) for a in door.attributes] == [("closed", 0.0, 2.0), ("open", 11.0, 30.0)]


def test_relation_table_uses_star_relations_and_real_arguments():
    table = charades_relations()
    assert sorted(table) == [f"c{i:03d}" for i in range(157)]
    from stepkit.sources.vocab import ag_relations

    star_preds = set(star_relations().values()) | set(ag_relations())  # looking_at is Action Genome's
    classes = charades_actions()
    for cid, rels in table.items():
        for pred, arg in rels:
            assert pred in star_preds, (cid, pred)
            if arg == "object":
                assert classes[cid].object, cid
            elif arg == "target":
                assert classes[cid].target, cid
            else:
                assert arg in set(star_objects_labels()), (cid, arg)
    assert ("holding", "object") in table["c000"] and ("sitting_on", "object") in table["c059"]
    assert table["c153"] == ()  # sneezing implies no relation


def star_objects_labels():
    from stepkit.sources.vocab import star_objects

    return star_objects().values()


def test_slash_labels_become_natural_nouns():
    assert natural_label("cup/glass/bottle") == "cup"
    assert natural_label("cup/glass/bottle", "glass") == "glass"
    assert natural_label("cup/glass/bottle", "mug") == "cup"
    assert natural_label("closet/cabinet") == "cabinet" and natural_label("sofa/couch") == "sofa"
    assert natural_label("jacket / sweater") == "jacket" and natural_label("door") == "door"
    assert label_synonyms("cup") == ("glass", "bottle") and label_synonyms("glass") == ("cup", "bottle")
    assert label_synonyms("door") == ()
    assert all("/" in cls and "/" not in noun for cls, (noun, _) in label_forms().items())
    # every slash label of the vocabularies the importers use has a row
    from stepkit.sources.vocab import ag_objects, star_objects

    slash = {lb for lb in [*star_objects().values(), *ag_objects()] if "/" in lb}
    assert slash <= set(label_forms()), slash - set(label_forms())
    # a row's free slash words and a row naming "glass" for the class
    g, _ = row_to_graph(_row(objects="glass;jacket / sweater;something", actions="c106 0 3;c110 4 5"))
    labels = {o.label for o in g.objects}
    assert {"glass", "jacket"} <= labels and "something" not in labels and not any("/" in x for x in labels)
    assert {o.label for o in with_star_labels(g).objects} >= {"cup/glass/bottle", "jacket"}


def test_free_text_object_words_lose_their_articles():
    """Row 61UIO's objects column reads "a book;a bottle of sprite;and a stool": labels such as
    "a bottle of sprite" became "Can you see an a bottle of sprite in the video?"."""
    g, _ = row_to_graph(_row(objects="a book;a bottle of sprite;and a stool;chair;The table", actions="c106 0 3"))
    labels = {o.label for o in g.objects}
    assert {"book", "bottle of sprite", "stool", "chair", "table"} <= labels
    assert not any(x.split()[0] in ("a", "an", "and", "the") for x in labels), labels


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
