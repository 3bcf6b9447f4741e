"""`stepkit qa audit`: measure the quality of any Q/R/A set against its graphs.

The audit is the check on the generator, so it re-derives everything from the records and the
graphs with its own rules and never calls the generator's filters (``reason.quality``,
``reason.sampler``):

- **no-op steps** by ablation: each reasoning step of a record's program is dropped (a filter
  passes its input through, a reference becomes a plain mention of its referent's label, a
  ``localize`` window becomes the whole video, ``first`` / ``last`` / ``nth`` / ``longest`` becomes
  ``unique``) and the program re-executed with :mod:`stepkit.reason.ops`; the step is a no-op when
  the program still resolves uniquely to the same answer (for ``exists`` / ``count``: to the same
  set). A reference whose referent *is* the answer is never replaced by the answer's label.
- **references missing from the question**: every label, verb, predicate, attribute value, window
  (before / after / while) and ordinal the program uses must be said in the question (word forms
  through lemminflect when installed).
- **distractors true in the graph**: every option but the answer is checked against the graph: an
  event with the option's verb / predicate / phrase between the same participants at the same time,
  a tie in the order the program decides, or a synonym, slash-class word or entailment of the
  answer.
- **implausible pairs**: verb-object and predicate-object pairs the program or an option uses, judged by
  :func:`stepkit.reason.plausibility.load_prior` extended with the pairs of the graphs audited.
- **orders decided by less than the margin** (default 1 s) and degenerate windows.
- **label and grammar checks**: slash labels, underscores, doubled words and articles, "a" before a
  vowel, known bad plurals and phrasings.
- **answer concentration** per question skeleton (the question with its content words masked).
- **blind baseline**: a text-only conditional logistic regression (question + option features →
  which option is the answer), fit on some videos and scored on the others (5 folds by video),
  per question type, against chance.
- **diversity**: distinct question ratio, skeleton count, anchor share, phrasings per template,
  step mix, side by side with a reference set (a STAR question file).
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from stepkit.errors import DataError

DEFAULT_MARGIN = 1.0
DEFAULT_FOLDS = 5
MIN_SKELETON_RECORDS = 5
MIN_TEMPLATE_RECORDS = 10
EXAMPLES = 5

# Steps whose ablation passes their first input through.
_PASS = frozenset({"filter_events", "filter_attr", "except", "intersect", "union"})
_SELECT = frozenset({"first", "last", "nth", "longest"})
_REFER = frozenset({"hop", "participants"})
_AGGREGATE = frozenset({"exists", "count", "compare_count"})

PERSON_WORDS = frozenset({"person", "someone", "somebody", "anyone", "anybody", "they", "them", "people", "man",
                          "woman", "he", "she", "one", "everyone", "nobody", "no one"})
ANCHOR_WORDS = {
    "after": ("after", "afterwards", "later", "then", "next", "since", "following", "once"),
    "before": ("before", "earlier", "prior", "until", "previously", "beforehand"),
    "while": ("while", "during", "when", "as", "whilst", "meanwhile", "same time"),
}
ANCHOR_RE = re.compile(r"\b(before|after|while|during|until|since|prior to)\b|(?<!^)\bwhen\b")
_ORDINALS = ("zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")

# Entailments and synonyms a distractor must not share with the answer: the audit's own small table
# (the generator's conflict lexicon is what is being checked, so it is not used).
ENTAILS = {
    "holding": {"touching", "carrying", "grasping", "hold", "touch", "carry", "grasp"},
    "hold": {"touch", "carry", "grasp", "holding", "touching"},
    "carrying": {"holding", "touching"},
    "sitting on": {"on", "touching"}, "lying on": {"on", "touching"}, "standing on": {"on", "touching"},
    "leaning on": {"on", "touching"}, "on": {"sitting on", "lying on", "standing on", "leaning on", "above"},
    "above": {"on"}, "beneath": {"under", "below"}, "under": {"beneath", "below"},
    "next to": {"near", "beside", "on the side of"}, "near": {"next to", "beside", "on the side of"},
    "beside": {"next to", "near"}, "on the side of": {"next to", "near"},
    "looking at": {"watching", "watch", "look at"}, "watching": {"looking at"},
    "small": {"tiny", "little"}, "tiny": {"small", "little"}, "little": {"small", "tiny"},
    "large": {"big", "huge"}, "big": {"large", "huge"}, "huge": {"large", "big"},
    "food": {"groceries", "sandwich", "meal"}, "groceries": {"food"}, "sandwich": {"food"},
    "door": {"doorway"}, "doorway": {"door"}, "sofa": {"couch"}, "couch": {"sofa"},
    "pick up": {"take", "grab", "lift"}, "take": {"pick up", "grab"}, "grab": {"take", "pick up"},
    "put down": {"place", "set down", "drop"}, "place": {"put down", "set down"},
    "walk to": {"approach", "go to"}, "approach": {"walk to"}, "go to": {"walk to"},
    "phone": {"camera", "cellphone"}, "cup": {"glass", "bottle", "mug"}, "glass": {"cup", "bottle"},
    "bottle": {"cup", "glass"}, "cabinet": {"closet", "cupboard"}, "closet": {"cabinet"},
    "notebook": {"paper"}, "paper": {"notebook"}, "television": {"tv"}, "tv": {"television"},
}

# Grammar and wording patterns (regex, name). Names are reported with their counts.
BAD_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("slash label", re.compile(r"\b[a-z]+/[a-z]+\b")),
    ("underscore label", re.compile(r"\b[a-z]+_[a-z_]+\b")),
    ("doubled word", re.compile(r"\b(\w+) \1\b", re.I)),
    ("double article", re.compile(r"\b(the|a|an) (the|a|an)\b", re.I)),
    ("'a' before a vowel", re.compile(r"\ba (?!one\b|once\b|uni|use|usu|euro|u\b)[aeiou]\w*", re.I)),
    ("'an' before a consonant", re.compile(r"\ban (?!hour|honest|honou?r|heir|x\b)[b-df-hj-np-tv-z]\w*", re.I)),
    ("bad plural", re.compile(r"\b(clotheses|groceri?eses|dishs|glasss|boxs|shelfs|knifes|couchs|benchs|"
                              r"watchs|sandwichs|brushs|persons|peoples|medicines|breads|foods|waters|"
                              r"hairs|homeworks|furnitures|televisionss?|stairses|pantss|scissorses)\b", re.I)),
    ("number agreement", re.compile(r"\b([2-9]|two|three|four|five) (time|object|thing|item)\b|"
                                    r"\b(1|one) (times|objects|things|items)\b", re.I)),
    ("STAR-style particle", re.compile(r"\bwatch(ed|ing|es)? at\b|\bdrink(ing|s)? from (?=\?)", re.I)),
    ("colour of a person", re.compile(r"\b(colou?r|size|shape) of (the |a )?(person|man|woman|someone)\b", re.I)),
    ("intransitive verb with object", re.compile(r"\b(sneez|laugh|smil|awak|cough|yawn)\w* (the|a|an|some|something)\b",
                                                 re.I)),
    ("question without a question mark", re.compile(r"^(what|which|who|how|did|does|is|are|was|were|when)\b[^?]*$",
                                                    re.I)),
]

FUNCTION_WORDS = frozenset("""
a an the some any this that these those it its they them their he she his her someone somebody anyone anybody
person people what which who whom whose how many much did does do is are was were be been being has have had
will would can could may might shall should and or but not no yes of to in on at by for with from into onto
about as than then so if while when before after during until since first last second third fourth fifth
next earlier later ever also both either neither each every there here same different other another more
fewer most least longer shorter longest shortest thing things object objects time times happened happen
happens doing done something anything nothing one two three four five six seven eight nine ten right just
immediately again still already only once twice kind type where why whether
""".split())


# ----------------------------------------------------------------------------------------------
# Words


@lru_cache(maxsize=1)
def _lemminflect() -> Any:
    try:
        import lemminflect
    except ImportError:  # optional ("text" extra): fall back to suffix rules
        return None
    return lemminflect


_IRREGULAR = {"took": "take", "taken": "take", "threw": "throw", "thrown": "throw", "ate": "eat", "eaten": "eat",
              "sat": "sit", "lay": "lie", "lain": "lie", "lied": "lie", "held": "hold", "drank": "drink",
              "drunk": "drink", "put": "put", "made": "make", "stood": "stand", "ran": "run", "went": "go",
              "gone": "go", "got": "get", "saw": "see", "seen": "see", "woke": "wake", "awoke": "awake",
              "brought": "bring", "caught": "catch", "left": "leave", "began": "begin", "wore": "wear",
              "clothes": "clothes", "people": "person", "dishes": "dish", "shelves": "shelf", "knives": "knife",
              "lying": "lie", "sitting": "sit", "putting": "put", "running": "run", "getting": "get"}


@lru_cache(maxsize=65536)
def lemmas(word: str) -> frozenset[str]:
    """The word and its possible lemmas (noun and verb readings)."""
    w = word.lower()
    out = {w}
    if w in _IRREGULAR:
        out.add(_IRREGULAR[w])
    lm = _lemminflect()
    if lm is not None:
        for forms in lm.getAllLemmas(w).values():
            out.update(forms)
        if len(out) == 1:
            for forms in lm.getAllLemmasOOV(w, upos="VERB").values():
                out.update(forms)
            for forms in lm.getAllLemmasOOV(w, upos="NOUN").values():
                out.update(forms)
    for suf, rep in (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
                     ("ing", "e"), ("d", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 2:
            out.add(w[: len(w) - len(suf)] + rep)
    if re.search(r"(.)\1(ed|ing)$", w):  # stopped, sitting
        out.add(re.sub(r"(.)\1(ed|ing)$", r"\1", w))
    return frozenset(out)


def words(text: str) -> list[str]:
    """Lower-case word tokens of a text."""
    return re.findall(r"[a-z0-9]+", text.lower())


def clean_label(label: str) -> str:
    """A graph label as words (``in_front_of`` → ``in front of``)."""
    return " ".join(str(label).replace("_", " ").split()).lower()


def label_variants(label: str) -> set[str]:
    """The words a question may use for a label: itself, its slash parts, its class's synonyms."""
    from stepkit.sources.vocab import canonical_object, label_forms, label_synonyms, natural_label

    lab = clean_label(label)
    out = {lab}
    parts = [p.strip() for p in lab.split("/") if p.strip()]
    out.update(parts)
    cls = canonical_object(lab) if lab else lab
    if cls in label_forms():
        out.add(natural_label(cls))
        out.update(label_synonyms(natural_label(cls)))
    for p in list(out):
        out.update(label_synonyms(p))
    return {v for v in out if v}


