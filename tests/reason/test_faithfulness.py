"""Rationale faithfulness: hand-made rationales on a hand-built graph, and the calibration against
corrupted rationales on world graphs of a seed used nowhere else (seed 7)."""

from __future__ import annotations

import random

import pytest

from stepkit.data.record import QRARecord
from stepkit.reason.faithfulness import (
    CORRUPTIONS,
    FaithfulnessReport,
    auc,
    calibrate,
    corrupt_rationale,
    score_rationale,
)


def _rec(answer: str) -> QRARecord:
    return QRARecord(id="q", video_id="kitchen", question="?", answer=answer, steps=2, type="action")


# The kitchen graph (tests/reason/household.py): the man picks up the red cup 1-2 s, holds it 2-5 s,
# puts it down on the table 4.5-5 s; the woman opens the door 5-6 s, picks up the green book 11-12 s
# and gives it to the man 17-18 s; the man sits down on the chair 13-14 s.

FAITHFUL = [
    "The man picked up the cup from 1.0 s to 2.0 s; he put down the cup on the table from 4.5 s to 5.0 s. "
    "So the answer is put down the cup on the table.",
    # reworded: present tense, a dash span, "between ... seconds", a pronoun, a passive
    "First the man picks up the red cup (1.0-2.0 s). Then, between 4.5 and 5.0 seconds, the cup is put down "
    "on the table by the man. Answer: put down the cup on the table",
    "At 5.0 s the woman opened the door. The door is open from 6.0 s to 20.0 s. So the answer is open.",
    "The woman is holding the book from 12.0 s to 18.0 s, and she gave the book to the man from 17.0 s to 18.0 s."
    " The answer is give the book to the man.",
    "We see no laptop in the video. So the answer is no.",
    # particles apart from their verbs, pronouns in place
    "The man picked the cup up at 1.0 s and put it down on the table from 4.5 s to 5.0 s. "
    "So the answer is put down the cup on the table.",
    "The man walks over to the door (8.0-10.0 s), after the woman opened it at 5.0 s. So the answer is walk to the door.",
    "No, the person who opened the door did not pick up the cup. So the answer is no.",
]


@pytest.mark.parametrize("text", FAITHFUL)
def test_faithful_rationales_score_one(kitchen_graph, text: str) -> None:
    rep = score_rationale(text, kitchen_graph)
    assert isinstance(rep, FaithfulnessReport)
    assert rep.n_claims >= 1 and rep.grounded_fraction == 1.0, [c for c in rep.claims if not c.grounded]
    assert rep.hallucinated_entities == [] and rep.score == 1.0
    assert rep.temporal_iou in (None, 1.0)
    assert rep.reaches_answer is True


def test_report_shape_and_determinism(kitchen_graph) -> None:
    rep = score_rationale(FAITHFUL[0], kitchen_graph, _rec("put down the cup on the table"))
    d = rep.to_dict()
    assert set(d) >= {"score", "grounded_fraction", "n_claims", "hallucinated_entities", "temporal_iou",
                      "reaches_answer"}
    assert 0.0 <= d["score"] <= 1.0 and d["stated_answer"] == "put down the cup on the table"
    assert [c["kind"] for c in rep.to_dict(claims=True)["claims"]][:2] == ["action", "action"]
    with pytest.raises(Exception):
        rep.score = 0.5  # frozen
    assert score_rationale(FAITHFUL[0], kitchen_graph).to_dict() == score_rationale(FAITHFUL[0], kitchen_graph).to_dict()


def test_hallucinated_entity(kitchen_graph) -> None:
    rep = score_rationale("The man picked up the laptop from 1.0 s to 2.0 s. So the answer is pick up the laptop.",
                          kitchen_graph)
    assert rep.hallucinated_entities == ["laptop"]
    assert rep.grounded_fraction == 0.0 and rep.score == 0.0 and rep.reaches_answer is False


def test_wrong_object_present_in_the_graph(kitchen_graph) -> None:
    # the book is there, but the man never picked it up
    rep = score_rationale("The man picked up the book from 1.0 s to 2.0 s. So the answer is book.", kitchen_graph)
    assert rep.hallucinated_entities == [] and rep.grounded_fraction < 1.0 and rep.score < 0.6


