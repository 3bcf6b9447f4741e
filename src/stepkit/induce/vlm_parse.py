"""Robust reading of a Video-LLM's answers: JSON inside fences or prose, yes/no, free text.

Models asked for "JSON only" still wrap it in code fences, put sentences around it, leave trailing
commas, use single quotes or Python literals. :func:`extract_json` recovers the value from all of
those; anything it cannot read raises :class:`Reject` with a short reason that the inducer counts.
Nothing here raises anything else on model output.

>>> extract_json('Sure! ```json\\n{"objects": ["cup", "table",],}\\n``` Hope this helps.')
{'objects': ['cup', 'table']}
>>> parse_yes_no("Yes, there is a red cup.")
True
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
import warnings
from typing import Any

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|$)", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_ARTICLES = ("a ", "an ", "the ", "some ")
_LABEL_OK = re.compile(r"^[a-z][a-z0-9 '\-]*$")
_NONE_WORDS = {"none", "no", "null", "nothing", "no relation", "not related", "unrelated", "n/a", "na", ""}
_NO_MOTION = {"none", "null", "nothing", "no motion", "no movement", "static", "still", "stay still", "stays still",
              "stand still", "stands still", "not move", "does not move", "did not move", "no change", "idle"}


class Reject(ValueError):
    """A model answer that cannot be used; ``reason`` is a short counter key (e.g. ``no_json``)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _balanced_spans(text: str) -> list[str]:
    """Every top-level ``{...}`` / ``[...]`` span (quote-aware), in order of appearance."""
    spans: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] not in "{[":
            i += 1
            continue
        stack: list[str] = []
        quote: str | None = None
        j = i
        while j < n:
            ch = text[j]
            if quote:
                if ch == "\\":
                    j += 2
                    continue
                if ch == quote:
                    quote = None
            elif ch in "\"'" and not (ch == "'" and j > i and text[j - 1].isalnum()):
                quote = ch
            elif ch in "{[":
                stack.append("}" if ch == "{" else "]")
            elif ch in "}]":
                if not stack or stack[-1] != ch:
                    break
                stack.pop()
                if not stack:
                    spans.append(text[i : j + 1])
                    break
            j += 1
        if stack or quote:
            # Unclosed (often a truncated answer): offer the tail with closers appended.
            if not quote:
                spans.append(text[i:j] + "".join(reversed(stack)))
            i += 1
        else:
            i = j + 1 if j > i else i + 1
    return spans


def _loads_lenient(s: str) -> Any:
    """json.loads, then the same after common repairs, then a Python literal."""
    try:
        return json.loads(s)
    except (ValueError, RecursionError):
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", s)
    try:
        return json.loads(fixed)
    except (ValueError, RecursionError):
        pass
    py = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", fixed)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(py)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise Reject("bad_json", s[:80]) from None
    if isinstance(value, (dict, list)):
        return value
    raise Reject("bad_json", s[:80])


def extract_json(text: Any, want: type | tuple[type, ...] = (dict, list)) -> Any:
    """The first JSON value of type ``want`` found in ``text``; :class:`Reject` when there is none."""
    if not isinstance(text, str):
        raise Reject("not_text", type(text).__name__)
    text = text.strip()
    if not text:
        raise Reject("empty")
    candidates: list[str] = []
    for m in _FENCE.finditer(text):
        candidates += _balanced_spans(m.group(2))
    candidates += _balanced_spans(text)
    if not candidates:
        raise Reject("no_json", text[:80])
    last: Reject | None = None
    if isinstance(want, tuple) and dict in want and list in want:
        # Prose such as "Objects [1]: {...}" holds stray brackets: prefer an object, then an array.
        parsed = []
        for c in candidates:
            try:
                parsed.append(_loads_lenient(c))
            except Reject as exc:
                last = exc
        for kind in (dict, list):
            for value in parsed:
                if isinstance(value, kind):
                    return value
        raise last or Reject("wrong_type", type(parsed[0]).__name__ if parsed else "none")
    for c in candidates:
        try:
            value = _loads_lenient(c)
        except Reject as exc:
            last = exc
            continue
        if isinstance(value, want):
            return value
        last = Reject("wrong_type", type(value).__name__)
    raise last or Reject("no_json", text[:80])


