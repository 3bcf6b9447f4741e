"""`stepkit qa audit`: each defect class, built into a small graph and record, is counted; clean
records count zero."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stepkit.data.record import QRARecord, RationaleStep
from stepkit.errors import DataError
from stepkit.graph.serialize import save_graph
from stepkit.graph.types import STSG, Action, Attribute, Object, Relation
from stepkit.io import atomic_write_text
from stepkit.reason.audit import (
    audit,
    blind_baseline,
    failed_checks,
    missing_references,
    noop_steps,
    skeleton,
    text_problems,
)
from stepkit.reason.ops import GraphContext, execute, step_count


def _graph(vid: str = "V1") -> STSG:
    """One person; a small red cup, a large box, a table, a door, food and a second cup-free scene."""
    g = STSG(vid, fps=10.0, duration=30.0)
    g.objects = [Object("p1", "person"),
                 Object("o1", "cup", attributes=[Attribute("color", "red"), Attribute("size", "small")]),
                 Object("o2", "box", attributes=[Attribute("size", "large")]),
                 Object("o3", "table", "static"), Object("o4", "door", "static"), Object("o5", "food"),
                 Object("o6", "box", attributes=[Attribute("size", "small")])]
    acts = [("pick up", "o1", None, 1, 2), ("put down", "o1", "o3", 5, 6), ("open", "o4", None, 10, 11),
            ("walk to", "o3", None, 11.5, 12.5), ("pick up", "o2", None, 15, 16), ("pick up", "o5", None, 22, 23),
            ("close", "o4", None, 26, 27)]
    g.actions = [Action(f"a{i}", "p1", v, t0, t1, object=o, target=t) for i, (v, o, t, t0, t1) in enumerate(acts, 1)]
    g.relations = [Relation("r1", "p1", "holding", "o1", 2, 5), Relation("r2", "o1", "on", "o3", 6, 30),
                   Relation("r3", "p1", "touching", "o1", 2, 5)]
    return g


def _shaky() -> STSG:
    g = _graph("V2")
    g.actions.append(Action("a8", "p1", "close", 10.6, 11.4, object="o4"))
    return g


def _rec(rid: str, question: str, program: list, *, options=None, rtype="action", video="V1",
         graph: STSG | None = None) -> QRARecord:
    g = graph or _graph(video)
    ans = execute(program, g).answer
    opts = list(options) if options is not None else None
    if opts is not None and ans not in opts:
        opts = [ans] + opts[:3]
    return QRARecord(id=rid, video_id=video, question=question, answer=ans, steps=step_count(program), type=rtype,
                     program=program, options=opts, answer_index=opts.index(ans) if opts else None,
                     answer_sentence=f"The answer is {ans}.",
                     rationale=[RationaleStep(f"So the answer is {ans}.", ["p1"])])


def N(op, ins=(), **args):
    return {"op": op, "in": list(ins), "args": args}


# "What did the person open?": actions -> filter(open, agent person) -> unique -> object
P_OPEN = [N("actions"), N("objects", label="person"), N("filter_events", [0, 1], label="open", roles=["agent"]),
          N("unique", [2]), N("query", [3], field="object")]
# "What size is the box the person picked up?" -- two boxes, so the reference narrows
P_BOX_SIZE = [N("objects", label="person"), N("hop", [0], kind="action", label="pick up", **{"from": "agent", "to": "object"}),
              N("objects", label="box"), N("intersect", [1, 2]), N("unique", [3]), N("query_attr", [4], name="size")]


def _clean_records() -> list[QRARecord]:
    return [
        _rec("V1-000", "What did the person open?", P_OPEN, options=["door", "box", "window", "laptop"], rtype="object"),
        _rec("V1-001", "What size is the box the person picked up?", P_BOX_SIZE, options=["large", "red", "wooden", "blue"],
             rtype="attribute"),
    ]


def _write(tmp_path, records, graphs=None):
    qa = tmp_path / "qa"
    atomic_write_text(qa / "qa.jsonl", "".join(r.to_json() + "\n" for r in records))
    gdir = tmp_path / "graphs"
    for g in graphs or [_graph()]:
        save_graph(g, gdir / f"{g.video_id}.json")
    return qa, gdir


def test_clean_records_count_zero(tmp_path):
    qa, g = _write(tmp_path, _clean_records())
    rep = audit(qa, g)
    assert rep["checked"] == 2 and rep["mismatches"] == 0
    assert rep["noop"]["steps"] == 0, rep["examples"]
    assert rep["missing_references"]["references"] == 0, rep["examples"]
    assert rep["true_distractors"]["distractors"] == 0, rep["examples"]
    assert rep["under_margin"]["records"] == 0, rep["examples"]
    assert rep["text"]["records"] == 0 and rep["text"]["slash_label_records"] == 0


def test_noop_steps_by_ablation():
    ctx = GraphContext(_graph())
    # an attribute filter over the only cup: "What color is the small cup?"
    prog = [N("objects", label="cup"), N("filter_attr", [0], name="size", value="small"), N("unique", [1]),
            N("query_attr", [2], name="color")]
    assert [(op, how) for _, op, how in noop_steps(prog, ctx)] == [("filter_attr", "pass input through")]
    # the same filter over the two boxes narrows: not a no-op
    prog = [N("objects", label="box"), N("filter_attr", [0], name="size", value="small"), N("unique", [1]),
            N("query", [2], field="label")]
    assert noop_steps(prog, ctx) == []
    # "first" over one candidate (the only door opening)
    prog = [N("actions"), N("filter_events", [0], label="open", roles=[]), N("first", [1]), N("query", [2], field="object")]
    assert [op for _, op, _ in noop_steps(prog, ctx)] == ["first"]
    # an agent reference with one person: "the person who walked to the table"
    prog = [N("objects", label="table"), N("hop", [0], kind="action", label="walk to", **{"from": "object", "to": "agent"}),
            N("unique", [1]), N("actions"), N("filter_events", [3, 2], label="open", roles=["agent"]), N("unique", [4]),
            N("query", [5], field="object")]
    assert [(op, how) for _, op, how in noop_steps(prog, ctx)] == [("hop", "plain mention")]
    # a window that narrows nothing: the only door opening, "after the person picked up the cup"
    prog = [N("actions"), N("objects", label="cup"), N("filter_events", [0, 1], label="pick up", roles=["object"]),
            N("unique", [2]), N("localize", [3], mode="after"), N("actions", [4]),
            N("filter_events", [5], label="open", roles=[]), N("unique", [6]), N("query", [7], field="object")]
    assert "localize" in [op for _, op, _ in noop_steps(prog, ctx)]
    # a reference that finds the answer is not replaced by the answer's label
    assert noop_steps(P_OPEN, ctx) == []
    # existence: the filter is the question (the aggregated set changes), never a no-op
    prog = [N("actions"), N("filter_events", [0], label="open", roles=[]), N("exists", [1])]
    assert noop_steps(prog, ctx) == []


def test_missing_references():
    prog = [N("objects", label="box"), N("filter_attr", [0], name="size", value="large"), N("unique", [1]),
            N("query", [2], field="label")]
    assert missing_references("Which box is it?", prog) == ["value large"]
    assert missing_references("Which large box is it?", prog) == []
    prog = P_OPEN[:3] + [N("unique", [2]), N("localize", [3], mode="after"), N("actions", [4]), N("first", [5]),
                         N("query", [6], field="action")]
    assert missing_references("What did the person do after opening the door?", prog) == []
    assert missing_references("What did the person do when they opened it?", prog) == ["window after"]
    # word forms and slash classes: "picked up", "glasses" for a cup/glass/bottle node
    prog = [N("actions"), N("objects", label="cup/glass/bottle"), N("filter_events", [0, 1], label="pick up",
                                                                    roles=["object"]), N("exists", [2])]
    assert missing_references("Did someone pick up a glass?", prog) == []
    assert missing_references("Did someone lift a glass?", prog) == ["verb pick up"]


def test_each_defect_is_counted(tmp_path):
    g = _graph()
    bad = [
        # padded step: filter over the only cup
        _rec("V1-010", "What color is the small cup?", [N("objects", label="cup"),
             N("filter_attr", [0], name="size", value="small"), N("unique", [1]), N("query_attr", [2], name="color")],
             options=["red", "green", "blue", "white"], rtype="attribute"),
        # missing reference: the question drops "large"
        _rec("V1-011", "What did the person do to the box?", [N("objects", label="box"),
             N("filter_attr", [0], name="size", value="large"), N("unique", [1]), N("actions"),
             N("filter_events", [3, 2], label=None, roles=["object"]), N("unique", [4]), N("query", [5], field="verb")],
             options=["pick up", "open", "throw", "wash"]),
        # a distractor that is also right: holding entails touching, and the graph says touching too
        _rec("V1-012", "Holding or not, how was the person related to the cup?", [N("objects", label="person"), N("objects", label="cup"),
             N("relations"), N("filter_events", [2, 0, 1], label="holding", roles=["subject", "object"]), N("unique", [3]),
             N("query", [4], field="predicate")], options=["touching", "on", "behind", "above"], rtype="relation"),
        # a synonym distractor
        _rec("V1-013", "What size is the cup?", [N("objects", label="cup"), N("unique", [0]), N("query_attr", [1], name="size")],
             options=["tiny", "large", "medium", "huge"], rtype="attribute"),
        # an order decided by less than the margin: in video V2 the door is also closed from 10.6 s,
        # 0.4 s before the opening (10-11 s) ends, so whether that counts as "after" decides the answer
        _rec("V2-014", "What is the first thing the person did after opening the door?", P_OPEN[:3] + [
             N("unique", [2]), N("localize", [3], mode="after"), N("actions", [4]), N("first", [5]),
             N("query", [6], field="action")], options=["pick up the box", "close the door", "pick up the food"],
             rtype="temporal", video="V2", graph=_shaky()),
    ]
    # wording: a slash label and a bad plural in the question (the program itself is clean)
    slash = _rec("V1-015", "Which object did the person open, the cup/glass/bottle or the door?", P_OPEN,
                 options=["box", "table", "food"], rtype="object")
    plural = _rec("V1-016", "How many clotheses did the person open?", P_OPEN, options=["box", "table", "food"],
                  rtype="object")
    # an implausible pair: "open the food"
    implaus = _rec("V1-017", "What did the person open?", P_OPEN, options=["food", "box", "table"], rtype="object")
    implaus.options = ["door", "food", "sandwich", "table"]
    implaus.answer_index = 0
    qa, gdir = _write(tmp_path, bad + [slash, plural, implaus], [g, _shaky()])
    rep = audit(qa, gdir)
    assert rep["mismatches"] == 0, rep["examples"]
    assert rep["noop"]["records"] == 1 and rep["noop"]["by_op"] == {"filter_attr": 1}, rep["examples"].get("no-op step")
    assert rep["missing_references"]["records"] == 1, rep["examples"].get("missing reference")
    assert rep["examples"]["missing reference"][0]["detail"] == ["value large"]
    assert rep["true_distractors"]["records"] == 2, rep["examples"].get("true distractor")
    got = {e["id"]: e["detail"] for e in rep["examples"]["true distractor"]}
    assert any("touching" in d for d in got["V1-012"]) and any("tiny" in d for d in got["V1-013"])
    assert rep["under_margin"]["records"] == 1 and rep["under_margin"]["by_kind"] == {"after": 1}, \
        rep["examples"].get("order under margin")
    assert rep["examples"]["order under margin"][0]["id"] == "V2-014"
    assert rep["text"]["slash_label_records"] == 1
    assert rep["text"]["by_pattern"].get("bad plural") == 1
    ip = rep["implausible_pairs"]
    assert ip is not None and ip["implausible"] >= 1, ip
    assert any("open + food" in e["detail"] for e in rep["examples"]["implausible pair"])
    missed = failed_checks(rep)
    assert any("no-op" in m for m in missed) and any("slash" in m for m in missed)
    assert (qa / "audit.json").exists() is False  # audit() itself writes nothing


def test_text_patterns():
    assert text_problems(["How many clotheses can be seen?"]) == ["bad plural"]
    assert text_problems(["Which object is the cup/glass/bottle on?"]) == ["slash label"]
    assert "double article" in text_problems(["Did the the person sit?"])
    assert "'a' before a vowel" in text_problems(["Is there a apple?"])
    assert "colour of a person" in text_problems(["What is the color of the person?"])
    assert "intransitive verb with object" in text_problems(["How many times did the person sneeze something?"])
    assert text_problems(["Is there an apple on the table?", "Did someone sit on a chair?",
                          "No, no one was next to the shelf."]) == []


def test_frames_count_phrasings_not_noun_lengths():
    from stepkit.reason.audit import diversity, frame

    assert frame("What did the person pick up after opening the red door?") == "what did the person X after X"
    assert frame("What did the person put down after washing the cup?") == frame(
        "What did the person pick up after opening the red door?")
    d = diversity(["What did the person take after opening the door?", "What did the person put down after washing the red cup?",
                   "After opening the door, what did the person take?", "Which object did the person take next?"],
                  ["t1", "t1", "t1", "t2"], [3, 3, 3, 2])
    assert d["phrasings_per_template"] == {"min": 1, "median": 2, "max": 2}  # too few records: all judged
    assert d["templates_under_3_phrasings"] == ["t1", "t2"] and d["templates_with_few_records"] == ["t1", "t2"]
    assert d["anchor_share"] == 0.75 and d["distinct_question_ratio"] == 1.0
    qs = [f"What did the person take after opening door {i}?" for i in range(12)] + ["Which object did he take next?"]
    d = diversity(qs, ["t1"] * 12 + ["t2"], [3] * 13)
    assert d["templates_under_3_phrasings"] == ["t1"] and d["templates_with_few_records"] == ["t2"]


def test_skeleton_masks_content_words():
    assert skeleton("What did the person pick up after opening the door?") == "what did the person _ _ after _ the _"
    assert skeleton("What did the person put down after washing the cup?") == \
        skeleton("What did the person pick up after opening the door?")


def _shortcut_records(n_videos: int, leak: bool) -> list[QRARecord]:
    """Records whose answer the wording gives away (leak) or does not (the answer is the video's)."""
    import random

    rnd = random.Random(0)
    out = []
    objs = ["cup", "book", "box", "pillow"]
    for v in range(n_videos):
        for k in range(40):
            verb = rnd.choice(["drink from", "read", "open", "hug"])
            ans = objs[["drink from", "read", "open", "hug"].index(verb)] if leak else rnd.choice(objs)
            opts = objs[:]
            rnd.shuffle(opts)
            out.append(QRARecord(id=f"v{v}-{k}", video_id=f"v{v}", question=f"What did the person {verb}?",
                                 answer=ans, steps=1, type="action", options=opts, answer_index=opts.index(ans)))
    return out


def test_blind_baseline_finds_text_shortcuts_and_not_otherwise():
    leak = blind_baseline(_shortcut_records(10, leak=True))
    assert leak["by_type"]["action"]["accuracy"] > 0.9 and leak["by_type"]["action"]["chance"] == 0.25
    fair = blind_baseline(_shortcut_records(10, leak=False))
    assert abs(fair["by_type"]["action"]["above_chance"]) < 0.08, fair


def test_reference_and_cli(tmp_path, shared_data):
    from stepkit.cli import app

    qa, g = _write(tmp_path, _clean_records())
    res = CliRunner().invoke(app, ["qa", "audit", str(qa), str(g), "--reference",
                                   str(shared_data / "star" / "val_dev.json")])
    assert res.exit_code == 0, res.output
    assert "no-op steps" in res.output and "Blind baseline" in res.output and "Diversity" in res.output
    rep = json.loads((qa / "audit.json").read_text())
    assert rep["reference"]["questions"] == 1471 and rep["reference"]["anchor_share"] > 0.6
    assert (qa / "audit.md").read_text().startswith("### Q/R/A audit")
    res = CliRunner().invoke(app, ["qa", "audit", str(qa), str(g), "--strict"])
    assert res.exit_code == 0, res.output  # the clean records pass every bar


def test_bad_inputs_are_clear_errors(tmp_path):
    from stepkit.cli import app

    qa, g = _write(tmp_path, _clean_records())
    with pytest.raises(DataError, match="no such graphs folder"):
        audit(qa, tmp_path / "nope")
    with pytest.raises(DataError, match="no such Q/R/A file"):
        audit(tmp_path / "empty", g)
    res = CliRunner().invoke(app, ["qa", "audit", str(tmp_path / "empty"), str(g)])
    assert res.exit_code == 1 and "no such Q/R/A file" in res.output and "Traceback" not in res.output
    (tmp_path / "nographs").mkdir()
    with pytest.raises(DataError, match="no graph files"):
        audit(qa, tmp_path / "nographs")
    other = tmp_path / "other"
    save_graph(_graph("OTHER"), other / "OTHER.json")
    res = CliRunner().invoke(app, ["qa", "audit", str(qa), str(other), "--strict"])
    assert res.exit_code == 1 and "have no graph" in res.output
    res = CliRunner().invoke(app, ["qa", "audit", str(qa), str(g), "--margin", "-1"])
    assert res.exit_code == 1 and "margin" in res.output
    (tmp_path / "bad.json").write_text("{}")
    res = CliRunner().invoke(app, ["qa", "audit", str(qa), str(g), "--reference", str(tmp_path / "bad.json")])
    assert res.exit_code == 1 and "STAR" in res.output


def test_order_margins():
    from stepkit.reason.audit import _run, order_margins

    g = GraphContext(_shaky())
    # the second thing after picking up the cup: the door opening (10 s) vs its closing (10.6 s)
    prog = [N("actions"), N("objects", label="cup"), N("filter_events", [0, 1], label="pick up", roles=["object"]),
            N("unique", [2]), N("localize", [3], mode="after"), N("actions", [4]), N("nth", [5], k=2),
            N("query", [6], field="action")]
    assert order_margins(prog, _run(prog, g), g, 1.0) == ["nth: decided by 0.60 s"]
    assert order_margins(prog, _run(prog, g), g, 0.5) == []
    prog[6] = N("first", [5])  # putting the cup down (5 s) is first by 5 s
    assert order_margins(prog, _run(prog, g), g, 1.0) == []


def test_reference_reusing_the_asked_event():
    from stepkit.reason.audit import _run, reused_events

    g = _graph()
    g.actions.append(Action("a9", "p1", "sit on", 3, 4, object="o3"))
    g.relations.append(Relation("r9", "p1", "sitting_on", "o3", 3, 4))  # the state of that very sitting
    ctx = GraphContext(g)
    # "What did the person sit on while sitting on something?" -- the window is the asked event's own state
    prog = [N("relations"), N("filter_events", [0], label="sitting_on", roles=[]), N("unique", [1]),
            N("localize", [2], mode="while"), N("actions", [3]), N("filter_events", [4], label="sit on", roles=[]),
            N("unique", [5]), N("query", [6], field="object")]
    assert len(reused_events(prog, _run(prog, ctx), ctx)) == 1
    # while holding the cup, what did the person put down? -- a different occurrence: fine
    prog = [N("relations"), N("filter_events", [0], label="holding", roles=[]), N("unique", [1]),
            N("localize", [2], mode="while"), N("actions", [3]), N("filter_events", [4], label="put down", roles=[]),
            N("unique", [5]), N("query", [6], field="object")]
    assert reused_events(prog, _run(prog, ctx), ctx) == []


def test_option_pairs_follow_the_slot_the_answer_fills():
    from stepkit.reason.audit import _run, option_pairs

    ctx = GraphContext(_graph())
    # "What was on the table?": the options are what is on it, so (on, option) says nothing
    prog = [N("objects", label="table"), N("hop", [0], kind="relation", label="on", **{"from": "object", "to": "subject"}),
            N("unique", [1]), N("query", [2], field="label")]
    rec = _rec("V1-100", "What was on the table?", prog, options=["cup", "door", "food", "box"], rtype="relation")
    assert option_pairs(rec, prog, _run(prog, ctx), ctx) == []
    # "What did the person put down?": each option is something put down
    prog = [N("objects", label="person"), N("hop", [0], kind="action", label="put down", **{"from": "agent", "to": "object"}),
            N("unique", [1]), N("query", [2], field="label")]
    rec = _rec("V1-101", "What did the person put down?", prog, options=["cup", "door", "food", "box"], rtype="object")
    assert option_pairs(rec, prog, _run(prog, ctx), ctx) == [("put down", o) for o in rec.options]
