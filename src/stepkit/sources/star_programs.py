"""STAR's functional programs (``question_program`` / ``choice_program``) → stepkit programs.

A STAR record carries its question as a list of ``{"function", "value_input"}`` steps (``Situations``,
``Actions``, ``Filter_Actions_with_Verb``, ``Unique``, ``Query_Objs`` …) and each choice as a short
program (``Equal``) applied to the question's result. :func:`translate` turns them into one linear
program of :mod:`stepkit.reason.ops`, so that a STAR record can be answered on a graph imported by
:mod:`stepkit.sources.star` with the stepkit executor.
"""

from __future__ import annotations

from typing import Any

from stepkit.errors import DataError
from stepkit.sources.vocab import star_actions

SUPPORTED = ("Situations", "Actions", "Filter_Actions_with_Verb", "Filter_Actions_with_Obj", "Unique", "Query_Objs",
             "Query_Verbs", "Query_Actions", "Query_Earliest_Action", "Query_Latest_Action", "Equal", "Belong_to")


def graph_verbs(star_verb: str) -> list[str]:
    """The graph verbs a bare STAR verb stands for (``put`` → ``put down``; ``sit`` → ``sit at``, ``sit on``)."""
    v = star_verb.strip().lower()
    out = sorted({a.verb for a in star_actions().values() if a.verb == v or a.verb.split(" ")[0] == v})
    return out or [v]


def translate(question_program: list[dict[str, Any]], choice_program: list[dict[str, Any]] | None = None
              ) -> list[dict[str, Any]]:
    """One linear stepkit program: the question's steps, then (optionally) a choice's check.

    Raises :class:`DataError` naming the first STAR function this translation does not support.
    """
    nodes: list[dict[str, Any]] = []

    def add(op: str, ins: list[int], **args: Any) -> int:
        nodes.append({"op": op, "in": ins, "args": args})
        return len(nodes) - 1

    cur: int | None = None
    window: int | None = None
    for i, step in enumerate(list(question_program) + list(choice_program or [])):
        fn = step.get("function")
        vals = list(step.get("value_input") or [])
        if fn == "Situations":
            window = cur = add("video", [])
        elif fn == "Actions":
            cur = add("actions", [window] if window is not None else [])
        elif fn == "Filter_Actions_with_Verb":
            verbs = graph_verbs(str(vals[0]))
            first = add("filter_events", [cur], label=verbs[0], roles=[])
            for v in verbs[1:]:
                first = add("union", [first, add("filter_events", [cur], label=v, roles=[])])
            cur = first
        elif fn == "Filter_Actions_with_Obj":
            cur = add("filter_events", [cur, add("objects", [], label=str(vals[0]))], roles=["object"])
        elif fn == "Unique":
            cur = add("unique", [cur])
        elif fn == "Query_Objs":
            cur = add("query", [cur], field="object")
        elif fn == "Query_Verbs":
            cur = add("query", [cur], field="verb")
        elif fn == "Query_Actions":
            cur = add("query", [cur], field="action")
        elif fn == "Query_Earliest_Action":
            cur = add("first", [cur])
        elif fn == "Query_Latest_Action":
            cur = add("last", [cur])
        elif fn == "Equal":
            cur = add("equal", [cur], value=str(vals[0]))
        elif fn == "Belong_to":
            cur = add("belong_to", [cur, add("objects", [], label=str(vals[0]))])
        else:
            raise DataError(f"STAR program step {i}: function {fn!r} is not supported "
                            f"(supported: {', '.join(SUPPORTED)})")
        if cur is None:
            raise DataError(f"STAR program step {i}: {fn} has no input")
    if not nodes:
        raise DataError("empty STAR program")
    return nodes


def answer_record(record: dict[str, Any], graph: Any) -> dict[str, Any]:
    """Execute a STAR record's question and choice programs on a graph.

    Graph labels are read as STAR's classes (a node labelled ``cabinet`` is ``closet/cabinet``).
    Returns ``{"answer": question program's answer, "choices": [True/False per choice],
    "pick": index of the one true choice or None}``.
    """
    from stepkit.reason.ops import GraphContext, execute
    from stepkit.sources.vocab import with_star_labels

    ctx = GraphContext(with_star_labels(graph))  # STAR's programs name the slash classes
    qprog = translate(record["question_program"])
    answer = execute(qprog, ctx).answer
    truth = []
    for ch in record.get("choices", []):
        truth.append(execute(translate(record["question_program"], ch["choice_program"]), ctx).value is True)
    picks = [i for i, t in enumerate(truth) if t]
    return {"answer": answer, "choices": truth, "pick": picks[0] if len(picks) == 1 else None}
