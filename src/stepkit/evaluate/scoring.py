"""Scoring items through a :class:`~stepkit.models.base.VideoLLM`: option log-likelihood, generation
with answer extraction, open-ended normalised match, and the optional LLM judge (Video-ChatGPT protocol)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from stepkit.errors import ConfigError, StepkitError
from stepkit.evaluate.extract import LETTERS, clean_output, extract_choice, extract_open, open_match
from stepkit.evaluate.items import EvalItem
from stepkit.evaluate.tasks import MODES

MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question with a short phrase."
#: The rationale instruction of reason mode when the item brings none (stepkit's training default).
REASON_INSTRUCTION = ("Explain step by step what happens in the video that answers the question, "
                      "then give the answer.")
#: Stop asking a backend after this many failed requests in a row (the rest are recorded as errors).
MAX_CONSECUTIVE_FAILURES = 16
LOGLIK_NORMS = ("none", "chars")

JUDGE_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for "
    "question-answer pairs. Your task is to compare the predicted answer with the correct answer and determine "
    "if they match meaningfully. Focus on the meaningful match between the predicted answer and the correct "
    "answer; consider synonyms or paraphrases as valid matches; evaluate the correctness of the prediction "
    "compared to the answer.")
JUDGE_TEMPLATE = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\nCorrect Answer: {answer}\nPredicted Answer: {prediction}\n\n"
    "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, "
    "with 5 indicating the highest meaningful match. Please generate the response in the form of a Python "
    "dictionary string with keys 'pred' and 'score', where value of 'pred' is a string of 'yes' or 'no' and "
    "value of 'score' is in INTEGER, not STRING. DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only "
    "provide the Python dictionary string. For example, your response should look like this: "
    "{{'pred': 'yes', 'score': 4}}.")


@dataclass
class ScoreConfig:
    """How to score: ``mode`` (mc-loglik | mc-generate | open), ``frames`` per question, decoding length,
    log-likelihood normalisation (``none``: summed log-prob; ``chars``: per character of the option), and
    whether mc-loglik prompts list the item's options (as the trainer's prompts do)."""

    mode: str = "mc-loglik"
    frames: int = 8
    max_new_tokens: int = 32
    loglik_norm: str = "none"
    batch_size: int = 8
    show_options: bool = False

    def validate(self) -> None:
        """ConfigError on unknown settings."""
        if self.mode not in MODES:
            raise ConfigError(f"--mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.loglik_norm not in LOGLIK_NORMS:
            raise ConfigError(f"loglik norm {self.loglik_norm!r}: choose one of {', '.join(LOGLIK_NORMS)}")
        if self.frames < 0:
            raise ConfigError(f"--frames must be >= 0, got {self.frames}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be >= 1")


def question_text(item: EvalItem, mode: str, show_options: bool = False) -> str:
    """The text shown to the model for ``item`` under ``mode``.

    With ``show_options`` an mc-loglik prompt lists the item's own options exactly as
    ``stepkit train`` prompts do (implicit yes/no options are not listed, as in training).
    """
    q = item.question.strip()
    if mode == "reason":
        # exactly the rationale turn ``stepkit train`` supervises: question, its options, the instruction
        if item.options and not item.meta.get("implicit_options"):
            q += "\nOptions:\n" + "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(item.options))
        return f"{q}\n{(item.meta.get('rationale_instruction') or REASON_INSTRUCTION).strip()}"
    if mode == "mc-loglik" and show_options and item.options and not item.meta.get("implicit_options"):
        q += "\nOptions:\n" + "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(item.options))
    if mode == "mc-generate":
        opts = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(item.options or []))
        return f"{q}\nOptions:\n{opts}\n{MC_INSTRUCTION}"
    return f"{q}\n{item.meta.get('answer_instruction') or OPEN_INSTRUCTION}"


def load_frames(item: EvalItem, n: int) -> tuple[list[Any], float | None]:
    """``n`` frames sampled uniformly over the item's window (whole video without one), and their rate."""
    if n <= 0 or not item.video_path:
        return [], None
    from stepkit.video import sample_frames

    t0, t1 = item.window if item.window is not None else (None, None)
    if item.meta.get("frames_from") and t0 is not None:
        # another video's frames: the question's window where that video has it, else all of it
        from stepkit.video import probe

        if float(t0) >= probe(item.video_path).duration:
            t0 = t1 = None
    sample = sample_frames(item.video_path, n=n, t0=t0, t1=t1)
    span = (sample.times[-1] - sample.times[0]) if len(sample.times) > 1 else 0.0
    fps = (len(sample.times) - 1) / span if span > 0 else 1.0
    return list(sample.frames), fps


