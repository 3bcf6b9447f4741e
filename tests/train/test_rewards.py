"""GRPO rewards on hand-made completions: right / wrong answer, malformed format, faithful /
hallucinated / mistimed rationale, the temporal-contrast bonus and group-relative advantages."""

from __future__ import annotations

import pytest

from stepkit.data.record import QRARecord
from stepkit.errors import ConfigError
from stepkit.graph.types import STSG, Action, Attribute, Object, Relation
from stepkit.train.rewards import (
    RewardWeights,
    group_advantages,
    parse_completion,
    score_completion,
    temporal_bonus,
)

FAITHFUL = ("We see that the cup is on the table from 0.0 s to 1.0 s. We find that the person picked up the cup "
            "from 1.0 s to 1.5 s. So the answer is cup.")


@pytest.fixture(scope="module")
def graph() -> STSG:
    g = STSG(video_id="v0", fps=10.0, duration=6.0, num_frames=60)
    g.objects += [Object("o1", "person"), Object("o2", "cup", attributes=[Attribute("color", "red")]),
                  Object("o3", "table", "static")]
    g.relations.append(Relation("r1", "o2", "on", "o3", 0.0, 1.0))
    g.actions.append(Action("a1", "o1", "pick up", 1.0, 1.5, object="o2"))
    return g


@pytest.fixture(scope="module")
def mc() -> QRARecord:
    return QRARecord(id="v0-000", video_id="v0", question="What did the person pick up from the table?",
                     answer="cup", steps=2, type="action", options=["book", "cup", "phone", "towel"], answer_index=1)


@pytest.fixture(scope="module")
def open_q() -> QRARecord:
    return QRARecord(id="v0-001", video_id="v0", question="Does a cup appear in the video?", answer="yes", steps=1,
                     type="existence")


def test_faithful_right_answer_earns_every_term(graph, mc):
    r = score_completion(FAITHFUL, mc, graph, RewardWeights())
    assert (r.answer, r.format, r.faithfulness) == (1.0, 1.0, 1.0)
    assert r.total == pytest.approx(1.0 + 0.5 + 1.0)
    assert r.faithfulness_report["hallucinated_entities"] == []
    # the project's own rationale may close with its answer sentence
    r = score_completion(FAITHFUL + " The person picked up the cup from the table.", mc, graph, RewardWeights())
    assert r.format == 1.0 and r.answer == 1.0


def test_wrong_answer(graph, mc):
    r = score_completion(FAITHFUL.replace("answer is cup", "answer is book"), mc, graph, RewardWeights())
    assert r.answer == 0.0 and not r.correct
    assert r.format == 1.0  # well formed, just wrong
    assert r.faithfulness < 0.5  # the steps do not reach "book"
    assert score_completion(FAITHFUL.replace("answer is cup", "answer is (B)"), mc, graph, RewardWeights()).answer == 1.0


def test_hallucinated_entity_lowers_faithfulness_only(graph, mc):
    text = FAITHFUL.replace("the cup is on", "the laptop is on").replace("picked up the cup", "picked up the laptop")
    r = score_completion(text, mc, graph, RewardWeights())
    assert r.answer == 1.0 and r.format == 1.0
    assert r.faithfulness < 0.5
    assert "laptop" in r.faithfulness_report["hallucinated_entities"]


def test_mistimed_rationale_lowers_faithfulness(graph, mc):
    text = FAITHFUL.replace("from 0.0 s to 1.0 s", "from 4.0 s to 5.5 s").replace("from 1.0 s to 1.5 s",
                                                                                  "from 4.5 s to 5.0 s")
    r = score_completion(text, mc, graph, RewardWeights())
    assert r.answer == 1.0 and r.format == 1.0
    assert r.faithfulness < 0.5
    assert r.faithfulness_report["temporal_iou"] == 0.0


@pytest.mark.parametrize("text, problem", [
    ("cup", "no-answer-cue"),                                   # no reasoning, no cue
    ("So the answer is cup.", "no-reasoning"),
    ("We find that the person picked up the cup. So the answer is", "empty-answer"),
    (FAITHFUL + " The person picked it up. Then the person left. And more.", "trailing-text"),
    ("", "empty"),
])
def test_malformed_stepkit_format(graph, mc, text, problem):
    p = parse_completion(text, "stepkit")
    assert not p.well_formed and p.problem == problem
    assert score_completion(text, mc, graph, RewardWeights()).format == 0.0


