"""The LLM rewording hook, driven by small deterministic stand-ins for a Video-LLM backend."""

from __future__ import annotations

import json
import re

import pytest

from stepkit.models.base import VideoLLM
from stepkit.reason.generate import GenerateConfig, Generator
from stepkit.reason.ops import GraphContext
from stepkit.reason.refine import refine_record


def _parse(prompt: str) -> tuple[str, list[str], str]:
    q = re.search(r"^Question: (.*)$", prompt, re.M).group(1)
    statements = re.findall(r"^\d+\. (.*)$", prompt, re.M)
    a = re.search(r"^Answer: (.*)$", prompt, re.M).group(1)
    return q, statements, a


class Rewriter:
    """A deterministic 'model' that rewrites text with a fixed function."""

    def __init__(self, fn, model_id="rewriter"):
        self.fn = fn
        self.model_id = model_id
        self.calls = 0

    def generate(self, prompts, params):
        self.calls += 1
        out = []
        for p in prompts:
            q, st, a = _parse(p.text)
            out.append([self.fn(q, st, a)])
        return out

    def loglikelihood(self, prompt, continuations):
        return [0.0 for _ in continuations]


def polite(q, st, a):
    return "Here you go: " + json.dumps({"question": "Tell me: " + q[0].lower() + q[1:],
                                          "rationale": ["Looking closely, " + s[0].lower() + s[1:] for s in st]})


@pytest.fixture
def records(kitchen_graph):
    gen = Generator(GenerateConfig(per_video=25, seed=0))
    return gen.records(kitchen_graph), GraphContext(kitchen_graph)


def test_rewriter_is_a_videollm():
    assert isinstance(Rewriter(polite), VideoLLM)


def test_faithful_rewording_is_kept(records):
    recs, ctx = records
    model = Rewriter(polite)
    for rec in recs:
        new, why = refine_record(rec, ctx, model)
        assert why is None, (rec.question, why)
        assert new.question.startswith("Tell me: ") and new.answer == rec.answer and new.program == rec.program
        assert [s.grounding for s in new.rationale] == [s.grounding for s in rec.rationale]
        assert new.rationale[0].text.startswith("Looking closely, ")
        assert new.provenance["refined_by"] == "rewriter"
        assert new.provenance["original_question"] == rec.question


def test_unfaithful_rewordings_are_rejected(records):
    recs, ctx = records
    # a question naming things (its entities are what the rewording must keep)
    rec = next(r for r in recs if r.type in ("relation", "action", "attribute"))
    labels = sorted({o.label for o in ctx.graph.objects}, key=len, reverse=True)

    def drop_entities(q, st, a):
        st = [re.sub("|".join(labels), "thing", s) for s in st[:-1]] + st[-1:]
        return json.dumps({"question": q, "rationale": st})

    def change_answer(q, st, a):
        return json.dumps({"question": q, "rationale": st[:-1] + ["So the answer is something else."]})

    def leak_answer(q, st, a):
        return json.dumps({"question": f"{q} Is it the {a}?", "rationale": st})

    def fewer_statements(q, st, a):
        return json.dumps({"question": q, "rationale": st[1:]})

    cases = {drop_entities: "drops", change_answer: "answer is no longer stated", leak_answer: "appears in the question",
             fewer_statements: "statements instead of", (lambda q, st, a: "I cannot help."): "not the requested JSON"}
    for fn, msg in cases.items():
        new, why = refine_record(rec, ctx, Rewriter(fn))
        assert new is rec and why is not None and msg in why, (fn, why)


def test_refine_records_writes_all_records(tmp_path, kitchen_graph):
    from stepkit.data.record import load_records
    from stepkit.graph.serialize import save_graph
    from stepkit.reason.generate import generate
    from stepkit.reason.refine import refine_records

    save_graph(kitchen_graph, tmp_path / "graphs" / "kitchen.json")
    generate(tmp_path / "graphs", tmp_path / "qa", GenerateConfig(per_video=10))
    flip = {"n": 0}

    def every_other(q, st, a):
        flip["n"] += 1
        return polite(q, st, a) if flip["n"] % 2 else "no JSON here"

    summary = refine_records(tmp_path / "qa", tmp_path / "graphs", Rewriter(every_other), tmp_path / "out")
    before, after = load_records(tmp_path / "qa"), load_records(tmp_path / "out")
    assert [r.id for r in before] == [r.id for r in after]
    # the kitchen's labels are all distinct, so it holds fewer honest questions than slots
    n = len(before)
    assert n >= 8
    assert summary["reworded"] == (n + 1) // 2
    assert summary["rejected_by_reason"] == {"the reply is not the requested JSON": n // 2}
    assert sum(r.question.startswith("Tell me: ") for r in after) == (n + 1) // 2