def build_prompt(item: EvalItem, mode: str, frames: int, show_options: bool = False):
    """The :class:`~stepkit.models.base.Prompt` for ``item`` (frames as one video)."""
    from stepkit.models.base import Prompt

    video, fps = load_frames(item, frames)
    return Prompt(text=question_text(item, mode, show_options), video=video or None, video_fps=fps)


def _row(item: EvalItem) -> dict[str, Any]:
    row = {"id": item.id, "question": item.question, "options": item.options, "answer": item.answer,
           "answer_index": item.answer_index, "steps": item.steps, "type": item.type, "video": item.video,
           "window": list(item.window) if item.window else None}
    if item.meta.get("frames_from"):
        row["frames_from"] = item.meta["frames_from"]
    return row


def split_reasoning(output: str) -> tuple[str, str]:
    """``(reasoning, answer part)`` of a reason-then-answer output: the answer part starts at the last
    answer cue ("the answer is", "Answer:"), the reasoning is what comes before it; without a cue the
    reasoning is the whole output and the answer part its last sentence."""
    text = clean_output(output)
    cues = list(_REASON_CUE.finditer(text))
    if cues:
        m = cues[-1]
        return text[:m.start()].strip(), text[m.end():].strip()
    parts = re.split(r"(?<=[.!?])\s+", text.strip())
    return text.strip(), (parts[-1] if parts else "").strip()


def rationale_of(output: str) -> str:
    """The rationale of a reason-then-answer output: everything up to the end of the sentence that
    states the answer (a restating sentence after it is not reasoning)."""
    text = clean_output(output)
    cues = list(_REASON_CUE.finditer(text))
    if not cues:
        return text
    m = re.search(r"(?<=[a-z0-9)\]])\.(?:\s|$)|\n", text[cues[-1].end():])
    return text[:cues[-1].end() + m.end()].strip() if m else text


_REASON_CUE = re.compile(r"\b(?:so\s*,?\s*)?(?:the\s+)?(?:final\s+|short\s+|correct\s+)?answer\s*(?:is|would be|:)\s*[:：]?",
                         re.I)


def _score_reason(row: dict[str, Any], it: EvalItem, raw: str) -> None:
    reasoning, ans = split_reasoning(raw)
    row.update(raw=raw, reasoning=reasoning, pred_index=None)
    if it.is_mc:
        opts = list(it.options or [])
        # the answer's own sentence first ("So the answer is on. The cup is on the table.")
        first = re.split(r"(?<=[a-z0-9)])\.(?:\s|$)", ans, maxsplit=1)[0] if ans else ""
        ex = extract_choice(first, opts) if first else extract_choice(raw, opts)
        if ex.index is None and ans and ans != first:
            ex = extract_choice(ans, opts)
        row.update(pred_index=ex.index, method=f"reason-{ex.method}", parse_failed=ex.index is None,
                   prediction=(it.options or [])[ex.index] if ex.index is not None else None,
                   correct=ex.index is not None and ex.index == it.answer_index)
    else:
        span = extract_open(ans) if ans else ""
        row.update(prediction=span or None, method="reason-open", parse_failed=not span,
                   correct=bool(span) and open_match(span, it.answer))