# How people say some vocabularies' verbs (STAR / Charades "watch at" is "look at" in English).
VERB_SAY = {
    "watch at": ("look at", "watch", "read", "view"), "watch outside": ("look out", "look outside", "watch"),
    "watch": ("look at", "watch", "view"), "looking at": ("look at", "watch", "view"), "look at": ("watch", "view"),
    "grasp onto": ("grasp", "grab", "hold"), "awaken in": ("wake", "awaken"), "awaken": ("wake",),
    "play on": ("use", "play", "work"), "play with": ("use", "play"), "work on": ("work", "write", "use"),
    "work at": ("work",), "snuggle with": ("snuggle", "cuddle", "hug"), "smile in": ("smile",),
    "smile at": ("smile",), "laugh at": ("laugh",), "talk on": ("talk", "use"), "tidy up": ("tidy", "clean"),
    "wash": ("wash", "clean", "wipe"), "put down": ("put", "place", "set", "leave"), "pick up": ("pick", "take", "grab"),
    "take": ("take", "pick", "grab", "get"), "eat": ("eat", "consume", "take"), "walk through": ("walk", "go", "pass"),
    "sit at": ("sit",), "fix": ("fix", "repair", "adjust"), "throw": ("throw", "toss"),
    "holding": ("hold", "carry"), "touching": ("touch",), "sitting_on": ("sit",), "lying_on": ("lie", "lay"),
    "standing_on": ("stand",), "drinking_from": ("drink",), "covered_by": ("cover",), "writing_on": ("write",),
}


def _key_words(label: str, kind: str) -> list[str]:
    """The word(s) of a label that must be said: a noun's head, a verb's head, a predicate's content."""
    ws = words(label)
    if not ws:
        return []
    if kind == "object":
        return [ws[-1]]
    if kind == "value":
        return ws
    content = [w for w in ws if w not in ("in", "on", "at", "of", "to", "the", "a", "from", "with", "into")]
    return [content[0]] if content else [ws[0]]


def said(label: str, kind: str, qlemmas: set[str]) -> bool:
    """Whether a program label is said in a question (any variant, any word form)."""
    if kind == "object" and clean_label(label) in PERSON_WORDS:
        return True  # the agent may be "someone", "they", or implicit
    variants = label_variants(label) if kind == "object" else \
        {clean_label(label), *VERB_SAY.get(label, ()), *VERB_SAY.get(clean_label(label), ())}
    for v in variants:
        keys = _key_words(v, kind)
        if keys and all(lemmas(k) & qlemmas for k in keys):
            return True
    return False


def skeleton(question: str) -> str:
    """The question with its content words masked (function words, question words, connectives kept)."""
    toks = words(question)
    return " ".join(t if t in FUNCTION_WORDS else "_" for t in toks)


def frame(question: str) -> str:
    """A question's wording frame: its skeleton with each masked phrase (and its article) as one X."""
    return re.sub(r"X(?: X)+", "X", re.sub(r"\b(?:(?:the|a|an|some) )?_(?: _)*", "X", skeleton(question)))


