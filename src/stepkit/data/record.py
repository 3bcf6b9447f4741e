"""The Q/R/A record: one graph-grounded question with its step-by-step rationale and answer.

This is the canonical line of ``qa.jsonl``; every export (LLaVA, ChatML, HF datasets), the trainer
and the evaluator read it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from stepkit.errors import DataError

RECORD_SCHEMA_VERSION = "1.0"

DEFAULT_ANSWER_INSTRUCTION = "Answer the question with a short phrase."
DEFAULT_RATIONALE_INSTRUCTION = (
    "Explain step by step what happens in the video that answers the question, then give the answer."
)


@dataclass
class RationaleStep:
    """One grounded statement of a rationale; ``grounding`` lists the graph ids it rests on."""

    text: str
    grounding: list[str] = field(default_factory=list)
    t0: float | None = None
    t1: float | None = None


@dataclass
class QRARecord:
    """Question / rationale / answer over one video (or a window of it)."""

    id: str
    video_id: str
    question: str
    answer: str
    steps: int
    type: str
    rationale: list[RationaleStep] = field(default_factory=list)
    answer_sentence: str = ""
    options: list[str] | None = None
    answer_index: int | None = None
    program: list[dict[str, Any]] = field(default_factory=list)
    video: str | None = None
    window: tuple[float, float] | None = None
    answer_instruction: str = DEFAULT_ANSWER_INSTRUCTION
    rationale_instruction: str = DEFAULT_RATIONALE_INSTRUCTION
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: str = RECORD_SCHEMA_VERSION

    @property
    def rationale_text(self) -> str:
        """The rationale as one paragraph."""
        return " ".join(s.text for s in self.rationale)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (a deep copy, as ``dataclasses.asdict`` gives, built without its overhead)."""
        return self._as_dict(copy_nested=True)

    def _as_dict(self, copy_nested: bool) -> dict[str, Any]:
        """Every field (new ones included), rationale steps as dicts, the window as a list; nested
        containers deep-copied when ``copy_nested`` (``to_json`` skips the copy: it only reads)."""
        import copy

        out = dict(vars(self))  # a dataclass instance's __dict__ holds exactly its fields
        if copy_nested:
            for name, v in out.items():
                if isinstance(v, (dict, list)) and name != "rationale":
                    out[name] = copy.deepcopy(v)
            out["rationale"] = [{**vars(st), "grounding": list(st.grounding)} for st in self.rationale]
        else:
            out["rationale"] = [vars(st) for st in self.rationale]
        if self.window is not None:
            out["window"] = list(self.window)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "QRARecord":
        """Build from a dict; raises :class:`DataError` on missing or mistyped fields."""
        if not isinstance(d, dict):
            from stepkit.userfiles import _type_name

            raise DataError(f"a Q/R/A record is a JSON object; got {_type_name(d)}")
        problem = _record_problem(d)
        if problem:
            raise DataError(f"Q/R/A record {d.get('id', '?')!r}: {problem}")
        try:
            kw = dict(d)
            kw["rationale"] = [RationaleStep(**s) for s in d.get("rationale", [])]
            if kw.get("window") is not None:
                kw["window"] = (float(kw["window"][0]), float(kw["window"][1]))
            rec = cls(**kw)
        except (TypeError, KeyError, ValueError, IndexError) as exc:
            raise DataError(f"malformed Q/R/A record {d.get('id', '?')!r}: {exc}") from None
        return rec

    def to_json(self) -> str:
        """One compact, key-sorted JSON line (no newline)."""
        return orjson.dumps(self._as_dict(copy_nested=False), option=orjson.OPT_SORT_KEYS).decode()


SUPPORTED_RECORD_VERSIONS = (RECORD_SCHEMA_VERSION,)
_STR_FIELDS = ("id", "video_id", "question", "answer", "type")


def _record_problem(d: dict[str, Any]) -> str | None:
    """The first thing wrong with a record's version or field types (None when fine)."""
    import math

    from stepkit.userfiles import version_problem

    bad = version_problem(d.get("schema_version", RECORD_SCHEMA_VERSION), SUPPORTED_RECORD_VERSIONS)
    if bad:
        return bad
    for name in _STR_FIELDS:
        if name in d and not isinstance(d[name], str):
            return f"{name}: expected a string, got {type(d[name]).__name__}"
    steps = d.get("steps")
    if "steps" in d and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        return f"steps: expected a whole number of reasoning steps >= 1, got {steps!r}"
    w = d.get("window")
    if w is not None:
        if (not isinstance(w, list) or len(w) != 2
                or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in w)):
            return f"window: expected [t0, t1] in seconds, got {w!r}"
        if w[1] < w[0]:
            return f"window: ends before it starts (t1={w[1]} < t0={w[0]})"
    opts = d.get("options")
    if opts is not None and (not isinstance(opts, list) or not all(isinstance(o, str) for o in opts)):
        return "options: expected a list of strings"
    return None


def iter_records(path: str | os.PathLike) -> Iterator[QRARecord]:
    """Stream records from a ``qa.jsonl`` file or a folder holding one."""
    from stepkit.userfiles import iter_jsonl

    path = Path(path)
    if path.is_dir():
        path = path / "qa.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no such Q/R/A file")
    for lineno, d in iter_jsonl(path, what="Q/R/A file"):
        try:
            yield QRARecord.from_dict(d)
        except DataError as exc:
            raise DataError(f"{path}:{lineno}: {exc}") from None


def load_records(path: str | os.PathLike) -> list[QRARecord]:
    """All records of a ``qa.jsonl`` file or folder."""
    return list(iter_records(path))