def test_mistimed_rationale(kitchen_graph) -> None:
    good = score_rationale("The man put down the cup on the table from 4.5 s to 5.0 s.", kitchen_graph)
    late = score_rationale("The man put down the cup on the table from 14.5 s to 15.0 s.", kitchen_graph)
    near = score_rationale("The man put down the cup on the table from 4.4 s to 5.0 s.", kitchen_graph)
    assert good.temporal_iou == 1.0 and late.temporal_iou == 0.0
    assert 0.5 < near.temporal_iou < 1.0 and near.score == pytest.approx(near.temporal_iou)
    assert late.score == 0.0 and good.score == 1.0
    # a state held over the quoted span is true even when it held longer
    assert score_rationale("The cup is on the table from 6.0 s to 9.0 s.", kitchen_graph).score == 1.0
    assert score_rationale("The cup is on the table from 0.0 s to 4.0 s.", kitchen_graph).score == 0.0


def test_wrong_order(kitchen_graph) -> None:
    right = ("The woman opened the door from 5.0 s to 6.0 s, so we look at what happens after it. "
             "The first of these is that the man walked to the door from 8.0 s to 10.0 s. So the answer is walk to the door.")
    wrong = right.replace("after it", "before it")
    assert score_rationale(right, kitchen_graph).score == 1.0
    rep = score_rationale(wrong, kitchen_graph)
    assert rep.score < 1.0 and any(c.kind == "order" and not c.grounded for c in rep.claims)
    first = ("The man picked up the cup at 1.0 s and the woman opened the door at 5.0 s, so pick up the cup came first. "
             "So the answer is pick up the cup.")
    assert score_rationale(first, kitchen_graph).score == 1.0
    swapped = first.replace("so pick up the cup came first", "so open the door came first").replace(
        "answer is pick up the cup", "answer is open the door")
    assert score_rationale(swapped, kitchen_graph).score < 1.0


def test_negation_and_attributes(kitchen_graph) -> None:
    assert score_rationale("We find no moment when the woman sat down. So the answer is no.", kitchen_graph).score == 1.0
    assert score_rationale("We find no moment when the man sat down. So the answer is no.", kitchen_graph).score < 0.6
    assert score_rationale("The color of the cup is red. So the answer is red.", kitchen_graph).score == 1.0
    rep = score_rationale("The color of the cup is purple. So the answer is purple.", kitchen_graph)
    assert rep.score == 0.0 and rep.reaches_answer is False
    assert score_rationale("The door is closed from 0.0 s to 6.0 s.", kitchen_graph).score == 1.0
    assert score_rationale("The door is closed from 10.0 s to 16.0 s.", kitchen_graph).score == 0.0


def test_answer_against_the_record(kitchen_graph) -> None:
    text = "The man picked up the cup from 1.0 s to 2.0 s. So the answer is pick up the cup."
    assert score_rationale(text, kitchen_graph, _rec("pick up the cup")).reaches_answer is True
    rep = score_rationale(text, kitchen_graph, _rec("open the door"))
    assert rep.reaches_answer is False and rep.score == 0.5
    # a letter names its option
    mc = QRARecord(id="q", video_id="kitchen", question="?", answer="pick up the cup", steps=1, type="action",
                   options=["open the door", "pick up the cup"], answer_index=1)
    lettered = "The man picked up the cup from 1.0 s to 2.0 s. So the answer is (B)."
    assert score_rationale(lettered, kitchen_graph, mc).reaches_answer is True
    assert score_rationale(lettered.replace("(B)", "(A)"), kitchen_graph, mc).reaches_answer is False
    # an answer the steps never mention does not follow from them
    loose = "The man picked up the cup from 1.0 s to 2.0 s. So the answer is open the door."
    assert score_rationale(loose, kitchen_graph, _rec("open the door")).reaches_answer is False


def test_coverage_of_the_reference_grounding(kitchen_graph) -> None:
    from stepkit.data.record import RationaleStep

    rec = QRARecord(id="q", video_id="kitchen", question="?", answer="put down the cup on the table", steps=2,
                    type="action", rationale=[RationaleStep("", ["a1"]), RationaleStep("", ["a2"])])
    full = score_rationale(FAITHFUL[0], kitchen_graph, rec)
    short = score_rationale("The man picked up the cup from 1.0 s to 2.0 s.", kitchen_graph, rec)
    assert full.coverage == 1.0 and short.coverage == 0.5
    assert score_rationale(FAITHFUL[0], kitchen_graph).coverage is None


