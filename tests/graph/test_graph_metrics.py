"""Graph accuracy on hand-built graphs whose numbers are worked out by hand in the comments."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stepkit.graph.metrics import score_dirs, score_graph, tiou
from stepkit.graph.serialize import save_graph
from stepkit.graph.types import STSG, Action, Attribute, Box, Clip, Object, Reference, Relation


def gt_graph() -> STSG:
    g = STSG("v1", fps=10, duration=10)
    g.objects += [
        Object("p1", "person"),
        Object("c1", "cup", attributes=[Attribute("color", "red")]),
        Object("c2", "cup", attributes=[Attribute("color", "blue")]),
        Object("t1", "table", kind="static"),
    ]
    g.relations += [
        Relation("r1", "p1", "holding", "c1", 1.0, 3.0),
        Relation("r2", "c1", "on", "t1", 0.0, 1.0),
        Relation("r3", "c2", "on", "t1", 0.0, 10.0),
    ]
    g.actions += [
        Action("a1", "p1", "pick up", 0.5, 1.5, object="c1"),
        Action("a2", "p1", "put down", 3.0, 4.0, object="c1", target="t1"),
    ]
    g.clips += [Clip("k1", 0.0, 4.0), Clip("k2", 4.0, 10.0)]  # one cut, at 4.0
    return g


def pred_graph() -> STSG:
    g = STSG("v1", fps=10, duration=10)
    g.objects += [
        Object("P", "person"),
        Object("A", "cup", attributes=[Attribute("color", "blue")]),  # → c2
        Object("B", "cup", attributes=[Attribute("color", "red")]),  # → c1
        Object("T", "table"),
        Object("X", "chair"),  # no GT chair
    ]
    g.relations += [
        Relation("q1", "P", "holding", "B", 1.2, 3.0),  # tIoU 1.8/2.0 = 0.9 → match r1
        Relation("q2", "B", "on", "T", 0.0, 1.0),  # exact → match r2
        Relation("q3", "A", "on", "T", 0.0, 4.0),  # vs r3: tIoU 0.4 → no
        Relation("q4", "P", "near", "X", 0.0, 1.0),  # no such GT triplet
    ]
    g.actions += [
        Action("b1", "X", "pick up", 0.6, 1.6, object="B"),  # tIoU 0.9/1.1 = 0.82, right object, wrong agent
        Action("b2", "P", "put down", 3.0, 4.0, object="A"),  # object A ↦ c2, GT says c1 → no
    ]
    g.clips += [Clip("m1", 0.0, 4.3), Clip("m2", 4.3, 7.0), Clip("m3", 7.0, 10.0)]  # cuts 4.3 (ok), 7.0 (false)
    return g


def test_tiou():
    assert tiou(1, 3, 1.2, 3) == pytest.approx(0.9)
    assert tiou(0, 1, 2, 3) == 0.0
    assert tiou(2, 2, 2, 2) == 1.0 and tiou(2, 2, 3, 3) == 0.0


def test_hand_computed_metrics():
    m = score_graph(pred_graph(), gt_graph())
    assert m["object_recall"] == 1.0  # P, B, A, T each take one GT object
    assert m["object_precision"] == pytest.approx(4 / 5)  # the chair is unmatched
    assert m["triplet_precision"] == pytest.approx(2 / 4)
    assert m["triplet_recall"] == pytest.approx(2 / 3)
    assert m["action_recall"] == pytest.approx(1 / 2)
    assert m["action_recall_agent"] == 0.0
    assert m["cut_precision"] == pytest.approx(1 / 2) and m["cut_recall"] == 1.0
    assert m["cut_f1"] == pytest.approx(2 * 1 / (2 + 1))


def test_attributes_decide_which_cup_is_which():
    pred = pred_graph()
    pred.object("A").attributes = [Attribute("color", "red")]
    pred.object("B").attributes = [Attribute("color", "green")]  # conflicts with both GT cups
    m = score_graph(pred, gt_graph())
    # A ↦ c1 now; B is left unmatched, so q1/q2 (on B) and b1 (object B) fail, q3 (A on T, 0–4 s)
    # misses r2 (0–1 s, tIoU 0.25), while b2 "put down A" now names the right cup.
    assert m["object_recall"] == pytest.approx(3 / 4)
    assert m["triplet_precision"] == 0.0 and m["action_recall"] == pytest.approx(1 / 2)


def test_reference_edges_merge_nodes_into_one_entity():
    gt = gt_graph()
    pred = STSG("v1", fps=10, duration=10)
    pred.objects += [Object("pa", "person", clip="m1"), Object("pb", "person", clip="m2"), Object("cup", "cup")]
    pred.references.append(Reference("ref", "pa", "pb"))
    pred.relations.append(Relation("q", "pb", "holding", "cup", 1.0, 3.0))
    m = score_graph(pred, gt)
    assert m["counts"]["pred_objects"] == 2 and m["counts"]["matched_objects"] == 2
    assert m["triplet_recall"] == pytest.approx(1 / 3) and m["triplet_precision"] == 1.0


def test_boxes_pick_the_right_one_of_two_alike():
    gt = STSG("v", fps=10, duration=2)
    gt.objects += [Object("g1", "person", track=[Box(0.0, (0, 0, 10, 10))]),
                   Object("g2", "person", track=[Box(0.0, (50, 50, 60, 60))])]
    gt.relations.append(Relation("r", "g2", "near", "g1", 0.0, 2.0))
    pred = STSG("v", fps=10, duration=2)
    pred.objects += [Object("a", "person", track=[Box(0.0, (51, 50, 61, 60))]),
                     Object("b", "person", track=[Box(0.0, (1, 0, 11, 10))])]
    pred.relations.append(Relation("q", "a", "near", "b", 0.0, 2.0))
    assert score_graph(pred, gt)["triplet_recall"] == 1.0
    pred.relations[0] = Relation("q", "b", "near", "a", 0.0, 2.0)  # reversed roles
    assert score_graph(pred, gt)["triplet_recall"] == 0.0


def test_no_cuts_anywhere_is_perfect():
    g = STSG("v", fps=10, duration=5, clips=[Clip("c", 0, 5)])
    m = score_graph(g, g)
    assert m["cut_f1"] == 1.0 and m["cut_precision"] is None


def test_score_dirs_and_cli(tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    save_graph(pred_graph(), pred_dir / "v1.json")
    save_graph(gt_graph(), gt_dir / "v1.json")
    other = gt_graph()
    other.video_id = "v2"
    save_graph(other, gt_dir / "v2.json")  # no prediction: counts as all missed
    r = score_dirs(pred_dir, gt_dir)
    assert r["missing"] == ["v2"]
    o = r["overall"]
    assert o["triplet_recall"] == pytest.approx(2 / 6) and o["triplet_precision"] == pytest.approx(2 / 4)
    assert o["object_recall"] == pytest.approx(4 / 8) and o["cut_f1"] == pytest.approx(2 * 1 / (2 + 2))

    from stepkit.cli import app

    res = CliRunner().invoke(app, ["graph", "score", str(pred_dir), str(gt_dir), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["overall"] == json.loads(json.dumps(o))
    res = CliRunner().invoke(app, ["graph", "score", str(pred_dir), str(gt_dir)])
    assert res.exit_code == 0 and "overall" in res.stdout
    res = CliRunner().invoke(app, ["graph", "score", str(pred_dir), str(tmp_path / "nothing")])
    assert res.exit_code == 1


def test_threshold_is_inclusive_despite_float_rounding():
    gt = STSG("v", fps=10, duration=5)
    gt.objects.append(Object("p", "person"))
    gt.actions.append(Action("a", "p", "walk to", 0.5, 1.1))
    pred = STSG("v", fps=10, duration=5)
    pred.objects.append(Object("q", "person"))
    pred.actions.append(Action("b", "q", "walk to", 0.5, 0.8))  # tIoU 0.3/0.6 = 0.5 (0.49999… in floats)
    assert score_graph(pred, gt)["action_recall"] == 1.0
    pred.actions[0] = Action("b", "q", "walk to", 0.5, 0.79)
    assert score_graph(pred, gt)["action_recall"] == 0.0
