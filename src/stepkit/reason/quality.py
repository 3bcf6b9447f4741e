"""Checks that make a question honest, run on every candidate before it becomes a record (and
usable on any record with its graph):

- :func:`noop_steps`: each reasoning step must change what the program resolves to. A step is
  *ablated* (a filter passes its input through, a reference becomes a plain mention of its
  referent's label, a window becomes the whole video, first / last / nth becomes "the only one")
  and the program re-run: the step is a no-op when the program still runs and gives the same
  answer from the same final inputs.
- :func:`margin_problems`: every order the program decides (first / last / nth, earlier / later,
  longer, a before / after / while window) must be decided by at least ``margin`` seconds, and
  no window may be degenerate.
- :func:`missing_references`: every label, verb, predicate, value, window and ordinal the program
  uses must be said in the question.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

from stepkit.reason.lexicon import clean, lexicon, noun_info, ordinal, plural, verb_forms
from stepkit.reason.ops import _FNS, _MEMO_OPS, _STEP, ExecError, GraphContext, Window, _memo_key, answer_text, op_unique

DEFAULT_MARGIN = 1.0
_PASS_THROUGH = frozenset({"filter_events", "filter_attr", "except", "intersect"})
_SELECT = frozenset({"first", "last", "nth", "longest"})


def _consumers(program: Sequence[dict[str, Any]]) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in program]
    for i, n in enumerate(program):
        for j in n["in"]:
            out[j].append(i)
    return out


def _rerun(program, ctx: GraphContext, values: list, start: int, override: dict[int, Any],
           memo: dict | None = None) -> list | None:
    """The values of ``program`` re-executed from node ``start`` with ``override`` nodes replaced
    (nodes before ``start`` keep ``values``), or None where it fails. The common failure, a
    ``unique`` over a set of other than one item, is found without raising (ablation meets it for
    most steps).
    ``memo``: results of the scanning operators by inputs and args (see :class:`Builder`), for
    well-formed programs (the generator's)."""
    vals = list(values[:start])
    for i in range(start, len(program)):
        if i in override:
            vals.append(override[i])
            continue
        n = program[i]
        op = n["op"]
        ins = [vals[j] for j in n["in"]]
        if op == "unique" and type(ins[0]) is tuple and len(ins[0]) != 1:
            return None
        try:
            if memo is not None and ins and op in _MEMO_OPS:
                key = _memo_key(op, ins, n["args"])
                got = memo.get(key)
                if got is None:
                    got = memo[key] = _FNS[op](ctx, ins, n["args"])
                v = got[0]
            else:
                v, _ = _FNS[op](ctx, ins, n["args"])
        except ExecError:
            return None
        vals.append(v)
    return vals


def run_all(program: Sequence[dict[str, Any]], ctx: GraphContext) -> list:
    """Every node's value (raises :class:`ExecError`)."""
    vals: list = []
    for n in program:
        vals.append(_FNS[n["op"]](ctx, [vals[j] for j in n["in"]], n["args"])[0])
    return vals


_AGGREGATE = frozenset({"exists", "count", "compare_count"})


def _outcome(program, vals: list, ctx: GraphContext | None = None) -> tuple:
    """What ablation compares: the answer, and for an aggregate (exists / count) the set it reads
    (a yes or a count can come out the same from other evidence)."""
    last = program[-1]
    v = vals[-1]
    if last["op"] in _AGGREGATE:
        return (v,) + tuple(vals[j] for j in last["in"] if not isinstance(vals[j], Window))
    if ctx is not None and isinstance(v, str) and (v in ctx.events or v in ctx.objects):
        return (answer_text(v, ctx),)
    return (v,)


def _ablated_value(i: int, program, ctx: GraphContext, values: list, consumers: list[list[int]] | None) -> Any:
    """The value node ``i`` has without its step, or ``KeyError`` when the step defines the question."""
    n = program[i]
    op = n["op"]
    ins = [values[j] for j in n["in"]]
    if op in _PASS_THROUGH:
        return ins[0]
    if op == "hop":
        out = values[i]
        if consumers is not None and consumers[i] and all(program[c]["op"] == "unique" for c in consumers[i]) and len(out) == 1:
            last = len(program) - 1
            if program[last]["op"] == "query" and any(program[last]["in"] == [c] for c in consumers[i]):
                raise KeyError(op)  # the hop the question asks about: its referent is the answer
            return ctx.objects_with(ctx.objects[out[0]].label)  # the plain mention of the referent
        return ins[0]
    if op == "localize":
        return Window(0.0, ctx.duration, "all", None)
    if op in _SELECT:
        if type(ins[0]) is tuple and len(ins[0]) != 1:
            return _CHOSE
        return op_unique(ctx, [ins[0]], {})[0]
    raise KeyError(op)


# What a first / last / nth / longest over several events ablates to: "the only one" fails, so
# the selection had a choice to make (returned, not raised: most selections have one).
_CHOSE = object()


def noop_steps(program: Sequence[dict[str, Any]], ctx: GraphContext, values: list | None = None,
               memo: dict | None = None) -> list[int]:
    """Indices of step nodes whose ablation leaves the program's answer (and final inputs) unchanged.
    ``memo``: see :func:`_rerun`."""
    if values is None:
        values = run_all(program, ctx)
    # (only a hop's ablation reads who consumes a node)
    consumers = _consumers(program) if any(n["op"] == "hop" for n in program) else None
    want = _outcome(program, values, ctx)
    out = []
    for i, n in enumerate(program):
        if not _STEP[n["op"]] or i == len(program) - 1:
            continue
        try:
            v = _ablated_value(i, program, ctx, values, consumers)
        except KeyError:
            continue
        except ExecError:
            continue  # "the only one" fails: the selection had a choice to make
        if v is _CHOSE:
            continue
        vals = _rerun(program, ctx, values, i, {i: v}, memo)
        if vals is None:
            continue
        if _outcome(program, vals, ctx) == want:
            out.append(i)
    return out


# ----------------------------------------------------------------------------------------------
# Time margins


# The operators that decide an order or make a window (the only ones margins concern).
_TIMED = frozenset({"first", "last", "nth", "longest", "choose", "compare_time", "localize"})


def _t0(ctx, i):
    return ctx.events[i].t0


def margin_problems(program: Sequence[dict[str, Any]], ctx: GraphContext, margin: float = DEFAULT_MARGIN,
                    values: list | None = None) -> list[str]:
    """Reasons (``order-margin``, ``window-margin``, ``degenerate-window``) this program's time
    decisions are shaky, empty when every one is decided by at least ``margin`` seconds."""
    if values is None:
        values = run_all(program, ctx)
    if margin <= 0:
        return []
    probs: list[str] = []
    ev = ctx.events
    for i, n in enumerate(program):
        op = n["op"]
        if op not in _TIMED:
            continue
        ins = [values[j] for j in n["in"]]
        if op in ("first", "last", "nth"):
            chosen = values[i]
            others = [e for e in ins[0] if e != chosen and e in ev]
            if others and min(abs(ev[e].t0 - ev[chosen].t0) for e in others) < margin:
                probs.append("order-margin")
        elif op == "longest":
            durs = sorted((ev[e].t1 - ev[e].t0) for e in ins[0])
            if len(durs) > 1 and durs[-1] - durs[-2] < margin:
                probs.append("order-margin")
        elif op in ("choose", "compare_time"):
            a, b = ev[ins[0]], ev[ins[1]]
            gap = abs(a.t0 - b.t0)
            if n["args"].get("by", "earlier") in ("longer", "shorter"):
                # a viewer compares durations best between events that do not start together
                gap = min(gap, abs((a.t1 - a.t0) - (b.t1 - b.t0)))
            if gap < margin:
                probs.append("order-margin")
        elif op == "localize":
            w: Window = values[i]
            if w.t1 - w.t0 < margin:
                probs.append("degenerate-window")
                continue
            want = _outcome(program, values)
            # before / after: an action that overlaps the anchor by less than the margin could pass
            # for one before / after it; one that starts after the anchor ended is after it however
            # short the gap (the order among the candidates is checked by first / last / nth)
            if w.mode == "before":
                shifted = [w._replace(t1=w.t1 + margin)]
            elif w.mode == "after":
                shifted = [w._replace(t0=w.t0 - margin)]
            else:
                # "while" needs the spans to overlap: an event that only touches the window is shaky
                touching = False
                for c in range(i + 1, len(program)):
                    if i in program[c]["in"] and isinstance(values[c], tuple):
                        for e in values[c]:
                            ev_e = ev.get(e)
                            if ev_e is not None and min(ev_e.t1, w.t1) - max(ev_e.t0, w.t0) <= 0:
                                touching = True
                if touching:
                    probs.append("window-margin")
                    continue
                m = min(margin, (w.t1 - w.t0) / 4)
                shifted = [w._replace(t0=w.t0 - margin, t1=w.t1 + margin), w._replace(t0=w.t0 + m, t1=w.t1 - m)]
            for s in shifted:
                vals = _rerun(program, ctx, values, i, {i: s})
                got = None if vals is None else _outcome(program, vals)
                if got != want:
                    probs.append("window-margin")
                    break
    return probs


# ----------------------------------------------------------------------------------------------
# References said in the question

_WORDS = re.compile(r"[a-z0-9]+")
_WINDOW_WORDS = {"before": ("before", "until", "prior to"), "after": ("after", "once", "following", "since"),
                 "while": ("while", "during", "meanwhile", "as")}
_FIRST = ("first", "earliest", "right after", "next", "soonest", "immediately after", "just after")
_LAST = ("last", "latest", "right before", "just before", "final", "immediately before", "most recently")
_ATTR_WORDS = {"color": ("color", "colour", "shirt", "coloured", "colored"), "size": ("size", "big", "small", "large"),
               "material": ("material", "made of"), "state": ("state", "open", "closed")}


def _has(q: str, words) -> bool:
    """Whether any of ``words`` (single words or phrases) occurs in ``q`` (" "-joined lower-case words, padded)."""
    return any(w and f" {w} " in q for w in words)


def _has_padded(q: str, padded: tuple[str, ...]) -> bool:
    """:func:`_has` for words already padded with a space on each side (see :func:`_padded`)."""
    for w in padded:
        if w in q:
            return True
    return False


def _padded(words) -> tuple[str, ...]:
    """Non-empty ``words`` as " word " (what :func:`_has` looks for), sorted for a stable order."""
    return tuple(f" {w} " for w in sorted(words) if w)


@lru_cache(maxsize=4096)
def _verb_words(label: str) -> tuple[str, ...]:
    """The forms of a verb the question may say, padded (:func:`_padded`)."""
    lab = clean(label).lower()
    return _padded(set(verb_forms(lab)) | {lab, lab.split(" ")[0]})


@lru_cache(maxsize=4096)
def _noun_words(label: str) -> tuple[str, ...]:
    """The words a question may name an object of ``label`` by, padded (:func:`_padded`)."""
    info = noun_info(label)
    out = {info.noun, plural(label), clean(label).lower()}
    if info.noun in set(lexicon()["person_labels"]):
        out |= {"someone", "anyone", "who", "person", "people", "no one"}
    return _padded(out)


_FIRST_PADDED, _LAST_PADDED = _padded(_FIRST), _padded(_LAST)
_WINDOW_PADDED = {mode: _padded(words) for mode, words in _WINDOW_WORDS.items()}
_COUNT_PADDED = _padded(("how many", "how often", "number of"))


def missing_references(program: Sequence[dict[str, Any]], question: str) -> list[str]:
    """What the program uses that the question never says (labels, verbs, values, windows, ordinals)."""
    q = " " + " ".join(_WORDS.findall(question.lower())) + " "
    miss: list[str] = []
    for n in program:
        op, a = n["op"], n["args"]
        if op == "objects" and a.get("label") is not None:
            if not _has_padded(q, _noun_words(a["label"])):
                miss.append(f"object {a['label']}")
        elif op in ("hop", "filter_events") and a.get("label") is not None:
            if not _has_padded(q, _verb_words(a["label"])):
                miss.append(f"{op} {a['label']}")
        elif op == "filter_attr":
            if not _has(q, {clean(str(a["value"])).lower()}):
                miss.append(f"value {a['value']}")
        elif op == "query_attr":
            name = clean(a["name"]).lower()
            if not _has(q, set(_ATTR_WORDS.get(name, ())) | {name}):
                miss.append(f"attribute {a['name']}")
        elif op == "localize":
            padded = _WINDOW_PADDED.get(a["mode"])
            if not (_has_padded(q, padded) if padded is not None else _has(q, (a["mode"],))):
                miss.append(f"window {a['mode']}")
        elif op == "nth":
            k = int(a["k"])
            if not _has(q, {ordinal(k)} | (set(_FIRST) if k == 1 else set())):
                miss.append(f"ordinal {k}")
        elif op == "first" and not _has_padded(q, _FIRST_PADDED):
            miss.append("first")
        elif op == "last" and not _has_padded(q, _LAST_PADDED):
            miss.append("last")
        elif op == "count" and not _has_padded(q, _COUNT_PADDED):
            miss.append("count")
        elif op == "choose" and not _has(q, ("or",)):
            miss.append("choice")
    return miss