def lower_keys(d: dict) -> dict:
    """The dict with string keys lower-cased and stripped."""
    return {(k.strip().lower() if isinstance(k, str) else k): v for k, v in d.items()}


def require_keys(d: dict, allowed: set[str], required: set[str]) -> dict:
    """``d`` with lower-cased keys; :class:`Reject` ``wrong_keys`` unless required ⊆ keys ⊆ allowed."""
    d = lower_keys(d)
    keys = set(d)
    if not required <= keys or not keys <= allowed:
        raise Reject("wrong_keys", ",".join(sorted(map(str, keys))))
    return d


def normalize_label(value: Any, max_words: int = 4, max_chars: int = 40) -> str:
    """A clean lower-case noun phrase (articles, punctuation, underscores removed); Reject ``bad_label``."""
    if not isinstance(value, str):
        raise Reject("bad_label", repr(value)[:40])
    s = value.strip().lower().replace("_", " ")
    s = re.sub(r"[\"`.,;:!?()\[\]{}*]", " ", s)
    s = re.sub(r"\s+", " ", s).strip()
    changed = True
    while changed:
        changed = False
        for art in _ARTICLES:
            if s.startswith(art):
                s = s[len(art):].strip()
                changed = True
    if not s or s in {a.strip() for a in _ARTICLES} or len(s) > max_chars or len(s.split()) > max_words or not _LABEL_OK.match(s):
        raise Reject("bad_label", value[:40])
    return s


def normalize_phrase(value: Any, max_words: int = 6) -> str:
    """A short lower-case predicate / verb / attribute value; Reject ``bad_phrase``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Reject("bad_phrase", repr(value)[:40])
    s = re.sub(r"[\"`.,;:!?()\[\]{}*]", " ", value.strip().lower().replace("_", " "))
    s = re.sub(r"\s+", " ", s).strip()
    if not s or len(s.split()) > max_words or len(s) > 60 or not re.match(r"^[a-z0-9][a-z0-9 '\-/]*$", s):
        raise Reject("bad_phrase", value[:40])
    return s


def is_none_word(s: str | None) -> bool:
    """Whether a normalised phrase means "no relation"."""
    return s is None or s in _NONE_WORDS


def is_no_motion(s: str | None) -> bool:
    """Whether a normalised verb means "did not move"."""
    return s is None or s in _NO_MOTION


def parse_yes_no(text: Any) -> bool:
    """True for yes, False for no (plain words, ``{"answer": "yes"}``, booleans); Reject ``not_yes_no``."""
    if not isinstance(text, str):
        raise Reject("not_yes_no", repr(text)[:40])
    s = text.strip()
    if s.startswith(("{", "```")):
        try:
            d = extract_json(s, dict)
        except Reject:
            d = {}
        for v in lower_keys(d).values():
            if isinstance(v, bool):
                return v
            if isinstance(v, str):
                s = v
                break
    m = re.match(r"^\W*(yes|no|true|false|yeah|nope|correct|incorrect)\b", s, re.I)
    if not m:
        raise Reject("not_yes_no", s[:40])
    return m.group(1).lower() in {"yes", "true", "yeah", "correct"}


def clean_sentence(text: Any, max_chars: int = 400) -> str:
    """A free-text answer as one tidy sentence or paragraph (fences, quotes, JSON wrappers removed)."""
    if not isinstance(text, str):
        raise Reject("not_text", type(text).__name__)
    s = text.strip()
    if not s:
        raise Reject("empty")
    if s.startswith("{") or s.startswith("```"):
        try:
            d = extract_json(s, dict)
            vals = [v for v in lower_keys(d).values() if isinstance(v, str) and v.strip()]
            if vals:
                s = vals[0]
        except Reject:
            s = _FENCE.sub(lambda m: m.group(2), s)
    s = "".join(ch for ch in s if ch.isspace() or (unicodedata.category(ch)[0] != "C" and ch != "\ufffd"))
    s = re.sub(r"\s+", " ", s).strip().strip("\"'` ")
    s = re.sub(r"^(description|event|answer|narrative)\s*:\s*", "", s, flags=re.I)
    if not re.search(r"[A-Za-z]{2,}", s):
        raise Reject("no_text", s[:40])
    if len(s) > max_chars:
        cut = s[:max_chars]
        s = cut[: cut.rfind(" ")] if " " in cut else cut
    return s
