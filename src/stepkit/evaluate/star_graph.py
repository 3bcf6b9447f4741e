"""The STAR graph check: answer STAR's questions by running their template programs on scene graphs.

For every question of a STAR file (SeViLA-style ``val.json``: ``video``, ``qid``, ``question``,
``a0``..``a3``, ``answer``, ``start``, ``end``) the template is parsed into a stepkit program
(:mod:`stepkit.evaluate.star_templates`), executed on the video's graph (``GRAPHS/<video>.json``,
e.g. imported from Charades with ``stepkit import charades``) and the option the graph supports is
picked. Questions the graph cannot answer are *uncovered*, with a counted reason; accuracy is over
covered questions.

``window="clip"``: the question's ``[start, end]`` is the situation, STAR's own semantics. Questions
about what happened (Interaction, Sequence, Prediction) run on the graph cropped to the clip
(events lying in it, ``tolerance`` seconds of slack); Feasibility questions ask what the person can
do *after* the situation, so the clip becomes one ``situation`` event programs localise after.
``window="none"``: the whole timeline, clip times ignored.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from stepkit.errors import DataError, StepkitError
from stepkit.evaluate.star_templates import (
    SITUATION_VERB,
    Condition,
    ParsedQuestion,
    TemplateError,
    answer_program,
    candidate_plans,
    option_fits,
    option_program,
    parse_option,
    parse_question,
    split_qid,
    template_steps,
)
from stepkit.graph.types import STSG, Action
from stepkit.io import atomic_write_json, atomic_write_jsonl, atomic_write_text

WINDOWS = ("clip", "none")
TYPES = ("Interaction", "Sequence", "Prediction", "Feasibility")
DEFAULT_TOLERANCE = 0.5


def load_star_questions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Questions of a SeViLA-style STAR JSON file (a list of records), checked for the fields used."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such STAR question file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read STAR JSON: {exc}") from None
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a JSON list of STAR questions")
    out = []
    for i, q in enumerate(doc):
        if not isinstance(q, dict):
            raise DataError(f"{path}[{i}]: expected an object")
        q = normalise_star_record(q)
        missing = [k for k in ("video", "qid", "question") if k not in q]
        if missing:
            raise DataError(f"{path}[{i}]: missing field(s) {', '.join(missing)}")
        out.append(q)
    return out


def normalise_star_record(q: dict[str, Any]) -> dict[str, Any]:
    """An official STAR record (``question_id``, ``video_id``, ``choices``, answer text) in the
    SeViLA form this check reads (``qid``, ``video``, ``a0``.., answer index); others pass unchanged."""
    if "qid" in q or "question_id" not in q:
        return q
    out = {"qid": q["question_id"], "video": q.get("video_id"), "question": q.get("question"),
           "start": q.get("start"), "end": q.get("end")}
    choices = sorted(q.get("choices") or [], key=lambda c: c.get("choice_id", 0))
    for i, ch in enumerate(choices):
        out[f"a{i}"] = ch.get("choice")
    out["num_option"] = len(choices)
    texts = [ch.get("choice") for ch in choices]
    out["answer"] = texts.index(q["answer"]) if q.get("answer") in texts else q.get("answer")
    return out


def question_options(q: dict[str, Any]) -> list[str]:
    """The option texts ``a0``, ``a1``, … of a question (``num_option`` of them when given)."""
    n = int(q.get("num_option") or sum(1 for k in q if k[:1] == "a" and k[1:].isdigit()))
    return [str(q[f"a{i}"]) for i in range(n) if f"a{i}" in q]


# ----------------------------------------------------------------------------------------------
# Graph views


def crop(graph: STSG, t0: float, t1: float, tolerance: float, *, overlap: bool = False,
         keep: Sequence[Condition] = ()) -> STSG:
    """The graph as seen in the clip ``[t0, t1]``.

    Actions must lie within the clip (``tolerance`` seconds of slack), or with ``overlap`` merely
    overlap it (a clip that ends as the answer starts: Prediction). Relations are states and need
    only overlap the clip, as do actions a question names as its condition (``keep``): "after they
    held the box" holds in the clip if the holding overlaps it.
    """
    labels = {o.id: o.label for o in graph.objects}
    named = {(c.label, c.object) for c in keep if c.kind == "action"}
    lo, hi = t0 - tolerance, t1 + tolerance
    if overlap:
        acts = [a for a in graph.actions if a.t0 < t1 and a.t1 > t0]
    else:
        acts = [a for a in graph.actions if (a.t0 >= lo and a.t1 <= hi)
                or ((a.verb, labels.get(a.object or "")) in named and a.t0 < t1 and a.t1 > t0)]
    return replace(graph, actions=acts, relations=[r for r in graph.relations if r.t0 <= t1 and r.t1 >= t0])


def star_view(graph: STSG) -> STSG:
    """The graph with STAR's object labels: natural nouns and their synonyms (``cup``, ``glass``,
    ``cabinet``) mapped back to STAR's classes (``cup/glass/bottle``, ``closet/cabinet``), since
    importers name nodes with one natural noun while STAR's questions use the slash class."""
    from stepkit.sources.vocab import with_star_labels

    return with_star_labels(graph)


