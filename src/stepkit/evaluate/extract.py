"""Answer extraction from free-form model output, and the normalised match of open-ended answers.

Standard library only: the lmms-eval export copies this module into its ``utils.py``.

Multiple choice (:func:`extract_choice`): an explicit cue ("The answer is (B)", "Answer: b",
"**Answer:** C") wins; then a lone option letter ("(B)", "B.", "[B]", "B) the cup", "B"); then option
text ("the red cup"). Several different letters or options with no cue to choose between them, or
nothing recognisable, is a parse failure (``index`` None), which scoring counts as wrong.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

LETTERS = "ABCDEFGHIJ"
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile("[" + re.escape(string.punctuation + "“”‘’«»…–—") + "]")
_SPECIAL = re.compile(r"<\|[^|>]*\|>|</?s>|<unk>|<pad>|\[/?INST\]|<end_of_turn>|<eos>")
_ROLE = re.compile(r"^\s*(assistant|gpt|answer bot|model)\s*[:：]\s*", re.I)
_CUE = re.compile(
    r"\b(?:final answer|correct answer|best answer|correct option|right answer|answer|option|choice)\b"
    r"\s*(?:is|would be|should be|will be|:|=|-)?\s*[:：]?\s*", re.I)


@dataclass(frozen=True)
class Extraction:
    """What was read from an output: the option ``index`` (None: parse failure) and how."""

    index: int | None
    method: str  # cue-letter | letter | cue-text | text | none | ambiguous | empty


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation and articles (a/an/the), collapse whitespace (SQuAD style)."""
    t = _PUNCT.sub(" ", str(text).lower())
    t = _ARTICLES.sub(" ", t)
    return " ".join(t.split())


def clean_output(text: str) -> str:
    """Drop chat special tokens, a leading role tag, markdown emphasis and surrounding quotes."""
    t = _SPECIAL.sub(" ", str(text or ""))
    t = t.replace("**", "").replace("__", "").replace("`", "")
    t = _ROLE.sub("", t)
    return t.strip().strip("\"'").strip()


def _letter_at(text: str, pos: int, options: list[str], after_cue: bool) -> int | None:
    """Option index if an option letter stands at ``text[pos:]`` as a letter (not a word such as "a")."""
    k = len(options)
    m = re.match(r"\s*[(\[{<]\s*([A-Za-z])\s*[)\]}>]", text[pos:]) or re.match(
        r"\s*([\"'])([A-Za-z])\1", text[pos:])
    if m:
        i = LETTERS.find(m.group(m.lastindex).upper())
        return i if 0 <= i < k else None
    m = re.match(r"\s*([A-Za-z])(?![A-Za-z'])", text[pos:])
    if not m:
        return None
    ch = m.group(1)
    i = LETTERS.find(ch.upper())
    if not 0 <= i < k:
        return None
    rest = text[pos + m.end():]
    if not rest.strip():
        return i if (ch.isupper() or after_cue or pos == 0) else None
    nxt = rest[0]
    if nxt in ".):":
        return i
    if nxt in ",;":
        return i if ch.isupper() or after_cue else None
    if not nxt.isspace() or not ch.isupper():
        return None
    # an upper-case letter, a space, more words: "B the cup", but "A cup" / "I think" are words
    if ch not in "AI":
        return i
    words = normalize_answer(rest)
    opt = normalize_answer(options[i])
    if opt and (words + " ").startswith(opt + " "):
        return i
    if after_cue and (words.split() or [""])[0] in ("because", "since", "as", "is", "it"):
        return i
    return None


def _option_hits(text: str, options: list[str]) -> list[tuple[int, int]]:
    """(position, index) of every option whose normalised text occurs in the normalised output."""
    norm = " " + normalize_answer(text) + " "
    hits = []
    for i, opt in enumerate(options):
        o = normalize_answer(opt)
        if not o:
            continue
        p = norm.find(" " + o + " ")
        if p >= 0:
            hits.append((p, i))
    # an option contained in a longer matched option ("cup" inside "red cup") is not its own hit
    norms = {i: normalize_answer(options[i]) for _, i in hits}

    def inside(i: int, j: int) -> bool:
        return j != i and len(norms[j]) > len(norms[i]) and f" {norms[i]} " in f" {norms[j]} "

    return sorted((p, i) for p, i in hits if not any(inside(i, j) for _, j in hits))


