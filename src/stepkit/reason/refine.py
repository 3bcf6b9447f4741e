"""Optional LLM rewording of a record's question and rationale (the paper's refinement step).

The model sees the question and the rationale statements and returns reworded ones as JSON. The
rewording is kept only if it changes nothing that matters: the same number of statements, the
answer unchanged (stated in the last statement and absent from an open question), and every
grounded entity still mentioned where it was.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from stepkit.data.record import QRARecord, RationaleStep
from stepkit.graph.types import STSG, Action
from stepkit.reason.lexicon import clean
from stepkit.reason.ops import GraphContext

PROMPT = (
    "Reword the question and each numbered statement below so they read naturally. Keep every object, "
    "person, action and time, keep the meaning and the answer, and keep one statement per line.\n"
    "Reply with JSON only: {{\"question\": \"...\", \"rationale\": [\"...\", ...]}}\n\n"
    "Question: {question}\n{statements}\nAnswer: {answer}"
)


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "


def entity_terms(ctx: GraphContext, gid: str) -> list[str]:
    """Words that must still appear when graph id ``gid`` is mentioned: its label, or its verb's head
    word / predicate for an event."""
    if gid in ctx.objects:
        return [clean(ctx.objects[gid].label).split("/")[0]]
    e = ctx.events.get(gid)
    if e is None:
        return []
    if isinstance(e, Action):
        return [clean(ctx.objects[e.agent].label).split("/")[0]]
    return [clean(ctx.objects[e.subject].label).split("/")[0], clean(ctx.objects[e.object].label).split("/")[0]]


def _mentions(text: str, term: str) -> bool:
    t = _words(term).strip()
    if not t:
        return True
    w = _words(text)
    return f" {t} " in w or f" {t}s " in w or f" {t}es " in w


def parse_reply(text: str) -> dict[str, Any] | None:
    """The JSON object in a model reply, or None."""
    m = re.search(r"\{.*\}", text, re.S)
    if not m:
        return None
    try:
        d = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("question"), str) or not isinstance(d.get("rationale"), list):
        return None
    if not all(isinstance(s, str) for s in d["rationale"]):
        return None
    return d


def accept_rewording(record: QRARecord, ctx: GraphContext, question: str, statements: list[str]) -> str | None:
    """Why a rewording must be rejected, or None to keep it."""
    from stepkit.reason.generate import answer_in_question
    from stepkit.reason.sampler import CHOICE_VARIANTS

    if len(statements) != len(record.rationale):
        return f"{len(statements)} statements instead of {len(record.rationale)}"
    if not question.strip() or not all(s.strip() for s in statements):
        return "empty question or statement"
    if not _mentions(statements[-1], record.answer) and record.answer.lower() not in statements[-1].lower():
        return "the answer is no longer stated at the end"
    if record.provenance.get("variant") not in CHOICE_VARIANTS and answer_in_question(question, record.answer):
        return "the answer now appears in the question"
    for old, new in zip(record.rationale, statements):
        for gid in old.grounding:
            for term in entity_terms(ctx, gid):
                if _mentions(old.text, term) and not _mentions(new, term):
                    return f"statement drops {term!r} (grounded on {gid})"
    for term in sorted({clean(o.label) for o in ctx.graph.objects}):
        if _mentions(record.question, term) and not _mentions(question, term):
            return f"question drops {term!r}"
    return None


def refine_record(record: QRARecord, graph: STSG | GraphContext, backend: Any, params: Any = None) -> tuple[QRARecord, str | None]:
    """Ask ``backend`` (a :class:`stepkit.models.base.VideoLLM`) to reword ``record``.

    Returns ``(record, None)`` with the reworded record when every check passes, else the original
    record and the reason the rewording was rejected.
    """
    from stepkit.models.base import Prompt, SamplingParams

    ctx = graph if isinstance(graph, GraphContext) else GraphContext(graph, natural=True)
    statements = "\n".join(f"{i}. {s.text}" for i, s in enumerate(record.rationale, 1))
    prompt = Prompt(text=PROMPT.format(question=record.question, statements=statements, answer=record.answer))
    replies = backend.generate([prompt], params or SamplingParams(max_new_tokens=512))
    text = replies[0][0] if replies and replies[0] else ""
    parsed = parse_reply(text)
    if parsed is None:
        return record, "the reply is not the requested JSON"
    new_q = parsed["question"].strip()
    new_s = [re.sub(r"^\s*\d+\.\s*", "", s).strip() for s in parsed["rationale"]]
    why = accept_rewording(record, ctx, new_q, new_s)
    if why is not None:
        return record, why
    rationale = [RationaleStep(text=t, grounding=list(s.grounding), t0=s.t0, t1=s.t1)
                 for t, s in zip(new_s, record.rationale)]
    prov = dict(record.provenance)
    prov["refined_by"] = getattr(backend, "model_id", "unknown")
    prov["original_question"] = record.question
    return replace(record, question=new_q, rationale=rationale, provenance=prov), None


def refine_records(qa: Any, graphs: Any, backend: Any, out_dir: Any, params: Any = None) -> dict[str, Any]:
    """Reword every record of ``qa`` with ``backend``; write ``out_dir/qa.jsonl`` (reworded where the
    checks pass, the original otherwise) and ``out_dir/refine_summary.json``; returns the summary."""
    from collections import Counter
    from pathlib import Path

    from stepkit.data.record import iter_records
    from stepkit.io import atomic_text_writer, atomic_write_json
    from stepkit.reason.verify import GraphLookup

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lookup = GraphLookup(graphs)
    kept = 0
    rejected: Counter = Counter()
    with atomic_text_writer(out / "qa.jsonl") as fh:
        for rec in iter_records(qa):
            ctx = lookup.get(rec.video_id)
            if ctx is None:
                rejected["no graph"] += 1
                new, why = rec, "no graph"
            else:
                new, why = refine_record(rec, ctx, backend, params)
            if why is None:
                kept += 1
            else:
                rejected[why.split(" (")[0].split(":")[0]] += 1
            fh.write(new.to_json() + "\n")
    summary = {"model": getattr(backend, "model_id", "unknown"), "reworded": kept,
               "kept_original": sum(rejected.values()), "rejected_by_reason": dict(sorted(rejected.items()))}
    atomic_write_json(out / "refine_summary.json", summary)
    return summary