def _phrase_key(text: str) -> tuple[str, ...]:
    """A phrase with every noun read as its class (``glass``, ``cup/glass/bottle`` → one key)."""
    from stepkit.sources.vocab import canonical_object

    return tuple(canonical_object(t) for t in clean_label(text).split() if t not in ("the", "a", "an", "some"))


def _same(a: str, b: str) -> bool:
    """Whether two answer strings name the same thing (equal, a class's words, or entailed)."""
    a, b = clean_label(a), clean_label(b)
    if a == b or _phrase_key(a) == _phrase_key(b):
        return True
    if b in ENTAILS.get(a, ()) or a in ENTAILS.get(b, ()):
        return True
    if " " not in a and " " not in b and label_variants(a) & label_variants(b):
        return True
    # "hold the cup" vs "touch the cup": entailed verbs on one object
    for va in sorted(ENTAILS, key=len, reverse=True):
        if a.startswith(va + " "):
            rest = a[len(va):]
            return any(b == vb + rest or _phrase_key(b) == _phrase_key(vb + rest) for vb in ENTAILS[va])
    return False


# ----------------------------------------------------------------------------------------------
# Execution helpers


def _run(program: Sequence[dict[str, Any]], ctx: Any) -> list[Any]:
    """Every node's value; raises ExecError."""
    from stepkit.reason.ops import _FNS

    vals: list[Any] = []
    for n in program:
        v, _ = _FNS[n["op"]](ctx, [vals[j] for j in n["in"]], n.get("args", {}))
        vals.append(v)
    return vals


def _outcome(program: Sequence[dict[str, Any]], vals: list[Any], ctx: Any) -> tuple:
    """What a program resolves to: its answer, and the sets its exists / count nodes aggregate."""
    from stepkit.reason.ops import answer_text

    sets = tuple(tuple(sorted(vals[n["in"][0]])) if isinstance(vals[n["in"][0]], tuple) else vals[n["in"][0]]
                 for n in program if n["op"] in _AGGREGATE and n["in"])
    return (answer_text(vals[-1], ctx),) + sets


def _consumers(program: Sequence[dict[str, Any]]) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in program]
    for i, n in enumerate(program):
        for j in n.get("in", []):
            out[j].append(i)
    return out


def _answer_path(program: Sequence[dict[str, Any]], i: int, consumers: list[list[int]]) -> bool:
    """Whether node i's referent is the answer: its value flows, through selections and set
    operations only, into the final ``query`` of a label or into a count / exists. Such a reference
    is how the answer is found, so it is never replaced by a mention of the answer's label."""
    last = len(program) - 1
    cur = i
    while cur != last:
        nxt = consumers[cur]
        if len(nxt) != 1:
            return False
        cur = nxt[0]
        op = program[cur]["op"]
        if op in _AGGREGATE:
            return True
        if cur == last:
            return op == "query" and program[cur].get("args", {}).get("field") == "label"
        if op != "unique" and op not in _SELECT and op not in ("intersect", "except", "union", "during"):
            return False
    return False


def noop_steps(program: Sequence[dict[str, Any]], ctx: Any) -> list[tuple[int, str, str]]:
    """Reasoning steps of a program that change nothing on this graph, as (index, operator, ablation).

    Each step is dropped in turn (see the module doc); a step is a no-op when the ablated program
    still executes and resolves to the same outcome.
    """
    from stepkit.reason.ops import OPS, ExecError

    try:
        base_vals = _run(program, ctx)
        base = _outcome(program, base_vals, ctx)
    except (ExecError, KeyError, IndexError, TypeError):
        return []
    consumers = _consumers(program)
    out = []
    for i, n in enumerate(program):
        op = n["op"]
        if not OPS[op].step or op in _AGGREGATE:
            continue
        if op in _PASS and n.get("in"):
            how, override = "pass input through", {i: ("_pass", n["in"][0])}
        elif op in _SELECT and n.get("in"):
            how, override = "the only one", {i: ("unique", {})}
        elif op == "localize":
            how, override = "whole video", {i: ("video", {})}
        elif op in _REFER:
            if _answer_path(program, i, consumers):
                continue
            labels = sorted({ctx.objects[o].label for o in base_vals[i] if o in ctx.objects}) \
                if isinstance(base_vals[i], tuple) else []
            if len(labels) != 1:
                continue
            how, override = "plain mention", {i: ("objects", {"label": labels[0]})}
        else:
            continue
        try:
            vals = _run_ablated(program, ctx, i, override[i])
            if _outcome(program, vals, ctx) == base:
                out.append((i, op, how))
        except (ExecError, KeyError, IndexError, TypeError, ValueError):
            continue
    return out


def _run_ablated(program: Sequence[dict[str, Any]], ctx: Any, i: int, how: tuple[str, Any]) -> list[Any]:
    from stepkit.reason.ops import _FNS

    vals: list[Any] = []
    for k, n in enumerate(program):
        if k == i:
            op, arg = how
            if op == "_pass":
                v = vals[arg]
            elif op == "_value":
                v = arg
            elif op == "video":
                v, _ = _FNS["video"](ctx, [], {})
            elif op == "objects":
                v, _ = _FNS["objects"](ctx, [], arg)
            else:
                v, _ = _FNS[op](ctx, [vals[j] for j in n["in"]], arg)
        else:
            v, _ = _FNS[n["op"]](ctx, [vals[j] for j in n["in"]], n.get("args", {}))
        vals.append(v)
    return vals


# ----------------------------------------------------------------------------------------------
# References, options, pairs, margins