def test_empty_and_garbage(kitchen_graph) -> None:
    for text in ("", "   ", "lorem ipsum dolor 12 3.4 ;;; ???"):
        rep = score_rationale(text, kitchen_graph)
        assert rep.n_claims == 0 and rep.score == 0.0 and rep.grounded_fraction == 0.0
    assert score_rationale("", kitchen_graph, _rec("yes")).reaches_answer is False


def test_corruptions_change_the_text(kitchen_graph) -> None:
    rng = random.Random(0)
    for kind in CORRUPTIONS:
        out = corrupt_rationale(FAITHFUL[0], kitchen_graph, kind, rng)
        assert out is not None and out != FAITHFUL[0], kind
        assert score_rationale(out, kitchen_graph).score < 1.0, (kind, out)
    with pytest.raises(ValueError):
        corrupt_rationale(FAITHFUL[0], kitchen_graph, "nonsense", rng)


def test_auc() -> None:
    assert auc([1, 1, 0.9], [0.1, 0.2]) == 1.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([], [1.0]) is None


@pytest.fixture(scope="module")
def untouched_world(tmp_path_factory):
    """World graphs of seed 7 (never looked at while the scorer was built) and their Q/R/A."""
    pytest.importorskip("stepkit.world.api")
    from stepkit.data.record import load_records
    from stepkit.graph.serialize import save_graph
    from stepkit.reason.generate import GenerateConfig, generate
    from stepkit.world.api import simulate, video_name, video_seed

    root = tmp_path_factory.mktemp("world7")
    graphs = {}
    for i in range(16):
        name = video_name(7, i)
        graph, _frames = simulate(video_seed(7, i), video_id=name)
        save_graph(graph, root / "graphs" / f"{name}.json")
        graphs[name] = graph
    generate(root / "graphs", root / "qa", GenerateConfig(per_video=25, seed=7))
    return load_records(root / "qa"), graphs


def test_calibration_on_an_untouched_seed(untouched_world) -> None:
    records, graphs = untouched_world
    res = calibrate(records, graphs, seed=0)
    assert res["n"] >= 200
    # stepkit's own rationales are faithful; every kind of corruption scores low
    assert res["original_mean"] >= 0.98
    assert res["auc"] >= 0.95, res
    for kind, r in res["by_kind"].items():
        assert r["n"] >= 50, (kind, r)
        assert r["auc"] >= 0.9 and r["mean"] <= 0.8, (kind, r)


def test_calibration_on_charades_timelines(shared_data, tmp_path) -> None:
    """Real, human-annotated action timelines (Charades, imported as graphs) with their own vocabulary
    (STAR verbs, slash labels): stepkit's rationales over them are faithful, corruptions are not."""
    from stepkit.data.record import load_records
    from stepkit.graph.serialize import iter_graph_files, load_graph
    from stepkit.reason.generate import GenerateConfig, generate
    from stepkit.sources.charades import import_charades

    src = shared_data / "charades" / "Charades_v1_train.csv"
    rows = src.read_text(encoding="utf-8").splitlines()
    small = tmp_path / "charades.csv"
    small.write_text("\n".join(rows[:1] + rows[200:260]) + "\n", encoding="utf-8")  # 60 videos
    import_charades(small, tmp_path / "graphs", workers=1)
    generate(tmp_path / "graphs", tmp_path / "qa", GenerateConfig(per_video=15, seed=0))
    graphs = {g.video_id: g for g in (load_graph(p) for p in iter_graph_files(tmp_path / "graphs"))}
    res = calibrate(load_records(tmp_path / "qa"), graphs, seed=0)
    assert res["n"] >= 150
    assert res["original_mean"] >= 0.97 and res["auc"] >= 0.93, res


def test_never_crashes_on_noise(kitchen_graph) -> None:
    rng = random.Random(0)
    chars = "abcdefghijklmnopqrstuvwxyz .,;:!?()-–0123456789sno"
    words = ("the a man woman cup table door picked up put down on in from to at s no not who that is was "
             "1.0 2.0 so answer , . ; ( ) - and then it before after first last of these came").split()
    texts = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 300))) for _ in range(150)]
    texts += [" ".join(rng.choice(words) for _ in range(rng.randint(0, 60))) for _ in range(300)]
    for text in texts:
        rep = score_rationale(text, kitchen_graph, _rec("yes"))
        assert 0.0 <= rep.score <= 1.0 and 0.0 <= rep.grounded_fraction <= 1.0
        assert rep.temporal_iou is None or 0.0 <= rep.temporal_iou <= 1.0