class _Breaker:
    """Counts failed model requests in a row; past the limit the backend is not asked again."""

    def __init__(self, limit: int) -> None:
        self.limit, self.run, self.last = limit, 0, ""

    def ok(self) -> None:
        self.run = 0

    def failed(self, msg: str) -> None:
        self.run += 1
        self.last = msg

    @property
    def open(self) -> bool:
        return self.run >= self.limit


def _request_error(row: dict[str, Any], msg: str, kind: str = "request") -> None:
    row.update(correct=False, prediction=None, pred_index=None, parse_failed=False, error=msg, error_kind=kind)


def parse_judge(text: str) -> tuple[str | None, int | None]:
    """``(pred, score)`` from a judge's reply such as ``{'pred': 'yes', 'score': 4}``; None where unreadable."""
    t = str(text or "")
    m = re.search(r"\{.*?\}", t, re.S)
    pred: Any = None
    score: Any = None
    if m:
        try:
            d = ast.literal_eval(m.group(0))
            if isinstance(d, dict):
                pred, score = d.get("pred"), d.get("score")
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    if pred is None:
        mp = re.search(r"pred['\"]?\s*[:=]\s*['\"]?(yes|no)", t, re.I)
        pred = mp.group(1) if mp else None
    if score is None:
        ms = re.search(r"score['\"]?\s*[:=]\s*['\"]?(\d+(?:\.\d+)?)", t, re.I)
        score = ms.group(1) if ms else None
    pred = str(pred).strip().lower() if pred is not None else None
    pred = pred if pred in ("yes", "no") else None
    try:
        score_i = int(round(float(score))) if score is not None else None
    except (TypeError, ValueError):
        score_i = None
    if score_i is not None and not 0 <= score_i <= 5:
        score_i = None
    return pred, score_i


def judge_rows(judge: Any, rows: list[dict[str, Any]], *, batch_size: int = 8) -> None:
    """Ask ``judge`` (any VideoLLM, usually the ``openai`` backend) to grade each row's prediction
    against its gold answer; adds ``judge`` = {pred, score, raw} to each row."""
    from stepkit.models.base import Prompt, SamplingParams

    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=64)
    for s in range(0, len(rows), batch_size):
        chunk = rows[s:s + batch_size]
        prompts = [Prompt(text=JUDGE_TEMPLATE.format(question=r["question"], answer=r["answer"],
                                                     prediction=r.get("prediction") or ""), system=JUDGE_SYSTEM)
                   for r in chunk]
        outs = judge.generate(prompts, params)
        for r, o in zip(chunk, outs):
            raw = o[0] if o else ""
            pred, score = parse_judge(raw)
            r["judge"] = {"pred": pred, "score": score, "raw": raw}


BINARY_OPTIONS = ["yes", "no"]


def item_mode(item: EvalItem, mode: str) -> tuple[EvalItem, str]:
    """How one item is scored under ``mode``: multiple-choice modes take items with options as they are
    and yes/no questions with the options ``yes``/``no``; anything else is scored open-ended."""
    if mode in ("open", "reason") or item.is_mc:
        return item, mode
    if item.answer.strip().lower().rstrip(".") in BINARY_OPTIONS:
        idx = BINARY_OPTIONS.index(item.answer.strip().lower().rstrip("."))
        return replace(item, options=list(BINARY_OPTIONS), answer_index=idx,
                       meta={**item.meta, "implicit_options": True}), mode
    return item, "open"


