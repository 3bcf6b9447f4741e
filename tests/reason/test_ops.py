"""The program language: operators on a hand-built graph, JSON forms, step counts, failures."""

from __future__ import annotations

import json

import pytest

from stepkit.reason.ops import (OPS, ExecError, GraphContext, ProgramError, as_program, execute, program_to_tree,
                                step_count, tree_to_program)


def P(*nodes):
    """Build a linear program from (op, inputs, args) triples."""
    return [{"op": op, "in": list(ins), "args": dict(args)} for op, ins, args in nodes]


def run(graph, *nodes):
    return execute(P(*nodes), graph).answer


def test_relation_hop_query(kitchen_graph):
    # What is the man holding?
    assert run(kitchen_graph, ("objects", [], {"label": "man"}), ("unique", [0], {}),
               ("hop", [1], {"kind": "relation", "label": "holding", "from": "subject", "to": "object"}),
               ("unique", [2], {}), ("query", [3], {"field": "label"})) == "cup"


def test_star_style_program(kitchen_graph):
    # STAR: Actions -> Filter_Actions_with_Verb(open) -> Unique -> Query_Objs
    assert run(kitchen_graph, ("actions", [], {}), ("filter_events", [0], {"label": "open", "roles": []}),
               ("unique", [1], {}), ("query", [2], {"field": "object"})) == "door"
    # Filter_Actions_with_Obj(cup) -> Query_Earliest_Action -> Query_Verbs
    assert run(kitchen_graph, ("objects", [], {"label": "cup"}), ("actions", [], {}),
               ("filter_events", [1, 0], {"roles": ["object"]}), ("first", [2], {}),
               ("query", [3], {"field": "verb"})) == "pick up"
    assert run(kitchen_graph, ("objects", [], {"label": "cup"}), ("actions", [], {}),
               ("filter_events", [1, 0], {"roles": ["object"]}), ("last", [2], {}),
               ("query", [3], {"field": "action"})) == "put down the cup on the table"


def test_temporal_before_after_while(kitchen_graph):
    open_door = [("actions", [], {}), ("filter_events", [0], {"label": "open", "roles": []}), ("unique", [1], {})]
    # What happened right after the door was opened? (a4 walk to, 8-10 s)
    assert run(kitchen_graph, *open_door, ("localize", [2], {"mode": "after"}), ("actions", [3], {}),
               ("first", [4], {}), ("query", [5], {"field": "action"})) == "walk to the door"
    # ...and right before? (a2 ends at 5.0 = the opening's start)
    assert run(kitchen_graph, *open_door, ("localize", [2], {"mode": "before"}), ("actions", [3], {}),
               ("last", [4], {}), ("query", [5], {"field": "action"})) == "put down the cup on the table"
    # The door's state before and after it was opened.
    door = [("objects", [], {"label": "door"}), ("unique", [3], {})]
    for mode, state in (("before", "closed"), ("after", "open")):
        assert run(kitchen_graph, *open_door, *door, ("localize", [2], {"mode": mode}),
                   ("query_attr", [4, 5], {"name": "state"})) == state
    # Over the whole video the state is not unique.
    with pytest.raises(ExecError) as exc:
        run(kitchen_graph, *door[:1], ("unique", [0], {}), ("query_attr", [1], {"name": "state"}))
    assert exc.value.reason == "ambiguous"
    # AGQA: Exists(holding, Iterate(Localize(while, looking at the door)))
    assert run(kitchen_graph, ("relations", [], {}), ("filter_events", [0], {"label": "looking_at", "roles": []}),
               ("unique", [1], {}), ("localize", [2], {"mode": "while"}), ("relations", [3], {}),
               ("filter_events", [4], {"label": "holding", "roles": []}), ("exists", [5], {})) == "no"


def test_count_exists_ordinal_choose(kitchen_graph):
    man = [("objects", [], {"label": "man"}), ("unique", [0], {})]
    acts = [*man, ("actions", [], {}), ("filter_events", [2, 1], {"roles": ["agent"]})]
    assert run(kitchen_graph, *acts, ("count", [3], {})) == "4"
    assert run(kitchen_graph, *acts, ("nth", [3], {"k": 3}), ("query", [4], {"field": "action"})) == "walk to the door"
    assert run(kitchen_graph, ("objects", [], {"label": "laptop"}), ("exists", [0], {})) == "no"
    assert run(kitchen_graph, ("objects", [], {"label": "table"}), ("exists", [0], {})) == "yes"
    ev = lambda verb, base: [("filter_events", [base], {"label": verb, "roles": []}), ("unique", [base + 1], {})]  # noqa
    prog = [("actions", [], {}), *ev("walk to", 0), ("actions", [], {}), *ev("give", 3)]
    assert run(kitchen_graph, *prog, ("choose", [2, 5], {"by": "earlier"}),
               ("query", [6], {"field": "action"})) == "walk to the door"
    assert run(kitchen_graph, *prog, ("compare_time", [2, 5], {})) == "before"
    assert run(kitchen_graph, *prog, ("choose", [2, 5], {"by": "longer"}), ("query", [6], {"field": "verb"})) == "walk to"