def with_situation(graph: STSG, t0: float, t1: float) -> STSG:
    """The graph plus one ``situation`` event spanning the clip (agent: the first person node)."""
    agent = next((o.id for o in graph.objects if o.label == "person"), graph.objects[0].id if graph.objects else None)
    if agent is None:
        raise DataError(f"graph {graph.video_id} has no objects to anchor the situation to")
    sit = Action("star_situation", agent, SITUATION_VERB, max(0.0, t0), min(float(graph.duration), t1))
    return replace(graph, actions=list(graph.actions) + [sit])


# ----------------------------------------------------------------------------------------------
# One question


def answer_question(q: dict[str, Any], graph: STSG | None, window: str = "clip",
                    tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Run one question's program on a graph; the result says the pick, or why there is none."""
    from stepkit.reason.ops import ExecError, GraphContext

    qid = str(q.get("qid", ""))
    res: dict[str, Any] = {"qid": qid, "video": q.get("video"), "question": q.get("question"), "answer": q.get("answer"),
                           "pred": None, "covered": False, "correct": False, "reason": None}
    try:
        qtype, template = split_qid(qid)
    except TemplateError as exc:
        res.update(type="?", template="?", reason="unknown template")
        res["detail"] = str(exc)
        return res
    res.update(type=qtype, template=template)
    if graph is None:
        res["reason"] = "no graph for video"
        return res
    graph = star_view(graph)
    try:
        pq = parse_question(str(q["question"]), qid)
        opts = [parse_option(o) for o in question_options(q)]
    except (TemplateError, StepkitError) as exc:
        res["reason"] = "question does not parse"
        res["detail"] = str(exc)
        return res
    if not all(option_fits(pq, o) for o in opts):
        res["reason"] = "option shape does not fit template"
        return res
    ctx_cache: dict[str, Any] = {}

    def context(kind: str) -> Any:
        if kind not in ctx_cache:
            view = graph
            if window == "clip":
                start = float(q.get("start") or 0.0)
                end = float(q["end"]) if q.get("end") is not None else float(graph.duration)
                if kind == "situation":
                    view = with_situation(graph, start, end)
                else:
                    view = crop(graph, start, end, tolerance, overlap=(kind == "overlap"), keep=pq.conditions)
            ctx_cache[kind] = GraphContext(view)
        return ctx_cache[kind]

    plans = candidate_plans(pq, window)
    res["program"] = answer_program(pq, "clip")
    pick, why, support = None, "", []
    for kind, base, rank in plans:
        ctx = context(kind)
        pick, why, support, detail = _run_plan(base, rank, opts, pq, ctx)
        if detail:
            res["detail"] = detail
        if pick is None and why.endswith("occurs more than once") and pq.temporal in ("after", "before", "next_after"):
            pick, why, support, detail = _every_occurrence(base, rank, opts, pq, ctx, why)
            if detail:
                res["detail"] = detail
        if pick is not None or why in ("several options supported", "several options tie"):
            break
    res["support"] = [len(s) for s in support]
    if pick is None:
        res["reason"] = why
        return res
    res.update(pred=pick, covered=True, correct=(pick == q.get("answer")))
    return res


def _anchor_node(base: list[dict[str, Any]]) -> int | None:
    """Index of the node picking the condition's event (the input of the first ``localize``)."""
    return next((n["in"][0] for n in base if n["op"] == "localize"), None)


def _run_plan(base: list[dict[str, Any]], rank: str, opts: list[Any], pq: ParsedQuestion, ctx: Any
              ) -> tuple[int | None, str, list[list[float]], str]:
    """Run one plan: (pick or None, why not, start times supporting each option, error detail)."""
    from stepkit.reason.ops import Builder, ExecError, check_program

    b = Builder(ctx)
    try:
        for node in check_program(base):
            b.add(node["op"], node.get("in", []), **node.get("args", {}))
    except ExecError as exc:
        return None, _exec_reason(exc, pq), [], str(exc)
    anchor = None
    at = _anchor_node(base)
    if at is not None and pq.temporal in ("after", "before"):
        anchor = ctx.events[b.values[at]]
    try:
        support = []
        for opt in opts:
            evs = [ctx.events[e] for e in run_program(option_program(base, opt), ctx)]
            # STAR orders events by their starts: "after X" is what starts after X starts.
            if anchor is not None:
                evs = [e for e in evs if (e.t0 > anchor.t0 if pq.temporal == "after" else e.t0 < anchor.t0)]
            support.append(sorted(e.t0 for e in evs))
    except ExecError as exc:
        return None, f"option program failed ({exc.reason})", [], str(exc)
    pick, why = _select(support, rank)
    return pick, why, support, ""


def _every_occurrence(base: list[dict[str, Any]], rank: str, opts: list[Any], pq: ParsedQuestion, ctx: Any,
                      why: str) -> tuple[int | None, str, list[list[float]], str]:
    """A condition that happens more than once: answer only when every occurrence gives one answer."""
    from stepkit.reason.ops import Builder, check_program

    at = _anchor_node(base)
    if at is None or base[at]["op"] != "unique":
        return None, why, [], ""
    b = Builder(ctx)
    for node in check_program(base[:at]):
        b.add(node["op"], node.get("in", []), **node.get("args", {}))
    n = len(b.values[base[at]["in"][0]])
    picks, support = set(), []
    for k in range(1, n + 1):
        nodes = [dict(nd) for nd in base]
        nodes[at] = {"op": "nth", "in": list(base[at]["in"]), "args": {"k": k}}
        pick, _, sup, _ = _run_plan(nodes, rank, opts, pq, ctx)
        if pick is None:
            return None, why, [], f"occurrence {k} of {n} supports no single option"
        picks.add(pick)
        support = sup
    if len(picks) != 1:
        return None, why, [], f"the {n} occurrences support different options"
    return picks.pop(), "", support, ""


def run_program(nodes: list[dict[str, Any]], ctx: Any) -> Any:
    """Execute a linear program on a :class:`~stepkit.reason.ops.GraphContext`; the last node's value.

    Unlike ``reason.ops.execute`` the result may be a set (the candidate events options are matched
    against), so it is returned as is rather than rendered as an answer string.
    """
    from stepkit.reason.ops import Builder, check_program

    b = Builder(ctx)
    for node in check_program(nodes):
        b.add(node["op"], node.get("in", []), **node.get("args", {}))
    return b.values[-1]


def _exec_reason(exc: Any, pq: ParsedQuestion) -> str:
    cond = pq.conditions[0].kind if pq.conditions else "event"
    if exc.reason == "empty":
        return f"condition {cond} not in graph"
    if exc.reason == "ambiguous":
        return f"condition {cond} occurs more than once"
    return f"program failed ({exc.reason})"


def _select(support: list[list[float]], rank: str) -> tuple[int | None, str]:
    """The option the graph supports: exactly one with support, or the earliest / latest one."""
    have = [i for i, s in enumerate(support) if s]
    if not have:
        return None, "no option supported by the graph"
    if len(have) == 1:
        return have[0], ""
    if rank == "exists":
        return None, "several options supported"
    key = {i: (support[i][0] if rank == "earliest" else -support[i][-1]) for i in have}
    best = min(key.values())
    winners = [i for i in have if key[i] == best]
    if len(winners) > 1:
        return None, "several options tie"
    return winners[0], ""


# ----------------------------------------------------------------------------------------------
# The whole check


def _graph_index(graphs_dir: Path) -> dict[str, Path]:
    if not graphs_dir.is_dir():
        raise DataError(f"{graphs_dir}: no such graphs folder")
    return {p.stem: p for p in graphs_dir.glob("*.json") if p.name != "summary.json"}


def _acc(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    cov = [r for r in rows if r["covered"]]
    right = sum(1 for r in cov if r["correct"])
    with_graph = sum(1 for r in rows if r["reason"] != "no graph for video")
    return {"questions": n, "covered": len(cov), "correct": right, "with_graph": with_graph,
            "coverage": round(len(cov) / n, 4) if n else None,
            "accuracy": round(right / len(cov), 4) if cov else None,
            # right over every question whose video has a graph (uncovered ones count as wrong)
            "accuracy_with_graph": round(right / with_graph, 4) if with_graph else None}


def run_star_graph_check(questions_path: str | os.PathLike, graphs_dir: str | os.PathLike, window: str = "clip",
                         out_dir: str | os.PathLike | None = None, *, tolerance: float = DEFAULT_TOLERANCE
                         ) -> dict[str, Any]:
    """Answer every STAR question from its video's graph; returns (and with ``out_dir`` writes) the report.

    The report holds accuracy on covered questions and coverage overall, per type and per template,
    and the counted reasons questions were not covered. ``out_dir`` receives ``star_graph.json``,
    ``star_graph.md`` and ``star_graph_questions.jsonl`` (one line per question).
    """
    from stepkit.graph.serialize import load_graph

    if window not in WINDOWS:
        raise DataError(f"window {window!r}: choose one of {', '.join(WINDOWS)}")
    started = time.perf_counter()
    questions = load_star_questions(questions_path)
    index = _graph_index(Path(graphs_dir))
    graphs: dict[str, STSG | None] = {}
    rows = []
    for q in questions:
        vid = str(q["video"])
        if vid not in graphs:
            graphs[vid] = load_graph(index[vid]) if vid in index else None
        rows.append(answer_question(q, graphs[vid], window, tolerance))
    by_type: dict[str, list] = defaultdict(list)
    by_template: dict[str, list] = defaultdict(list)
    for r in rows:
        by_type[r["type"]].append(r)
        by_template[r["template"]].append(r)
    steps = template_steps()
    report = {
        "questions": str(questions_path),
        "graphs": str(graphs_dir),
        "window": window,
        "tolerance": tolerance,
        "overall": _acc(rows),
        "by_type": {t: _acc(by_type[t]) for t in sorted(by_type, key=lambda t: (t not in TYPES, TYPES.index(t) if t in TYPES else 0, t))},
        "by_template": {t: {**_acc(by_template[t]), "steps": steps.get(t)} for t in sorted(by_template)},
        "uncovered_reasons": dict(Counter(r["reason"] for r in rows if not r["covered"]).most_common()),
        "videos": {"asked": len(graphs), "with_graph": sum(1 for g in graphs.values() if g is not None)},
        "seconds": round(time.perf_counter() - started, 3),
    }
    if out_dir is not None:
        out = Path(out_dir)
        atomic_write_json(out / "star_graph.json", report)
        atomic_write_text(out / "star_graph.md", render_star_graph_markdown(report))
        atomic_write_jsonl(out / "star_graph_questions.jsonl", rows)
    return report


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def render_star_graph_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: overall, per type, per template (with steps), uncovered reasons."""
    o = report["overall"]
    lines = [f"### STAR graph check — window `{report['window']}`", "",
             f"{o['questions']} questions; {o['covered']} covered (coverage {_fmt(o['coverage'])}); "
             f"accuracy on covered {_fmt(o['accuracy'])} ({o['correct']}/{o['covered']}); "
             f"right on {_fmt(o.get('accuracy_with_graph'))} of the {o.get('with_graph')} questions whose video "
             "has a graph (uncovered count as wrong).", "",
             "| type | questions | with graph | covered | coverage | accuracy | right of with graph |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for t, a in report["by_type"].items():
        lines.append(f"| {t} | {a['questions']} | {a.get('with_graph', '–')} | {a['covered']} | {_fmt(a['coverage'])} "
                     f"| {_fmt(a['accuracy'])} | {_fmt(a.get('accuracy_with_graph'))} |")
    lines += ["", "| template | steps | questions | covered | coverage | accuracy |", "|---|---:|---:|---:|---:|---:|"]
    for t, a in report["by_template"].items():
        steps = "–" if a.get("steps") is None else str(a["steps"])
        lines.append(f"| {t} | {steps} | {a['questions']} | {a['covered']} | {_fmt(a['coverage'])} | {_fmt(a['accuracy'])} |")
    lines += ["", "| why not covered | questions |", "|---|---:|"]
    for why, n in report["uncovered_reasons"].items():
        lines.append(f"| {why} | {n} |")
    return "\n".join(lines) + "\n"