def program_mentions(program: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(text, kind) the question must say: labels of objects, verbs, predicates, values, windows, ordinals."""
    out: list[tuple[str, str]] = []
    for n in program:
        a = n.get("args", {})
        op = n["op"]
        if op == "objects" and a.get("label"):
            out.append((a["label"], "object"))
        elif op in ("filter_events", "hop") and a.get("label"):
            out.append((a["label"], "verb"))
        elif op == "filter_attr":
            out.append((str(a.get("value", "")), "value"))
        elif op == "localize" and a.get("mode") in ANCHOR_WORDS:
            out.append((a["mode"], "window"))
        elif op == "nth" and int(a.get("k", 1)) >= 2:
            out.append((str(a["k"]), "ordinal"))
    return out


def missing_references(question: str, program: Sequence[dict[str, Any]]) -> list[str]:
    """What the program uses that the question does not say."""
    toks = words(question)
    q = set()
    for t in toks:
        q |= lemmas(t)
    text = " " + " ".join(toks) + " "
    miss = []
    for label, kind in program_mentions(program):
        if kind == "window":
            if not any(f" {w} " in text for w in ANCHOR_WORDS[label]):
                miss.append(f"window {label}")
        elif kind == "ordinal":
            k = int(label)
            forms = {str(k), f"{k}th", f"{k}nd", f"{k}rd", _ORDINALS[k] if k < len(_ORDINALS) else ""}
            if not forms & set(toks):
                miss.append(f"ordinal {k}")
        elif not said(label, kind, q):
            miss.append(f"{kind} {clean_label(label)}")
    return miss


def _selection(program: Sequence[dict[str, Any]], vals: list[Any]) -> tuple[Any, tuple, str | None, str | None]:
    """(answered item, the set it was selected from, selector op, query field) of a program."""
    last = program[-1]
    field = last.get("args", {}).get("field") if last["op"] == "query" else None
    if last["op"] not in ("query", "query_attr") or not last.get("in"):
        return None, (), None, field
    j = last["in"][0]
    item = vals[j]
    node = program[j]
    if node["op"] in _SELECT or node["op"] == "unique":
        src = vals[node["in"][0]] if node.get("in") else ()
        return item, tuple(src) if isinstance(src, tuple) else (), node["op"], field
    return item, (item,), None, field


def _field_text(f: Any, field: str | None, ctx: Any) -> str | None:
    """What a query of ``field`` would answer for event f."""
    from stepkit.reason.ops import Action

    if field in ("verb", "predicate", "label"):
        return clean_label(f.verb if isinstance(f, Action) else f.predicate)
    if field in ("action", "relation"):
        return clean_label(ctx.action_phrase(f.id))
    if field in ("object", "target", "agent", "subject"):
        oid = getattr(f, field, None) if field not in ("agent", "subject") else \
            (getattr(f, "agent", None) or getattr(f, "subject", None))
        return clean_label(ctx.objects[oid].label) if oid in ctx.objects else None
    return None


def true_distractors(rec: Any, program: Sequence[dict[str, Any]], vals: list[Any], ctx: Any,
                     margin: float) -> list[tuple[str, str]]:
    """Options other than the answer that are also right: (option, why).

    An option is right when it is a synonym, class word or entailment of the answer; when the
    program picks by order (first / last / nth) and another candidate starting within ``margin``
    of the answer would answer the option; or, for a unique pick, when another event with the
    same participants holds at the same time and answers the option (holding and touching)."""
    if not rec.options:
        return []
    item, cands, sel, field = _selection(program, vals)
    out = []
    ev = ctx.events.get(item) if isinstance(item, str) else None
    for k, opt in enumerate(rec.options):
        if k == rec.answer_index or opt == rec.answer:
            continue
        if _same(opt, rec.answer):
            out.append((opt, "synonym or entailment of the answer"))
            continue
        if ev is None or field is None:
            continue
        o = clean_label(opt)
        subj = getattr(ev, "agent", None) or getattr(ev, "subject", None)
        for f in ctx.events.values():
            if f.id == ev.id:
                continue
            text = _field_text(f, field, ctx)
            if text is None or not (text == o or o in ENTAILS.get(text, ())):
                continue
            if sel in _SELECT:
                if f.id in cands and abs(f.t0 - ev.t0) < margin:
                    out.append((opt, f"{f.id} starts within {margin} s of the answer (order undecided)"))
                    break
                continue
            if field == "action" or not (f.t0 < ev.t1 and f.t1 > ev.t0):
                continue
            fsubj = getattr(f, "agent", None) or getattr(f, "subject", None)
            same_parts = fsubj == subj and (field in ("object", "target") or f.object == ev.object)
            same_kind = field not in ("object", "target") or _field_text(f, "verb", ctx) == _field_text(ev, "verb", ctx)
            if same_parts and same_kind:
                out.append((opt, f"{f.id} ({text}) holds at the same time between the same participants"))
                break
    return out


def reused_events(program: Sequence[dict[str, Any]], vals: list[Any], ctx: Any) -> list[str]:
    """References that rest on the very event the question asks about ("what did the person sit on
    while sitting on the object they sat on"): the answered event is a window's anchor or an edge
    a reference follows."""
    from stepkit.reason.ops import _FNS

    item, _, _, _ = _selection(program, vals)
    if not isinstance(item, str) or item not in ctx.events:
        return []
    asked = ctx.events[item]

    def same(eid: str) -> bool:  # the event itself, or a relation over the very same span and participants
        e = ctx.events.get(eid)
        if e is None:
            return False
        if eid == item:
            return True
        parts = lambda x: (getattr(x, "agent", None) or getattr(x, "subject", None), x.object)  # noqa: E731
        return parts(e) == parts(asked) and (e.t0, e.t1) == (asked.t0, asked.t1)

    out = []
    for i, n in enumerate(program):
        if n["op"] == "localize" and same(getattr(vals[i], "anchor", None) or ""):
            out.append(f"node {i}: the window is anchored on the answered event {item}")
        elif n["op"] == "hop":
            _, ids = _FNS["hop"](ctx, [vals[j] for j in n["in"]], n.get("args", {}))
            if any(same(x) for x in ids):
                out.append(f"node {i}: the reference follows the answered event {item}")
    return out


def _pair_label(ctx: Any, program: Sequence[dict[str, Any]], j: int) -> str | None:
    """The label an objects node (or unique over one) names."""
    n = program[j]
    if n["op"] == "objects":
        return n.get("args", {}).get("label")
    if n["op"] == "unique" and n.get("in"):
        return _pair_label(ctx, program, n["in"][0])
    return None


def program_pairs(program: Sequence[dict[str, Any]], ctx: Any) -> list[tuple[str, str]]:
    """(verb or predicate, object label) pairs a program names."""
    out = []
    for n in program:
        a = n.get("args", {})
        if n["op"] == "filter_events" and a.get("label"):
            for role, j in zip(a.get("roles", []), n["in"][1:]):
                if role in ("object", "target"):
                    lab = _pair_label(ctx, program, j)
                    if lab:
                        out.append((a["label"], lab))
        elif n["op"] == "hop" and a.get("label") and a.get("from") in ("object", "target") and n.get("in"):
            lab = _pair_label(ctx, program, n["in"][0])
            if lab:
                out.append((a["label"], lab))
    return out


def option_pairs(rec: Any, program: Sequence[dict[str, Any]], vals: list[Any], ctx: Any) -> list[tuple[str, str]]:
    """(verb or predicate, object) pairs the options of a record stand for: an action option's own
    pair; a verb or predicate option with the object of the answered event; an object option with
    the verb the program found it by."""
    from stepkit.reason.ops import Action

    if not rec.options:
        return []
    item, _, _, field = _selection(program, vals)
    ev = ctx.events.get(item) if isinstance(item, str) else None
    out = []
    for opt in rec.options:
        o = clean_label(opt)
        if field == "action":
            m = re.match(r"^(.*?) (?:the|a|an|some) (.+?)(?: (?:on|in|at|to|into|onto|from|with) (?:the|a|an) .+)?$", o)
            if m:
                out.append((m.group(1), m.group(2)))
        elif field in ("verb", "predicate") and ev is not None and ev.object in ctx.objects:
            out.append((o, ctx.objects[ev.object].label))
        elif field in ("object", "target") and ev is not None:
            out.append((ev.verb if isinstance(ev, Action) else ev.predicate, o))
        elif field == "label":
            verb = _finding_verb(program)
            if verb:
                out.append((verb, o))
    return out


def _finding_verb(program: Sequence[dict[str, Any]]) -> str | None:
    """The verb or predicate whose object (or target) slot the answered object fills, if any: an
    object found as the *subject* of "on" ("what was on the table?") pairs with nothing."""
    j = program[-1]["in"][0] if program[-1].get("in") else None
    while j is not None and program[j]["op"] in ("unique", *_SELECT, "intersect", "except", "during"):
        j = program[j]["in"][0] if program[j].get("in") else None
    if j is None:
        return None
    n = program[j]
    a = n.get("args", {})
    if n["op"] == "hop" and a.get("to") in ("object", "target"):
        return a.get("label")
    if n["op"] == "participants" and a.get("role") in ("object", "target") and n.get("in"):
        src = program[n["in"][0]]
        return src.get("args", {}).get("label") if src["op"] == "filter_events" else None
    return None


def order_margins(program: Sequence[dict[str, Any]], vals: list[Any], ctx: Any, margin: float) -> list[str]:
    """Orders the program decides by less than ``margin`` seconds, and degenerate windows."""
    from stepkit.reason.ops import ExecError, Window

    out = []
    consumers = _consumers(program)
    base = _outcome(program, vals, ctx)
    for i, n in enumerate(program):
        op = n["op"]
        if op in ("first", "last", "nth") and n.get("in"):
            cands = vals[n["in"][0]]
            if not isinstance(cands, tuple) or len(cands) < 2 or not all(c in ctx.events for c in cands):
                continue
            starts = sorted(ctx.events[c].t0 for c in cands)
            k = 0 if op == "first" else len(starts) - 1 if op == "last" else int(n["args"].get("k", 1)) - 1
            gaps = [abs(starts[k] - starts[j]) for j in (k - 1, k + 1) if 0 <= j < len(starts)]
            if gaps and min(gaps) < margin:
                out.append(f"{op}: decided by {min(gaps):.2f} s")
        elif op in ("compare_time", "choose") and len(n.get("in", [])) == 2:
            a, b = (vals[j] for j in n["in"])
            if a in ctx.events and b in ctx.events:
                d = abs(ctx.events[a].t0 - ctx.events[b].t0)
                if d < margin:
                    out.append(f"{op}: decided by {d:.2f} s")
        elif op == "localize":
            w = vals[i]
            if not isinstance(w, Window):
                continue
            if w.t1 - w.t0 <= 0:
                out.append(f"localize {w.mode}: empty window")
                continue
            anchor = ctx.events.get(w.anchor)
            if anchor is None:
                continue
            # An event wholly after (before) the anchor is after (before) it however short the gap;
            # what is shaky is one that overlaps the anchor's edge by less than the margin: widen
            # the window by the margin and see whether the answer changes.
            wide = w._replace(t0=w.t0 - margin) if w.mode == "after" else w._replace(t1=w.t1 + margin) \
                if w.mode == "before" else w._replace(t0=w.t0 - margin, t1=w.t1 + margin)
            try:
                got = _outcome(program, _run_ablated(program, ctx, i, ("_value", wide)), ctx)
            except (ExecError, KeyError, IndexError, TypeError, ValueError):
                got = None
            if got != base:
                out.append(f"{w.mode}: an event within {margin} s of the anchor's edge changes the answer")
                continue
            if w.mode == "while":
                at = _resolved_set(program, consumers, i)
                for e in (vals[at] if at is not None and isinstance(vals[at], tuple) else ()):
                    ev = ctx.events.get(e)
                    if ev is not None and e != anchor.id and min(ev.t1, anchor.t1) - max(ev.t0, anchor.t0) <= 0:
                        out.append(f"while: {e} only touches the anchor")
                        break
    return out


_EVENT_SETS = frozenset({"actions", "relations", "filter_events", "during", "except", "intersect", "union"})


def _resolved_set(program: Sequence[dict[str, Any]], consumers: list[list[int]], i: int) -> int | None:
    """Index of the last event set computed from node i (what the window's answer rests on)."""
    seen, stack, best = set(), [i], None
    while stack:
        k = stack.pop()
        for c in consumers[k]:
            if c not in seen:
                seen.add(c)
                stack.append(c)
                if program[c]["op"] in _EVENT_SETS and (best is None or c > best):
                    best = c
    return best


def text_problems(texts: Iterable[str]) -> list[str]:
    """Names of the label / grammar patterns found in some texts."""
    out = []
    for t in texts:
        for name, pat in BAD_PATTERNS:
            if name == "question without a question mark":
                continue
            if pat.search(t):
                out.append(name)
    return out


# ----------------------------------------------------------------------------------------------
# Blind baseline


def _h(s: str, dim: int) -> int:
    return zlib.crc32(s.encode("utf-8")) % dim


def _features(question: str, option: str, position: int, dim: int) -> list[int]:
    qt = words(question)
    content = [t for t in qt if t not in FUNCTION_WORDS]
    sk = skeleton(question)
    ot = words(option) or ["<empty>"]
    f = [f"o={option.lower()}", f"pos={position}", f"sk={sk}|o={option.lower()}", f"ow_in_q={int(bool(set(ot) & set(qt)))}"]
    f += [f"ow={w}" for w in ot]
    f += [f"qw={q}|ow={w}" for q in content for w in ot]
    f += [f"sk={sk}|ow={w}" for w in ot]
    return [_h(x, dim) for x in f]


@dataclass
class _Item:
    video: str
    type: str
    feats: list[list[int]]
    answer: int


def blind_items(records: Sequence[Any], dim: int = 1 << 18) -> list[_Item]:
    """Question + option feature rows of every record with options (yes / no when it has none)."""
    items = []
    for r in records:
        opts = list(r.options) if r.options else (["yes", "no"] if r.answer in ("yes", "no") else None)
        if not opts or r.answer not in opts:
            continue
        ans = opts.index(r.answer) if r.answer_index is None or not r.options else r.answer_index
        items.append(_Item(r.video_id, r.type, [_features(r.question, o, k, dim) for k, o in enumerate(opts)], ans))
    return items


def _fit(items: Sequence[_Item], dim: int, epochs: int = 60, lr: float = 0.5, l2: float = 1e-4) -> np.ndarray:
    """Conditional logit (softmax over a question's options) by full-batch gradient descent."""
    w = np.zeros(dim)
    rows_f, rows_r, ans_row = [], [], []
    row = 0
    starts = []
    for r, it in enumerate(items):
        starts.append(row)
        for k, f in enumerate(it.feats):
            rows_f.append(np.asarray(f, dtype=np.int64))
            rows_r.append(np.full(len(f), row, dtype=np.int64))
            if k == it.answer:
                ans_row.append(row)
            row += 1
    if not items:
        return w
    feat = np.concatenate(rows_f)
    frow = np.concatenate(rows_r)
    group = np.repeat(np.arange(len(items)), [len(it.feats) for it in items])
    target = np.zeros(row)
    target[np.asarray(ans_row)] = 1.0
    g2 = np.zeros(dim)
    for _ in range(epochs):
        s = np.bincount(frow, weights=w[feat], minlength=row)
        mx = np.full(len(items), -np.inf)
        np.maximum.at(mx, group, s)
        e = np.exp(s - mx[group])
        z = np.bincount(group, weights=e, minlength=len(items))
        p = e / z[group]
        c = (p - target) / len(items)
        grad = np.bincount(feat, weights=c[frow], minlength=dim) + l2 * w
        g2 += grad * grad
        w -= lr * grad / (np.sqrt(g2) + 1e-8)  # Adagrad: sparse hashed features
    return w


def blind_baseline(records: Sequence[Any], *, folds: int = DEFAULT_FOLDS, seed: int = 0, dim: int = 1 << 18
                   ) -> dict[str, Any]:
    """Text-only accuracy per question type on held-out videos (``folds`` folds by video) vs chance."""
    items = blind_items(records, dim)
    videos = sorted({it.video for it in items})
    if len(videos) < 2:
        return {"note": "needs records from at least 2 videos", "by_type": {}, "overall": None}
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(videos)))
    k = min(folds, len(videos))
    fold_of = {videos[v]: n % k for n, v in enumerate(order)}
    right: dict[str, list[int]] = defaultdict(list)
    chance: dict[str, list[float]] = defaultdict(list)
    for f in range(k):
        train = [it for it in items if fold_of[it.video] != f]
        test = [it for it in items if fold_of[it.video] == f]
        if not test or not train:
            continue
        w = _fit(train, dim)
        for it in test:
            # ties (an unseen question) fall to the first option: report it as chance-level, not signal
            scores = [float(w[np.asarray(fe)].sum()) for fe in it.feats]
            best = max(scores)
            winners = [j for j, s in enumerate(scores) if s == best]
            right[it.type].append(1 if len(winners) == 1 and winners[0] == it.answer else 0)
            chance[it.type].append(1.0 / len(it.feats))
    by_type = {}
    for t in sorted(right):
        n = len(right[t])
        acc = sum(right[t]) / n
        ch = sum(chance[t]) / n
        half = 1.96 * math.sqrt(max(acc * (1 - acc), 1e-9) / n)
        by_type[t] = {"n": n, "accuracy": round(acc, 4), "chance": round(ch, 4),
                      "above_chance": round(acc - ch, 4), "ci95": [round(max(0.0, acc - half), 4), round(min(1.0, acc + half), 4)]}
    all_r = [x for t in right for x in right[t]]
    all_c = [x for t in chance for x in chance[t]]
    overall = {"n": len(all_r), "accuracy": round(sum(all_r) / len(all_r), 4) if all_r else None,
               "chance": round(sum(all_c) / len(all_c), 4) if all_c else None}
    return {"folds": k, "videos": len(videos), "model": "conditional logistic regression on hashed question/option "
            "words, skeleton and position features (numpy)", "by_type": by_type, "overall": overall}


# ----------------------------------------------------------------------------------------------
# Diversity


def diversity(questions: Sequence[str], templates: Sequence[str], steps: Sequence[int | None]) -> dict[str, Any]:
    """Distinct question ratio, skeletons, anchor share (all / multi-step), phrasings per template
    (distinct wording frames, :func:`frame`, per template)."""
    n = len(questions)
    if not n:
        return {"questions": 0}
    sks = [skeleton(q) for q in questions]
    anchored = [bool(ANCHOR_RE.search(q.lower())) for q in questions]
    multi = [a for a, s in zip(anchored, steps) if s is not None and s >= 2]
    per_t: dict[str, set[str]] = defaultdict(set)
    n_t: Counter = Counter(templates)
    for t, q in zip(templates, questions):
        per_t[t].add(frame(q))
    # a template asked fewer than MIN_TEMPLATE_RECORDS times cannot show its phrasings
    judged = {t: v for t, v in per_t.items() if n_t[t] >= MIN_TEMPLATE_RECORDS} or per_t
    counts = sorted(len(v) for v in judged.values())
    words_kind = Counter()
    for q in questions:
        for w in ("before", "after", "while", "during", "when", "until", "then"):
            if re.search(rf"\b{w}\b", q.lower()):
                words_kind[w] += 1
    return {
        "questions": n,
        "distinct_question_ratio": round(len(set(questions)) / n, 4),
        "skeletons": len(set(sks)),
        "skeleton_ratio": round(len(set(sks)) / n, 4),
        "anchor_share": round(sum(anchored) / n, 4),
        "anchor_share_multi_step": round(sum(multi) / len(multi), 4) if multi else None,
        "anchor_words": dict(sorted(words_kind.items())),
        "templates": len(per_t),
        "phrasings_per_template": {"min": counts[0], "median": counts[len(counts) // 2], "max": counts[-1]},
        "templates_under_3_phrasings": sorted(t for t, v in judged.items() if len(v) < 3),
        "templates_with_few_records": sorted(t for t in per_t if n_t[t] < MIN_TEMPLATE_RECORDS),
        "mean_question_words": round(sum(len(words(q)) for q in questions) / n, 2),
    }


def reference_diversity(path: str | os.PathLike) -> dict[str, Any]:
    """Diversity figures of a reference question set (a STAR JSON file; template = the qid's)."""
    from stepkit.evaluate.star_graph import load_star_questions
    from stepkit.evaluate.star_templates import TemplateError, split_qid, template_steps

    qs = load_star_questions(path)
    steps = template_steps()
    templates, n_steps = [], []
    for q in qs:
        try:
            t = split_qid(str(q["qid"]))[1]
        except TemplateError:
            t = "?"
        templates.append(t)
        n_steps.append(steps.get(t))
    out = diversity([str(q["question"]) for q in qs], templates, n_steps)
    out["path"] = str(path)
    return out


# ----------------------------------------------------------------------------------------------
# The audit


def _contexts(lookup: Any, video: str, cache: dict) -> tuple[Any, Any] | None:
    if video not in cache:
        plain = lookup.get(video)
        if plain is None:
            cache[video] = None
        else:
            from stepkit.reason.ops import GraphContext

            cache.clear()  # one video at a time: records are grouped by video
            cache[video] = (plain, GraphContext(plain.graph, natural=True))
    return cache[video]


def audit(qa: str | os.PathLike, graphs: str | os.PathLike, *, reference: str | os.PathLike | None = None,
          margin: float = DEFAULT_MARGIN, folds: int = DEFAULT_FOLDS, seed: int = 0) -> dict[str, Any]:
    """Audit a Q/R/A folder (``qa.jsonl``) against its graphs; returns the report (see module doc)."""
    from stepkit.data.record import iter_records
    from stepkit.reason.ops import ExecError, ProgramError, as_program
    from stepkit.reason.verify import GraphLookup

    if margin < 0:
        raise DataError(f"margin {margin}: must be >= 0 seconds")
    if not Path(graphs).exists():
        raise DataError(f"{graphs}: no such graphs folder")
    records = list(iter_records(qa))
    if not records:
        raise DataError(f"{qa}: no records")
    lookup = GraphLookup(graphs)
    if not lookup.files:
        raise DataError(f"{graphs}: no graph files (*.json) to audit the records against")
    try:
        from stepkit.reason.plausibility import load_prior

        prior = load_prior()
        for p in lookup.files:
            from stepkit.graph.serialize import load_graph

            prior.add_graph(load_graph(p))
    except ImportError:
        prior = None
    cache: dict = {}
    c: Counter = Counter()
    ex: dict[str, list[dict[str, Any]]] = defaultdict(list)
    noop_by_op: Counter = Counter()
    noop_by_steps: Counter = Counter()
    records_by_steps: Counter = Counter()
    honest_steps: Counter = Counter()
    text_found: Counter = Counter()
    implausible: Counter = Counter()
    pairs_seen: Counter = Counter()
    margin_kinds: Counter = Counter()

    def example(kind: str, rec: Any, detail: Any) -> None:
        if len(ex[kind]) < EXAMPLES:
            ex[kind].append({"id": rec.id, "question": rec.question, "answer": rec.answer, "detail": detail})

    for rec in sorted(records, key=lambda r: (r.video_id, r.id)):
        c["records"] += 1
        records_by_steps[rec.steps] += 1
        texts = [rec.question, rec.answer, rec.answer_sentence, *(rec.options or []), *(s.text for s in rec.rationale)]
        found = sorted(set(text_problems(texts)))
        for name in found:
            text_found[name] += 1
            example(f"text: {name}", rec, next(t for t in texts if dict(BAD_PATTERNS)[name].search(t)))
        if "slash label" in found:
            c["slash_labels"] += 1
        if found:
            c["text_problems"] += 1
        if not rec.question.rstrip().endswith("?"):
            text_found["question without a question mark"] += 1
        ctxs = _contexts(lookup, rec.video_id, cache)
        if ctxs is None:
            c["no_graph"] += 1
            example("no graph", rec, rec.video_id)
            continue
        try:
            program = as_program(rec.program)
        except ProgramError as exc:
            c["mismatches"] += 1
            example("mismatch", rec, str(exc))
            continue
        ctx, vals = None, None
        for cand in ctxs:
            try:
                v = _run(program, cand)
            except (ExecError, KeyError, IndexError, TypeError):
                continue
            from stepkit.reason.ops import answer_text

            try:
                if answer_text(v[-1], cand) == rec.answer:
                    ctx, vals = cand, v
                    break
            except ExecError:
                continue
        if ctx is None:
            # still audited on the graph as it reads (an answer rendered by another stepkit version)
            c["mismatches"] += 1
            example("mismatch", rec, "the program does not give the record's answer on its graph")
            try:
                ctx, vals = ctxs[0], _run(program, ctxs[0])
            except (ExecError, KeyError, IndexError, TypeError):
                continue
        c["checked"] += 1
        # no-op steps
        noops = noop_steps(program, ctx)
        honest_steps[rec.steps - len(noops)] += 1
        if noops:
            c["records_with_noop"] += 1
            c["noop_steps"] += len(noops)
            noop_by_steps[rec.steps] += 1
            for i, op, how in noops:
                noop_by_op[op] += 1
            example("no-op step", rec, [f"node {i} {op} ({how})" for i, op, how in noops])
        # references
        miss = missing_references(rec.question, program)
        if miss:
            c["records_missing_reference"] += 1
            c["missing_references"] += len(miss)
            example("missing reference", rec, miss)
        # options
        if rec.options:
            c["mc_records"] += 1
            c["distractors"] += len(rec.options) - 1
            bad = true_distractors(rec, program, vals, ctx, margin)
            if bad:
                c["records_true_distractor"] += 1
                c["true_distractors"] += len(bad)
                example("true distractor", rec, [f"{o}: {why}" for o, why in bad])
        # plausibility
        if prior is not None:
            for src, pairs in (("program", program_pairs(program, ctx)), ("option", option_pairs(rec, program, vals, ctx))):
                for verb, obj in pairs:
                    if not prior.known(verb):
                        c["pairs_unjudged"] += 1
                        continue
                    pairs_seen[src] += 1
                    if not prior.is_plausible(verb, obj):
                        implausible[src] += 1
                        example("implausible pair", rec, f"{src}: {clean_label(verb)} + {clean_label(obj)}")
        # margins
        probs = order_margins(program, vals, ctx, margin)
        if probs:
            c["records_under_margin"] += 1
            for p in probs:
                margin_kinds[p.split(":")[0]] += 1
            example("order under margin", rec, probs)
        reused = reused_events(program, vals, ctx)
        if reused:
            c["records_reusing_event"] += 1
            example("reference reuses the asked event", rec, reused)

    checked = c["checked"] or 1
    n = c["records"]
    skel = defaultdict(Counter)
    for r in records:
        skel[(r.type, skeleton(r.question))][r.answer] += 1
    conc = []
    for (t, sk), answers in skel.items():
        total = sum(answers.values())
        if total >= MIN_SKELETON_RECORDS:
            top, k = answers.most_common(1)[0]
            conc.append({"type": t, "skeleton": sk, "records": total, "top_answer": top, "top_share": round(k / total, 4),
                         "answers": len(answers)})
    conc.sort(key=lambda d: (-d["top_share"], -d["records"], d["skeleton"]))
    weighted = (sum(d["top_share"] * d["records"] for d in conc) / sum(d["records"] for d in conc)) if conc else None
    pos = Counter(r.answer_index for r in records if r.options and r.answer_index is not None)
    ours = diversity([r.question for r in records], [str(r.provenance.get("variant") or r.type) for r in records],
                     [r.steps for r in records])
    ours["step_mix"] = {str(k): round(v / n, 4) for k, v in sorted(records_by_steps.items())}
    ours["types"] = dict(sorted(Counter(r.type for r in records).items()))
    judged = sum(pairs_seen.values())
    report = {
        "qa": str(qa), "graphs": str(graphs), "margin_s": margin,
        "records": n, "checked": c["checked"], "no_graph": c["no_graph"], "mismatches": c["mismatches"],
        "noop": {"records": c["records_with_noop"], "steps": c["noop_steps"], "rate": round(c["records_with_noop"] / checked, 4),
                 "by_op": dict(sorted(noop_by_op.items())), "records_by_steps": {str(k): v for k, v in sorted(noop_by_steps.items())},
                 "honest_step_mix": {str(k): round(v / checked, 4) for k, v in sorted(honest_steps.items())}},
        "missing_references": {"records": c["records_missing_reference"], "references": c["missing_references"],
                               "rate": round(c["records_missing_reference"] / checked, 4)},
        "true_distractors": {"records": c["records_true_distractor"], "distractors": c["true_distractors"],
                             "of_distractors": c["distractors"], "mc_records": c["mc_records"],
                             "rate": round(c["records_true_distractor"] / max(c["mc_records"], 1), 4)},
        "implausible_pairs": None if prior is None else {
            "pairs": judged, "implausible": sum(implausible.values()),
            "rate": round(sum(implausible.values()) / judged, 4) if judged else 0.0,
            "by_source": {s: {"pairs": pairs_seen[s], "implausible": implausible[s]} for s in sorted(pairs_seen)},
            "unjudged": c["pairs_unjudged"]},
        "reused_event": {"records": c["records_reusing_event"], "rate": round(c["records_reusing_event"] / checked, 4)},
        "under_margin": {"records": c["records_under_margin"], "rate": round(c["records_under_margin"] / checked, 4),
                         "by_kind": dict(sorted(margin_kinds.items()))},
        "text": {"records": c["text_problems"], "slash_label_records": c["slash_labels"],
                 "by_pattern": dict(sorted(text_found.items()))},
        "answer_concentration": {"skeletons_with_5_plus": len(conc),
                                 "weighted_top_answer_share": round(weighted, 4) if weighted is not None else None,
                                 "worst": conc[:10],
                                 "answer_position": {str(k): v for k, v in sorted(pos.items())}},
        "blind_baseline": blind_baseline(records, folds=folds, seed=seed),
        "diversity": ours,
        "reference": reference_diversity(reference) if reference is not None else None,
        "examples": {k: v for k, v in sorted(ex.items())},
    }
    return report


def write_audit(report: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write ``audit.json`` (and ``audit.md``) into ``out_dir``; returns the JSON path."""
    from stepkit.io import atomic_write_json, atomic_write_text

    out = Path(out_dir)
    atomic_write_json(out / "audit.json", report)
    atomic_write_text(out / "audit.md", render_audit_markdown(report))
    return out / "audit.json"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(check, value, note) rows of the defect table."""
    r = report
    ip = r["implausible_pairs"]
    rows = [
        ("records checked", f"{r['checked']} / {r['records']}", f"{r['no_graph']} without a graph, {r['mismatches']} programs not giving the answer"),
        ("no-op steps", f"{r['noop']['steps']} in {r['noop']['records']} records", _pct(r["noop"]["rate"]) + " of records"),
        ("references missing from the question", f"{r['missing_references']['references']} in {r['missing_references']['records']} records",
         _pct(r["missing_references"]["rate"]) + " of records"),
        ("distractors true in the graph", f"{r['true_distractors']['distractors']} of {r['true_distractors']['of_distractors']}",
         f"{r['true_distractors']['records']} of {r['true_distractors']['mc_records']} MC records"),
        ("implausible pairs", "unavailable" if ip is None else f"{ip['implausible']} of {ip['pairs']}",
         "" if ip is None else _pct(ip["rate"]) + f" ({ip['unjudged']} unjudged)"),
        ("references reusing the asked event", f"{r['reused_event']['records']} records", ""),
        (f"orders decided by < {r['margin_s']} s", f"{r['under_margin']['records']} records",
         ", ".join(f"{k} {v}" for k, v in r["under_margin"]["by_kind"].items())),
        ("slash labels", f"{r['text']['slash_label_records']} records", ""),
        ("label / grammar problems", f"{r['text']['records']} records",
         ", ".join(f"{k} {v}" for k, v in r["text"]["by_pattern"].items())),
        ("answer concentration", _pct(r["answer_concentration"]["weighted_top_answer_share"]),
         f"top-answer share per skeleton ({r['answer_concentration']['skeletons_with_5_plus']} skeletons with 5+ records)"),
    ]
    return rows


def render_audit_markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables: defects, blind baseline, diversity vs the reference."""
    lines = [f"### Q/R/A audit — {report['qa']}", "", "| check | found | note |", "|---|---:|---|"]
    for a, b, note in summary_rows(report):
        lines.append(f"| {a} | {b} | {note} |")
    bb = report["blind_baseline"]
    lines += ["", "Blind baseline (text only, held-out videos):", "", "| type | n | blind accuracy | chance | above chance |",
              "|---|---:|---:|---:|---:|"]
    for t, d in bb.get("by_type", {}).items():
        lines.append(f"| {t} | {d['n']} | {_pct(d['accuracy'])} | {_pct(d['chance'])} | {100 * d['above_chance']:+.1f} |")
    lines += ["", "| diversity | this set | reference |", "|---|---:|---:|"]
    ref = report.get("reference") or {}
    for key, label in (("questions", "questions"), ("distinct_question_ratio", "distinct question ratio"),
                       ("skeletons", "skeletons"), ("skeleton_ratio", "skeletons per question"),
                       ("anchor_share", "before/after/while anchor share"),
                       ("anchor_share_multi_step", "anchor share, multi-step"), ("templates", "templates"),
                       ("mean_question_words", "words per question")):
        lines.append(f"| {label} | {_fmtv(report['diversity'].get(key))} | {_fmtv(ref.get(key))} |")
    ppt, rppt = report["diversity"].get("phrasings_per_template", {}), ref.get("phrasings_per_template", {})
    lines.append(f"| phrasings per template (min / median) | {ppt.get('min', '–')} / {ppt.get('median', '–')} "
                 f"| {rppt.get('min', '–')} / {rppt.get('median', '–')} |")
    return "\n".join(lines) + "\n"


def _fmtv(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def failed_checks(report: dict[str, Any], max_implausible: float = 0.02, blind_points: float = 0.05) -> list[str]:
    """The quality bars (issue 12's done-when) a report misses."""
    out = []
    if report["no_graph"]:
        out.append(f"{report['no_graph']} records have no graph in the graphs folder")
    if report["mismatches"]:
        out.append(f"{report['mismatches']} programs do not give their answer")
    if report["noop"]["steps"]:
        out.append(f"{report['noop']['steps']} no-op steps")
    if report["missing_references"]["references"]:
        out.append(f"{report['missing_references']['references']} references missing from questions")
    if report["true_distractors"]["distractors"]:
        out.append(f"{report['true_distractors']['distractors']} distractors true in the graph")
    if report["under_margin"]["records"]:
        out.append(f"{report['under_margin']['records']} records with orders under the margin")
    if report["text"]["slash_label_records"]:
        out.append(f"{report['text']['slash_label_records']} records with slash labels")
    ip = report["implausible_pairs"]
    if ip is not None and ip["rate"] > max_implausible:
        out.append(f"implausible pairs {_pct(ip['rate'])} > {_pct(max_implausible)}")
    for t, d in report["blind_baseline"].get("by_type", {}).items():
        if d["above_chance"] > blind_points:
            out.append(f"blind baseline {t}: {_pct(d['accuracy'])} vs chance {_pct(d['chance'])}")
    return out