def test_a_right_answer_without_format_still_counts_as_right(graph, mc):
    r = score_completion("the cup", mc, graph, RewardWeights())
    assert r.answer == 1.0 and r.format == 0.0  # the evaluator's extraction reads the option text


def test_truncated_completion_is_not_well_formed(graph, mc):
    r = score_completion(FAITHFUL, mc, graph, RewardWeights(), finished=False)
    assert r.format == 0.0 and r.problem == "truncated" and r.answer == 1.0
    assert r.faithfulness == 0.0  # no credit for claims of a rationale that never concluded


def test_tags_format(graph, mc):
    good = "<think>We find that the person picked up the cup from 1.0 s to 1.5 s.</think><answer>cup</answer>"
    r = score_completion(good, mc, graph, RewardWeights(), "tags")
    assert (r.answer, r.format) == (1.0, 1.0)
    assert r.faithfulness == 1.0  # the <think> steps reach the <answer>
    for bad, problem in [("<think>We find the cup.</think> cup", "missing-tags"),
                         ("<answer>cup</answer>", "missing-tags"),
                         ("<think> </think><answer>cup</answer>", "empty-think"),
                         ("<think>We find the cup.</think><answer>cup</answer> trailing", "missing-tags")]:
        p = parse_completion(bad, "tags")
        assert not p.well_formed and p.problem == problem, bad
    assert score_completion("<think>x</think><answer>book</answer>", mc, graph, RewardWeights(), "tags").answer == 0.0
    with pytest.raises(ConfigError, match="completion format"):
        parse_completion(good, "xml")


def test_open_ended_answers(graph, open_q):
    w = RewardWeights(faithfulness=0.0)
    assert score_completion("We see the cup in the video. So the answer is yes.", open_q, graph, w).answer == 1.0
    assert score_completion("We see the cup in the video. So the answer is no.", open_q, graph, w).answer == 0.0
    r = score_completion("We see the cup. So the answer is yes.", open_q, None, w)  # no graph needed at weight 0
    assert r.faithfulness == 0.0 and r.total == pytest.approx(1.5)


def test_missing_graph_is_a_clear_error(mc):
    with pytest.raises(ConfigError, match="no scene graph for record 'v0-000'"):
        score_completion(FAITHFUL, mc, None, RewardWeights())


def test_weights_are_validated():
    with pytest.raises(ConfigError, match="all 0"):
        RewardWeights(0, 0, 0).validate()
    with pytest.raises(ConfigError, match="format must be >= 0"):
        RewardWeights(1, -1, 0).validate()


def test_temporal_bonus_follows_video_r1():
    # order helps (p = 0.75 >= 0.8 * 0.25): each right answer of the ordered group gets alpha
    assert temporal_bonus([True, True, False, True], [True, False], alpha=0.3, margin=0.8) == [0.3, 0.3, 0.0, 0.3]
    # shuffled frames answer better than ordered ones: no bonus
    assert temporal_bonus([True, False, False, False], [True, True], alpha=0.3, margin=0.8) == [0.0] * 4
    # nothing right: nothing to reward
    assert temporal_bonus([False, False], [False], alpha=0.3) == [0.0, 0.0]


def test_group_advantages():
    adv = group_advantages([1.0, 0.0, 0.0, 1.0], "group")
    assert sum(adv) == pytest.approx(0.0, abs=1e-9)
    assert adv[0] == pytest.approx(0.5 / (0.57735 + 1e-4), rel=1e-4)  # sample std of {1, 0, 0, 1}
    assert group_advantages([2.0, 2.0, 2.0], "group") == [0.0, 0.0, 0.0]  # no spread: no signal
    assert group_advantages([1.0, 0.0], "none") == [0.5, -0.5]
    assert group_advantages([1.0, 0.0], "batch", batch_std=2.0) == pytest.approx([0.5 / 2.0001, -0.5 / 2.0001])
    with pytest.raises(ConfigError):
        group_advantages([1.0], "magic")


def test_a_scorer_failure_scores_zero_and_says_why(graph, mc, monkeypatch):
    import stepkit.reason.faithfulness as fa

    def broken(*a, **k):
        raise UnboundLocalError("parts")

    monkeypatch.setattr(fa, "score_rationale", broken)
    r = score_completion(FAITHFUL, mc, graph, RewardWeights())
    assert r.faithfulness == 0.0 and r.answer == 1.0 and r.format == 1.0
    assert r.faithfulness_report["error"] == "UnboundLocalError: parts"
