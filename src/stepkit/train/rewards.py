"""GRPO rewards for one completion: answer correctness (from the record), format, rationale faithfulness
(checked against the video's scene graph), and Video-R1's temporal-contrast bonus.

Two completion formats are understood (``completion_format`` in the GRPO config):

``stepkit`` (default)
    What STEP's rationale samples teach (``stepkit train`` supervises exactly this): reasoning steps,
    then the cue sentence ``So the answer is X.``, optionally followed by one answer sentence::

        We see that the person is holding the cup from 1.0 s to 3.0 s. So the answer is cup. ...

    The rationale (what faithfulness is scored on) is everything up to and including the cue sentence,
    the same text as a record's ``rationale_text``; the answer is the cue's span ``X``.
``tags``
    DeepSeek-R1 / Video-R1 style ``<think>REASONING</think><answer>ANSWER</answer>``.

Answer correctness reads the answer the format gives, or, when the completion has none, the whole
completion with the evaluator's own extraction rules (:mod:`stepkit.evaluate.extract`), so the
answer term and the format term stay separate: a right answer in a malformed completion still earns
the answer reward but not the format reward.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from stepkit.errors import ConfigError, StepkitError

if TYPE_CHECKING:  # pragma: no cover
    from stepkit.data.record import QRARecord
    from stepkit.graph.types import STSG

FORMATS = ("stepkit", "tags")
TAGS_INSTRUCTION = ("Think step by step about what happens in the video inside <think> </think> tags, "
                    "then give the short answer inside <answer> </answer> tags.")
# The generator's rationales close with "So the answer is X."; the evaluator also accepts "Answer: X".
_CUE = re.compile(r"\b(?:so\s+)?(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*[:：]?|[:：])\s*", re.I)
_SENTENCE_END = re.compile(r"(?<=[^\s.])\.(?=\s|$)|\n")
_TAGS = re.compile(r"^\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.S)
_THINK = re.compile(r"<think>(.*?)</think>", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.S)
_WORD = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class ParsedCompletion:
    """What a completion says: its reasoning (``rationale``), its ``answer`` span ("" when the format
    gives none), whether it is ``well_formed`` and, when not, ``problem`` (why)."""

    rationale: str
    answer: str
    well_formed: bool
    problem: str = ""


def _sentence_end(text: str, start: int) -> int:
    """Index just past the sentence that starts at ``start`` (its full stop or line break), or len(text)."""
    m = _SENTENCE_END.search(text, start)
    return m.end() if m else len(text)


def parse_completion(text: str, fmt: str = "stepkit", *, finished: bool = True) -> ParsedCompletion:
    """Split a completion into rationale and answer under ``fmt`` (``stepkit`` or ``tags``).

    ``finished`` is False when generation stopped at the length limit rather than at the end-of-turn
    token; such a completion is never well formed.
    """
    from stepkit.evaluate.extract import clean_output

    if fmt not in FORMATS:
        raise ConfigError(f"completion format {fmt!r}: choose one of {', '.join(FORMATS)}")
    t = clean_output(text) if fmt == "stepkit" else str(text or "").strip()
    if not t:
        return ParsedCompletion("", "", False, "empty")
    if fmt == "tags":
        m = _TAGS.match(t)
        if m:
            think, ans = m.group("think").strip(), m.group("answer").strip()
            problem = ("empty-think" if not _WORD.search(think) else "empty-answer" if not _WORD.search(ans)
                       else "" if finished else "truncated")
            return ParsedCompletion(think, ans, not problem, problem)
        th, an = _THINK.search(t), _ANSWER.search(t)
        rationale = th.group(1).strip() if th else (t[:an.start()].strip() if an else t)
        return ParsedCompletion(rationale, an.group(1).strip() if an else "", False,
                                "truncated" if not finished else "missing-tags")
    cues = list(_CUE.finditer(t))
    if not cues:
        return ParsedCompletion(t, "", False, "truncated" if not finished else "no-answer-cue")
    cue = cues[-1]
    end = _sentence_end(t, cue.end())
    answer = t[cue.end():end].strip().rstrip(".").strip().strip("\"'").strip()
    reasoning = t[:cue.start()].strip()
    rationale = t[:end].strip()
    tail = t[end:].strip()
    if not _WORD.search(answer):
        problem = "empty-answer"
    elif not _WORD.search(reasoning):
        problem = "no-reasoning"
    elif tail and (_sentence_end(tail, 0) < len(tail.rstrip()) or len(tail) > 200):
        problem = "trailing-text"  # more than the one answer sentence after the cue
    elif not finished:
        problem = "truncated"
    else:
        problem = ""
    return ParsedCompletion(rationale, answer, not problem, problem)


def answer_correct(parsed: ParsedCompletion, completion: str, record: QRARecord) -> bool:
    """Whether the completion's answer is the record's: the option index for multiple choice, the
    normalised answer for open-ended questions (the evaluator's rules)."""
    from stepkit.evaluate.extract import extract_choice, open_match

    text = parsed.answer or completion
    if record.options and record.answer_index is not None:
        return extract_choice(text, list(record.options)).index == record.answer_index
    return open_match(text, record.answer)


def faithfulness(parsed: ParsedCompletion, graph: STSG | None, record: QRARecord | None = None) -> dict[str, Any]:
    """The faithfulness report of the completion's rationale against ``graph`` (score 0 without a
    rationale); a dict with at least ``score``."""
    if graph is None:
        raise ConfigError(f"faithfulness reward: no scene graph for record {getattr(record, 'id', '?')!r}; "
                          "give the graphs folder (graphs=) or set weight_faithfulness to 0")
    if not _WORD.search(parsed.rationale):
        return {"score": 0.0, "grounded_fraction": 0.0, "empty": True}
    from stepkit.reason.faithfulness import score_rationale

    text = parsed.rationale
    if parsed.answer and not _CUE.search(text):  # <think> holds the steps, <answer> what they reach
        text = f"{text.rstrip()} So the answer is {parsed.answer}."
    rep = score_rationale(text, graph, record)
    d = rep.to_dict() if hasattr(rep, "to_dict") else {"score": float(rep.score)}
    d["score"] = float(rep.score)
    return d


@dataclass(frozen=True)
class RewardWeights:
    """How the reward terms add up: total = answer·w_answer + format·w_format + faithfulness·w_faith
    (+ the temporal bonus, already scaled by its own weight)."""

    answer: float = 1.0
    format: float = 0.5
    faithfulness: float = 1.0

    def validate(self) -> RewardWeights:
        """ConfigError on a negative or all-zero weighting."""
        for k, v in asdict(self).items():
            if v < 0:
                raise ConfigError(f"reward weight {k} must be >= 0, got {v}")
        if not any(asdict(self).values()):
            raise ConfigError("reward weights are all 0: nothing to learn from")
        return self


@dataclass
class CompletionReward:
    """Every reward term of one completion (each in [0, 1] before weighting) and their weighted total."""

    answer: float
    format: float
    faithfulness: float
    temporal: float = 0.0
    total: float = 0.0
    correct: bool = False
    problem: str = ""
    faithfulness_report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def score_completion(completion: str, record: QRARecord, graph: STSG | None, weights: RewardWeights,
                     fmt: str = "stepkit", *, finished: bool = True) -> CompletionReward:
    """All reward terms of one completion to ``record`` (the faithfulness term only when weighted)."""
    parsed = parse_completion(completion, fmt, finished=finished)
    correct = answer_correct(parsed, completion, record)
    report: dict[str, Any] = {}
    faith = 0.0
    if weights.faithfulness > 0 and not finished:
        # a rationale cut at the length limit never reached its conclusion; scoring its claims anyway
        # pays the policy for babbling grounded nouns until it runs out of tokens
        report = {"score": 0.0, "truncated": True}
    elif weights.faithfulness > 0:
        try:
            report = faithfulness(parsed, graph, record)
            faith = float(report["score"])
        except StepkitError:
            raise  # a missing graph is the user's to fix
        except Exception as exc:  # noqa: BLE001 - one odd completion must not end a long run
            # the scorer failing on one model output scores it 0 and is counted (faithfulness_errors)
            report = {"score": 0.0, "error": f"{type(exc).__name__}: {exc}"}
    fmt_r = 1.0 if parsed.well_formed else 0.0
    r = CompletionReward(answer=1.0 if correct else 0.0, format=fmt_r, faithfulness=faith, correct=correct,
                         problem=parsed.problem, faithfulness_report=report)
    r.total = weights.answer * r.answer + weights.format * r.format + weights.faithfulness * r.faithfulness
    return r


def temporal_bonus(ordered_correct: Sequence[bool], shuffled_correct: Sequence[bool], *, alpha: float = 0.3,
                   margin: float = 0.8) -> list[float]:
    """Video-R1's T-GRPO bonus for one question's group: when the share of right answers with the frames
    in order (p) is at least ``margin`` times the share with them shuffled (p̃), every right answer of the
    ordered group gets ``alpha``; otherwise nothing."""
    if not ordered_correct:
        return []
    p = sum(map(bool, ordered_correct)) / len(ordered_correct)
    q = sum(map(bool, shuffled_correct)) / len(shuffled_correct) if shuffled_correct else 0.0
    if p > 0 and p >= margin * q:
        return [alpha if c else 0.0 for c in ordered_correct]
    return [0.0] * len(ordered_correct)


def group_advantages(rewards: Sequence[float], scale: str = "group", *, batch_std: float | None = None,
                     eps: float = 1e-4) -> list[float]:
    """GRPO's group-relative advantages of one question's completions: reward minus the group mean,
    divided by the group's standard deviation (``scale='group'``), by ``batch_std`` (``'batch'``) or
    not at all (``'none'``, Dr. GRPO)."""
    import statistics

    if not rewards:
        return []
    mean = statistics.fmean(rewards)
    centred = [r - mean for r in rewards]
    if scale == "none":
        return centred
    if scale == "group":
        std = statistics.stdev(rewards) if len(rewards) > 1 else 0.0
    elif scale == "batch":
        std = float(batch_std or 0.0)
    else:
        raise ConfigError(f"scale_rewards={scale!r}: choose group, batch or none")
    return [c / (std + eps) for c in centred]