def extract_choice(output: str, options: list[str]) -> Extraction:
    """Which of ``options`` a generated ``output`` picks (see the module docstring for the rules)."""
    k = len(options)
    text = clean_output(output)
    if not text:
        return Extraction(None, "empty")
    # 1. the last explicit cue ("answer is", "Answer:", "option") followed by a letter or option text
    cues = list(_CUE.finditer(text))
    for m in reversed(cues):
        i = _letter_at(text, m.end(), options, after_cue=True)
        if i is not None:
            return Extraction(i, "cue-letter")
        tail = re.split(r"[.\n;!?](?:\s|$)", text[m.end():], maxsplit=1)[0]
        hits = _option_hits(tail, options)
        if len({i for _, i in hits}) == 1:
            return Extraction(hits[0][1], "cue-text")
    # 2. the output opens with a letter ("B", "B.", "(B) the cup", "B: ...")
    bracketed = {LETTERS.find(x.upper()) for x in re.findall(r"[(\[]\s*([A-Za-z])\s*[)\]]", text)}
    bracketed = {i for i in bracketed if 0 <= i < k}
    i = _letter_at(text, 0, options, after_cue=False)
    if i is not None:
        return Extraction(i, "letter") if bracketed <= {i} else Extraction(None, "ambiguous")
    # 3. bracketed letters anywhere: "(C)", "[b]"
    if len(bracketed) == 1:
        return Extraction(bracketed.pop(), "letter")
    if len(bracketed) > 1:
        return Extraction(None, "ambiguous")
    # 4. option text
    hits = _option_hits(text, options)
    distinct = {i for _, i in hits}
    if len(distinct) == 1:
        return Extraction(hits[0][1], "text")
    if len(distinct) > 1:
        return Extraction(None, "ambiguous")
    # 5. a lone upper-case letter token in a short answer ("I choose B")
    lone = {LETTERS.find(x) for x in re.findall(r"(?<![A-Za-z'])([B-HJ])(?![A-Za-z'])", text)}
    lone = {i for i in lone if 0 <= i < k}
    if len(lone) == 1 and len(text) <= 40:
        return Extraction(lone.pop(), "letter")
    return Extraction(None, "none")


def extract_open(output: str) -> str:
    """The answer span of an open-ended output: after the last "answer is"/"Answer:", first line/sentence."""
    text = clean_output(output)
    cues = list(re.finditer(r"\b(?:final\s+|short\s+)?answer\s*(?:is\s*[:：]?|[:：])\s*", text, re.I))
    if cues:
        m = cues[-1]
        text = text[m.end():]
    text = text.strip().split("\n")[0]
    text = re.split(r"(?<=[a-z0-9)])\.(?:\s|$)", text, maxsplit=1)[0]
    return text.strip().strip("\"'").strip()


_YES = {"yes", "yeah", "yep", "true", "correct"}
_NO = {"no", "nope", "false", "incorrect"}


def open_match(output: str, gold: str) -> bool:
    """Whether an open-ended output matches the gold answer after normalisation.

    Exact normalised match of the extracted span (or of the whole output); for yes/no gold answers,
    the output's leading yes/no word decides.
    """
    g = normalize_answer(gold)
    if not g:
        return False
    span = normalize_answer(extract_open(output))
    if span == g or normalize_answer(clean_output(output)) == g:
        return True
    if g in ("yes", "no"):
        words = span.split() or normalize_answer(clean_output(output)).split()
        if words:
            w = words[0]
            return (g == "yes" and w in _YES) or (g == "no" and w in _NO)
    return False