def test_set_ops_attr_and_equal(kitchen_graph):
    allo = ("objects", [], {})
    red = ("filter_attr", [0], {"name": "color", "value": "red"})
    assert run(kitchen_graph, allo, red, ("unique", [1], {}), ("query", [2], {"field": "label"})) == "cup"
    assert run(kitchen_graph, allo, red, ("unique", [1], {}), ("equal", [2], {"value": "cup"})) == "yes"
    people = [("objects", [], {"label": "man"}), ("objects", [], {"label": "woman"}), ("union", [0, 1], {})]
    assert run(kitchen_graph, *people, allo, ("except", [3, 2], {}), ("count", [4], {})) == "5"
    assert run(kitchen_graph, *people, ("objects", [], {"label": "man"}), ("unique", [3], {}),
               ("belong_to", [4, 2], {})) == "yes"


def test_failures_have_reasons(kitchen_graph):
    with pytest.raises(ExecError) as exc:
        run(kitchen_graph, ("actions", [], {}), ("filter_events", [0], {"label": "pick up", "roles": []}),
            ("unique", [1], {}))
    assert exc.value.reason == "ambiguous"
    with pytest.raises(ExecError) as exc:
        run(kitchen_graph, ("objects", [], {"label": "laptop"}), ("unique", [0], {}))
    assert exc.value.reason == "empty"
    with pytest.raises(ProgramError, match="unknown operator 'teleport'"):
        as_program([{"op": "teleport", "in": [], "args": {}}])
    with pytest.raises(ProgramError, match="earlier nodes"):
        as_program([{"op": "video", "in": [0], "args": {}}])
    with pytest.raises(ProgramError, match="missing argument 'field'"):
        as_program(P(("objects", [], {}), ("unique", [0], {}), ("query", [1], {})))


def test_json_tree_roundtrip_and_steps(kitchen_graph):
    prog = P(("objects", [], {"label": "man"}), ("unique", [0], {}),
             ("hop", [1], {"kind": "relation", "label": "holding", "from": "subject", "to": "object"}),
             ("unique", [2], {}), ("query_attr", [3], {"name": "color"}))
    assert step_count(prog) == 2  # hop + query_attr; plain mention, unique and readout are free
    text = json.dumps(prog)
    assert execute(json.loads(text), kitchen_graph).answer == "red"
    tree = program_to_tree(prog)
    assert tree["op"] == "query_attr" and tree["in"][0]["in"][0]["op"] == "hop"
    assert tree_to_program(tree) == prog
    assert execute(tree, kitchen_graph).answer == "red"


def test_trace_records_ids_and_windows(kitchen_graph):
    prog = P(("actions", [], {}), ("filter_events", [0], {"label": "open", "roles": []}), ("unique", [1], {}),
             ("localize", [2], {"mode": "after"}), ("actions", [3], {}), ("first", [4], {}),
             ("query", [5], {"field": "action"}))
    ex = execute(prog, GraphContext(kitchen_graph))
    assert [t.op for t in ex.trace] == [n["op"] for n in prog]
    assert ex.trace[1].ids == ("a3",) and ex.trace[5].ids == ("a4",)
    assert ex.trace[3].window == (6.0, 20.0) and ex.trace[5].window == (6.0, 20.0)
    assert [t.step for t in ex.trace] == [OPS[n["op"]].step for n in prog]
    assert json.loads(json.dumps([t.to_dict() for t in ex.trace]))[3]["output"] == [6.0, 20.0]


def test_agqa_programs_and_their_steps(kitchen_graph):
    """AGQA's own examples (shared/data/agqa) written in this language keep AGQA's step counts."""
    # "Was a blanket one of the things they were interacting with?" Exists(blanket, Iterate(video, ...)) steps=1
    p1 = P(("objects", [], {"label": "book"}), ("exists", [0], {}))
    assert step_count(p1) == 1 and execute(p1, kitchen_graph).answer == "yes"
    # "Were they interacting with a blanket while holding a pillow?" Exists(blanket, Iterate(Localize(while,
    # holding a pillow), ...)) steps=3
    p3 = P(("objects", [], {"label": "cup"}), ("relations", [], {}),
           ("filter_events", [1, 0], {"label": "holding", "roles": ["object"]}), ("unique", [2], {}),
           ("localize", [3], {"mode": "while"}), ("objects", [], {"label": "book"}), ("during", [5, 4], {}),
           ("exists", [6], {}))
    assert step_count(p3) == 3
    assert execute(p3, kitchen_graph).answer == "yes"  # the book is on the table while the man holds the cup
    # "Did they walk to the door before or after picking up the thing that was on the table first?"
    # Compare([before, after], ... IterateUntil(forward, ... on ...) ...) steps=6
    p6 = P(("relations", [], {}), ("filter_events", [0], {"label": "on", "roles": []}), ("first", [1], {}),
           ("participants", [2], {"role": "subject"}), ("actions", [], {}),
           ("filter_events", [4, 3], {"label": "pick up", "roles": ["object"]}), ("unique", [5], {}),
           ("filter_events", [4], {"label": "walk to", "roles": []}), ("unique", [7], {}),
           ("compare_time", [8, 6], {}))
    assert step_count(p6) == 6
    assert execute(p6, kitchen_graph).answer == "before"  # walk to 8 s; the book (on the table at 0 s) picked up at 11 s