def score_items(model: Any, items: Sequence[EvalItem], cfg: ScoreConfig, *,
                on_item: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Score every item; one row per item with ``correct``, the prediction, how it was read and its ``mode``.

    A parse failure (no option recognisable in a generated answer) is wrong, never a crash. An item
    whose video cannot be read, or whose model request fails, gets an ``error`` (and ``error_kind``
    ``video`` / ``request``) and is not scored; the others go on. After
    ``MAX_CONSECUTIVE_FAILURES`` failed requests in a row the backend is not asked again and the
    remaining items are recorded as errors.
    """
    from stepkit.models.base import SamplingParams

    cfg.validate()
    rows: list[dict[str, Any]] = []
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens)
    breaker = _Breaker(MAX_CONSECUTIVE_FAILURES)
    for s in range(0, len(items), cfg.batch_size):
        chunk = list(items[s:s + cfg.batch_size])
        todo = []
        for orig in chunk:
            it, mode = item_mode(orig, cfg.mode)
            row = _row(it)
            row["mode"] = mode
            rows.append(row)
            if breaker.open:
                _request_error(row, f"not asked: the last {breaker.run} model requests failed "
                                    f"(last error: {breaker.last})", "request")
                continue
            try:
                todo.append((it, row, mode, build_prompt(it, mode, cfg.frames, cfg.show_options)))
            except StepkitError as exc:
                _request_error(row, str(exc), "video")
        gen = [(it, row, mode, p) for it, row, mode, p in todo if mode != "mc-loglik"]
        for it, row, mode, prompt in todo:
            if mode != "mc-loglik":
                continue
            if breaker.open:
                _request_error(row, f"not asked: the last {breaker.run} model requests failed "
                                    f"(last error: {breaker.last})", "request")
                continue
            opts = list(it.options or [])
            try:
                ll = model.loglikelihood(prompt, opts)
            except StepkitError as exc:
                breaker.failed(str(exc))
                _request_error(row, f"model request failed: {exc}")
                continue
            breaker.ok()
            sc = [v / max(len(o), 1) for v, o in zip(ll, opts)] if cfg.loglik_norm == "chars" else list(ll)
            best = max(range(len(sc)), key=lambda i: (sc[i], -i))
            row.update(scores=[round(float(v), 6) for v in ll], pred_index=best, prediction=opts[best],
                       method="loglik", parse_failed=False, correct=best == it.answer_index)
        for (it, row, mode, _), out in zip(gen, _generate_each(model, [g[3] for g in gen], params, breaker)):
            if isinstance(out, _Failed):
                _request_error(row, out.message)
                continue
            raw = out[0] if out else ""
            if mode == "reason":
                _score_reason(row, it, raw)
            elif mode == "mc-generate":
                ex = extract_choice(raw, list(it.options or []))
                row.update(raw=raw, pred_index=ex.index, method=ex.method, parse_failed=ex.index is None,
                           prediction=(it.options or [])[ex.index] if ex.index is not None else None,
                           correct=ex.index is not None and ex.index == it.answer_index)
            else:
                span = extract_open(raw)
                row.update(raw=raw, prediction=span, pred_index=None, method="open", parse_failed=not span,
                           correct=open_match(raw, it.answer))
        if on_item is not None:
            on_item(len(chunk))
    return rows


@dataclass(frozen=True)
class _Failed:
    """A prompt whose request failed."""

    message: str


def _generate_each(model: Any, prompts: list[Any], params: Any, breaker: _Breaker) -> list[Any]:
    """``model.generate`` over a batch; when the batch fails, each prompt alone, so one failed
    request costs one item (answers already given come from the backend's cache, if it has one)."""
    if not prompts:
        return []
    if breaker.open:
        return [_Failed(f"not asked: the last {breaker.run} model requests failed (last error: {breaker.last})")
                for _ in prompts]
    try:
        outs = model.generate(prompts, params)
        breaker.ok()
        return list(outs)
    except StepkitError as exc:
        if len(prompts) == 1:
            breaker.failed(str(exc))
            return [_Failed(f"model request failed: {exc}")]
    res: list[Any] = []
    for p in prompts:
        if breaker.open:
            res.append(_Failed(f"not asked: the last {breaker.run} model requests failed (last error: {breaker.last})"))
            continue
        try:
            res.append(model.generate([p], params)[0])
            breaker.ok()
        except StepkitError as exc:
            breaker.failed(str(exc))
            res.append(_Failed(f"model request failed: {exc}"))
    return res
