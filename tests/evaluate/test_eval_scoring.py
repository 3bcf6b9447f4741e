"""Scoring logic over a replay backend (stepkit.models.scripted speaks the VideoLLM protocol)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepkit.evaluate.items import EvalItem
from stepkit.evaluate.metrics import breakdown
from stepkit.evaluate.scoring import ScoreConfig, judge_rows, parse_judge, question_text, score_items
from stepkit.models.scripted import ScriptedBackend

OPTS = ["The cup.", "The towel.", "The box.", "The door."]


def _items() -> list[EvalItem]:
    return [
        EvalItem(id="q1", video="v", question="Which object was taken first?", answer="The towel.", options=OPTS,
                 answer_index=1, steps=1, type="order"),
        EvalItem(id="q2", video="v", question="Which object was opened?", answer="The door.", options=OPTS,
                 answer_index=3, steps=2, type="action"),
        EvalItem(id="q3", video="v", question="What was held after the cup?", answer="The box.", options=OPTS,
                 answer_index=2, steps=3, type="order"),
        EvalItem(id="q4", video="v", question="Was the cup on the table?", answer="yes", steps=2, type="existence"),
        EvalItem(id="q5", video="v", question="What colour is the box?", answer="red", steps=1, type="attribute"),
    ]


def _backend() -> ScriptedBackend:
    return ScriptedBackend({"model_id": "scripted/eval", "rules": [
        {"contains": ["taken first"], "answers": ["The answer is (B)."],
         "loglikelihood": {"the cup.": -9.0, "the towel.": -2.0, "the box.": -3.0, "the door.": -4.0}},
        {"contains": ["opened"], "answers": ["<|im_start|>assistant\nThe correct option is C<|im_end|>"],
         "loglikelihood": {"the cup.": -1.0, "the towel.": -1.0, "the box.": -5.0, "the door.": -6.0}},
        {"contains": ["held after"], "answers": ["nepillow\ufffdvacuum satb{\"vacuum"],
         "loglikelihood": {"the cup.": -12.0, "the towel.": -15.0, "the box.": -11.0, "the door.": -30.0}},
        {"contains": ["on the table"], "answers": ["Yes, it was."], "loglikelihood": {"yes": -0.5, "no": -0.9}},
        {"contains": ["colour"], "answers": ["The answer is: Red."]},
    ]})


def test_mc_loglik() -> None:
    rows = score_items(_backend(), _items()[:4], ScoreConfig(mode="mc-loglik", frames=0))
    assert [r["pred_index"] for r in rows] == [1, 0, 2, 0]  # q2: a tie goes to the first option
    assert [r["correct"] for r in rows] == [True, False, True, True]
    assert rows[3]["options"] == ["yes", "no"] and rows[3]["mode"] == "mc-loglik"
    # per-character normalisation changes q3's pick: "the box." (-11/8) vs "the cup." (-12/8)
    rows = score_items(_backend(), _items()[:3], ScoreConfig(mode="mc-loglik", frames=0, loglik_norm="chars"))
    assert rows[2]["pred_index"] == 2


def test_mc_generate_counts_parse_failures_as_wrong() -> None:
    rows = score_items(_backend(), _items(), ScoreConfig(mode="mc-generate", frames=0, batch_size=2))
    by = {r["id"]: r for r in rows}
    assert by["q1"]["correct"] and by["q1"]["method"] == "cue-letter"
    assert by["q2"]["pred_index"] == 2 and not by["q2"]["correct"]
    assert by["q3"]["parse_failed"] and by["q3"]["pred_index"] is None and not by["q3"]["correct"]
    assert by["q4"]["correct"]  # "Yes, it was." read as the yes option
    assert by["q5"]["mode"] == "open" and by["q5"]["correct"]  # no options: scored open-ended
    m = breakdown(rows, n_boot=100)
    assert m["parse_failures"] == 1 and m["modes"] == {"mc-generate": 4, "open": 1}


def test_open_mode() -> None:
    rows = score_items(_backend(), _items(), ScoreConfig(mode="open", frames=0))
    by = {r["id"]: r for r in rows}
    assert by["q5"]["prediction"] == "Red" and by["q5"]["correct"]
    assert by["q4"]["correct"] and not by["q1"]["correct"]


def test_prompt_text() -> None:
    it = _items()[0]
    text = question_text(it, "mc-generate")
    assert "(A) The cup." in text and "(D) The door." in text and "letter" in text
    assert "(A)" not in question_text(it, "mc-loglik")


def test_unreadable_video_is_a_recorded_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    it = _items()[0]
    it.video_path = str(bad)
    rows = score_items(_backend(), [it], ScoreConfig(mode="mc-loglik", frames=4))
    assert rows[0]["correct"] is False and "broken.mp4" in rows[0]["error"]


@pytest.mark.parametrize("reply,expected", [
    ("{'pred': 'yes', 'score': 4}", ("yes", 4)),
    ("Sure! {\"pred\": \"no\", \"score\": 1}", ("no", 1)),
    ("pred: YES, score: 5", ("yes", 5)),
    ("{'pred': 'maybe', 'score': 9}", (None, None)),
    ("I cannot evaluate this.", (None, None)),
])
def test_parse_judge(reply: str, expected: tuple) -> None:
    assert parse_judge(reply) == expected


def test_judge_rows() -> None:
    rows = score_items(_backend(), _items(), ScoreConfig(mode="open", frames=0))
    judge = ScriptedBackend({"rules": [{"contains": ["Predicted Answer: Red"], "answers": ["{'pred': 'yes', 'score': 5}"]}],
                             "default": "{'pred': 'no', 'score': 1}"})
    judge_rows(judge, rows)
    m = breakdown(rows, n_boot=100)
    assert m["judge"]["n"] == 5 and m["judge"]["accuracy"]["correct"] == 1
    assert m["judge"]["score"] == pytest.approx((5 + 1 * 4) / 5)


def test_show_options_prompt_is_the_training_prompt(world_split) -> None:
    """With --show-options an mc-loglik prompt is exactly the user turn `stepkit train` encodes."""
    from stepkit.data.record import load_records
    from stepkit.evaluate.loaders import load_stepkit
    from stepkit.evaluate.scoring import item_mode, question_text
    from stepkit.train.collate import user_text

    records = {r.id: r for r in load_records(world_split["qa"])}
    items = load_stepkit(world_split["qa"])
    seen_mc = seen_binary = 0
    for it in items:
        it2, mode = item_mode(it, "mc-loglik")
        if mode != "mc-loglik":
            continue
        rec = records[it.id]
        assert question_text(it2, mode, show_options=True) == user_text(rec, rec.answer_instruction)
        seen_mc += bool(rec.options)
        seen_binary += not rec.options
        if rec.options:  # without the flag the options stay out of the prompt (lmms-eval style)
            assert "Options:" not in question_text(it2, mode)
    assert seen_mc and seen_binary
