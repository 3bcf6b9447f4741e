"""The Video-LLM inducer on recorded answers: the exact graph, and hallucinations removed.

The script answers in the shapes real models produce (fenced JSON, prose around JSON, trailing
commas, single quotes, wrong keys, plain garbage). The expected graph is written out by hand from
the script, with the reasoning beside each item.
"""

from __future__ import annotations

import numpy as np
import pytest

from stepkit.graph import STSG, Action, Attribute, Clip, Object, Reference, Relation, graph_problems
from stepkit.induce.vlm import ClipFrames, Keyframe, VLMInducer, VLMInducerConfig, induce_from_clips
from stepkit.models.scripted import ScriptedBackend

KINDS = {
    "narrative": r"Describe the scene in two or three sentences",
    "objects": r"List every distinct person and object",
    "kind": r"static \(it stays in place",
    "attributes": r"Give its visible attributes",
    "relation": r"How are they related in the image",
    "presence_object": r"Is there .* in the image\?",
    "presence_relation": r"In this image, is the ",
    "motion": r"What did the \w+ do between",
    "presence_motion": r"Between the two moments, did the",
    "identity": r"the same individual",
    "event": r"Describe the main event",
}

PC = "Look at the person and the cup."
PT = "Look at the person and the table."
CT = "Look at the cup and the table."

SCRIPT = {
    "model_id": "scripted/test",
    "kinds": KINDS,
    "rules": [
        # Narratives: the one at 3.50 s is empty (a reject; the objects prompt then says "(none)").
        {"kind": "narrative", "contains": "at 3.50 s", "answers": ["  "]},
        {"kind": "narrative", "answers": ["A person stands at a table and reaches for a red cup."]},
        # Objects. 0.50 s: fenced; prose + trailing commas + article; garbage.  -> person, cup, table 2/3; lamp 1/3.
        {"kind": "objects", "contains": "at 0.50 s", "answers": [
            '```json\n{"objects": ["person", "cup", "table", "lamp"]}\n```',
            'Sure! Here are the objects: {"objects": ["Person", "the cup", "table",],}',
            "I see a person and a cup.",
        ]},
        # 1.50 s: plain; single quotes; wrong key.  -> person, cup, table 2/3.
        {"kind": "objects", "contains": "at 1.50 s", "answers": [
            '{"objects": ["person", "cup", "table"]}',
            "{'objects': ['person', 'cup', 'table']}",
            '{"items": ["person"]}',
        ]},
        {"kind": "objects", "answers": ['{"objects": ["person", "cup"]}']},  # 2.50 s and 3.50 s
        # Presence: the cup is not seen at 3.50 s; everything else is.
        {"kind": "presence_object", "contains": ["at 3.50 s", "a cup"], "images": 1, "answers": ["No."]},
        {"kind": "presence_object", "answers": ["Yes, there is."]},
        # Kinds (one vote each per sample; the person's third answer is prose -> reject).
        {"kind": "kind", "contains": "Look at the person.", "answers": [
            '{"kind": "dynamic"}', '```\n{"kind": "dynamic"}\n```', "dynamic, because people move"]},
        {"kind": "kind", "contains": "Look at the cup.", "answers": ['{"kind":"dynamic"}']},
        {"kind": "kind", "contains": "Look at the table.", "answers": [
            '{"kind": "static"}', '{"kind": "static"}', '{"kind": "dynamic"}']},
        # Attributes. Cup: red 2/3, plastic 1/3 (dropped); "colour" is not an asked name (filtered).
        {"kind": "attributes", "contains": "Look at the cup.", "answers": [
            '{"attributes": {"color": "red"}}',
            '{"attributes": {"color": "Red", "material": "plastic"}}',
            '{"attributes": {"colour": "blue"}}',
        ]},
        {"kind": "attributes", "contains": "Look at the table.", "answers": ['{"color": "brown"}']},
        {"kind": "attributes", "contains": "Look at the person.", "answers": ['{"attributes": {}}']},
        # Relations. person-cup: holding 2/3 (kept), near 1/3 (dropped) -- everywhere.
        {"kind": "relation", "contains": PC, "answers": [
            '{"subject": "person", "predicate": "holding", "object": "cup"}',
            'The relation is {"subject": "person", "predicate": "holding", "object": "cup",}.',
            '{"subject": "cup", "predicate": "near", "object": "person"}',
        ]},
        {"kind": "relation", "contains": [PT, "at 0.50 s"], "answers": ['{"predicate": "none"}']},
        {"kind": "relation", "contains": [PT, "at 1.50 s"], "answers": [
            '{"subject": "person", "predicate": "next to", "object": "table"}']},
        {"kind": "relation", "contains": [CT, "at 0.50 s"], "answers": [
            '{"subject": "cup", "predicate": "on", "object": "table"}']},
        {"kind": "relation", "contains": [CT, "at 1.50 s"], "answers": ['{"relation": "above"}']},
        # The presence check denies "person next to table" (all 3 samples agreed on it).
        {"kind": "presence_relation", "contains": "the person next to the table", "answers": ["No, it is not."]},
        {"kind": "presence_relation", "answers": ["yes"]},
        # Motions: the third answer names an object not in view -> argument dropped -> (pick up, None) 1/3.
        {"kind": "motion", "contains": ["at 0.50 s", "Look at the person"], "answers": [
            '{"verb": "pick up", "object": "the cup"}',
            '```json\n{"verb": "pick up", "object": "cup"}\n```',
            '{"verb": "pick up", "object": "sofa"}',
        ]},
        {"kind": "motion", "contains": ["at 2.50 s", "Look at the person"], "answers": [
            '{"verb": "put down", "object": "cup"}']},
        {"kind": "motion", "contains": "Look at the cup", "answers": ['{"verb": "none"}']},
        {"kind": "presence_motion", "answers": ["Yes"]},
        # Identity across clips: person yes 2/3 (kept); cup yes 1/3 (dropped), one unreadable.
        {"kind": "identity", "contains": "the same individual person", "answers": ["Yes", "yes.", "No"]},
        {"kind": "identity", "contains": "the same individual cup", "answers": ["No", "Yes", "maybe"]},
        {"kind": "event", "contains": "from 0.00 s to 2.00 s", "answers": [
            "The person picks up the red cup from the table."]},
        {"kind": "event", "contains": "from 2.00 s to 4.00 s", "answers": [
            '```\n{"event": "The person puts the cup down."}\n```']},
    ],
}


def _frame(value: int) -> np.ndarray:
    return np.full((16, 24, 3), value, np.uint8)


def _clips() -> list[ClipFrames]:
    return [
        ClipFrames(0.0, 2.0, [Keyframe(0.5, _frame(10), 5), Keyframe(1.5, _frame(20), 15)]),
        ClipFrames(2.0, 4.0, [Keyframe(2.5, _frame(30), 25), Keyframe(3.5, _frame(40), 35)]),
    ]


def _config(**kw) -> VLMInducerConfig:
    return VLMInducerConfig(**{"samples": 3, "threshold": 0.5, "batch_size": 64, **kw})


T = round(2 / 3, 6)  # 2 of 3 samples


def test_scripted_backend_gives_exactly_the_expected_graph():
    be = ScriptedBackend(SCRIPT)
    g = induce_from_clips(be, _clips(), video_id="v", fps=10.0, duration=4.0, num_frames=40, config=_config())

    expected = STSG(
        video_id="v", fps=10.0, duration=4.0, num_frames=40,
        clips=[
            Clip("c1", 0.0, 2.0, "The person picks up the red cup from the table.", [0.5, 1.5]),
            Clip("c2", 2.0, 4.0, "The person puts the cup down.", [2.5, 3.5]),
        ],
        objects=[
            # clip 1: person/cup/table 2/3 at both keyframes; keyframe segments [0,1] and [1,2].
            Object("o1", "person", "dynamic", clip="c1", confidence=T),
            Object("o2", "cup", "dynamic", [Attribute("color", "red", 0.0, 2.0)], clip="c1", confidence=T),
            Object("o3", "table", "static", [Attribute("color", "brown", 0.0, 2.0)], clip="c1", confidence=T),
            # clip 2: the cup fails the presence check at 3.5 s, so it lives in segment [2, 3] only.
            Object("o4", "person", "dynamic", clip="c2", confidence=1.0),
            Object("o5", "cup", "dynamic", [Attribute("color", "red", 2.0, 3.0)], clip="c2", confidence=1.0),
        ],
        relations=[
            Relation("r1", "o1", "holding", "o2", 0.0, 2.0, confidence=T),
            Relation("r2", "o2", "on", "o3", 0.0, 1.0, confidence=1.0),  # at 1.5 s only wrong-key answers
            Relation("r3", "o4", "holding", "o5", 2.0, 3.0, confidence=T),
        ],
        actions=[
            Action("a1", "o1", "pick up", 0.5, 1.5, object="o2", confidence=T),
            Action("a2", "o4", "put down", 2.5, 3.5, object="o5", confidence=1.0),
        ],
        references=[Reference("x1", "o1", "o4", confidence=T)],
    )
    got = g.to_dict()
    want = expected.to_dict()
    for section in ("clips", "objects", "relations", "actions", "references"):
        assert got[section] == want[section], section
    assert graph_problems(got) == []

    assert g.meta["rejects"] == {
        "identity/not_yes_no": 1,       # "maybe"
        "kind/no_json": 4,              # the person's prose answer, at 4 keyframes
        "narrative/empty": 1,           # 3.50 s
        "objects/no_json": 1,           # 0.50 s, third sample
        "objects/wrong_keys": 1,        # 1.50 s, third sample
        "relation/wrong_keys": 3,       # cup-table at 1.50 s, all three samples
    }
    assert g.meta["rejects_total"] == 11
    assert g.meta["filtered"] == {
        "consistency": {"attributes": 3, "motions": 1, "objects": 1, "references": 1, "relations": 3},
        "presence": {"objects": 1, "relations": 1},
        "unknown_attribute": {"attributes": 3},
        "unknown_object": {"motions": 1},
    }
    # 11 stages, one batch each; prompts: 4 narratives + 4 object lists + 10 presence(objects) + 9 kinds +
    # 9 attributes + 7 pairs + 5 presence(relations) + 2 events + 3 motions + 2 presence(motions) + 2 identities.
    assert g.meta["calls"] == {"generate": 11, "prompts": 57, "completions": 23 + 34 * 3}
    assert len(be.calls) == 11
    assert g.meta["model"] == "scripted/test"
    assert g.meta["config"]["samples"] == 3


def test_narrative_reaches_the_objects_prompt_and_unscripted_prompts_fail_loudly():
    be = ScriptedBackend(SCRIPT)
    seen: list[str] = []
    orig = be.generate

    def spy(prompts, params):
        seen.extend(p.text for p in prompts)
        return orig(prompts, params)

    be.generate = spy  # observe the real backend's inputs; answers are unchanged
    induce_from_clips(be, _clips(), video_id="v", fps=10.0, duration=4.0, config=_config())
    objects_prompts = [t for t in seen if "List every distinct" in t]
    assert "Scene description: A person stands at a table and reaches for a red cup." in objects_prompts[0]
    assert "Scene description: (none)" in objects_prompts[3]
    from stepkit.errors import ModelError

    with pytest.raises(ModelError, match="no rule answers"):
        induce_from_clips(ScriptedBackend({"kinds": KINDS, "rules": SCRIPT["rules"][:1]}), _clips(),
                          video_id="v", fps=10.0, duration=4.0, config=_config())


def test_inducer_class_reads_a_script_file_and_config_file(tmp_path):
    import yaml

    script = tmp_path / "answers.yaml"
    script.write_text(yaml.safe_dump(SCRIPT), encoding="utf-8")
    cfg = tmp_path / "vlm.yaml"
    cfg.write_text("samples: 3\nthreshold: 0.5\nbatch_size: 4\n", encoding="utf-8")
    ind = VLMInducer(backend="scripted", model=str(script), config=cfg)
    assert ind.config()["samples"] == 3 and ind.config()["backend"] == "scripted"
    g = induce_from_clips(ind.backend, _clips(), video_id="v", fps=10.0, duration=4.0, config=ind.cfg)
    assert [o.label for o in g.objects] == ["person", "cup", "table", "person", "cup"]
    assert g.meta["calls"]["generate"] > 11  # batch_size 4 splits the bigger stages
    from stepkit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown option"):
        VLMInducer(backend="scripted", model=str(script), config={"sample": 3})
    with pytest.raises(ConfigError, match="threshold"):
        VLMInducer(backend="scripted", model=str(script), threshold=1.5)
    with pytest.raises(ConfigError, match="--model"):
        VLMInducer()


# --- self-consistency and the presence check remove injected hallucinations ----------------------

HALLU_KINDS = {k: KINDS[k] for k in ("objects", "kind", "relation", "presence_object", "presence_relation")}


def _hallucination_script(presence_says_no: bool) -> dict:
    return {
        "model_id": "scripted/hallucinations",
        "kinds": HALLU_KINDS,
        "rules": [
            # 1 of 5 samples hallucinates an elephant.
            {"kind": "objects", "answers": ['{"objects": ["person", "cup"]}'] * 4
             + ['{"objects": ["person", "cup", "elephant"]}']},
            {"kind": "kind", "answers": ['{"kind": "dynamic"}']},
            # All 5 samples agree on a relation the image does not show ...
            {"kind": "relation", "contains": "the person and the cup", "answers": [
                '{"subject": "person", "predicate": "throwing", "object": "cup"}']},
            {"kind": "relation", "answers": ['{"predicate": "none"}']},
            # ... and only the presence check catches it (and the elephant, when it gets that far).
            {"kind": "presence_object", "contains": "an elephant",
             "answers": ["No." if presence_says_no else "Yes."],
             "loglikelihood": {"yes": -3.0, "no": -0.1} if presence_says_no else {"yes": -0.1, "no": -3.0}},
            {"kind": "presence_object", "answers": ["Yes."], "loglikelihood": {"yes": -0.2, "no": -2.0}},
            {"kind": "presence_relation", "contains": "throwing",
             "answers": ["No." if presence_says_no else "Yes."],
             "loglikelihood": {"yes": -2.5, "no": -0.3} if presence_says_no else {"yes": -0.3, "no": -2.5}},
        ],
    }


def _hallu_run(presence: str, threshold: float, says_no: bool = True) -> STSG:
    cfg = VLMInducerConfig(samples=5, threshold=threshold, presence=presence, narrative=False, attributes=False,
                           motions=False, bridging=False, events=False, presence_targets=["objects", "relations"])
    clips = [ClipFrames(0.0, 1.0, [Keyframe(0.5, _frame(50))])]
    return induce_from_clips(ScriptedBackend(_hallucination_script(says_no)), clips, video_id="h", fps=10, duration=1.0,
                             config=cfg)


def _triples(g: STSG) -> set[tuple[str, str, str]]:
    lab = {o.id: o.label for o in g.objects}
    return {(lab[r.subject], r.predicate, lab[r.object]) for r in g.relations}


def test_hallucinations_survive_without_the_safeguards():
    g = _hallu_run("off", threshold=0.2)
    assert sorted(o.label for o in g.objects) == ["cup", "elephant", "person"]
    assert ("person", "throwing", "cup") in _triples(g)
    # the elephant's confidence is its frequency over the samples
    assert g.object([o.id for o in g.objects if o.label == "elephant"][0]).confidence == 0.2


def test_self_consistency_removes_the_one_sample_elephant():
    g = _hallu_run("off", threshold=0.5)
    assert sorted(o.label for o in g.objects) == ["cup", "person"]
    assert g.meta["filtered"]["consistency"] == {"objects": 1}
    assert ("person", "throwing", "cup") in _triples(g)  # unanimous, so consistency alone keeps it


@pytest.mark.parametrize("mode", ["generate", "loglikelihood"])
def test_presence_check_removes_what_consistency_cannot(mode):
    g = _hallu_run(mode, threshold=0.2)  # low threshold: the elephant passes consistency ...
    assert sorted(o.label for o in g.objects) == ["cup", "person"]  # ... and fails the presence check
    assert _triples(g) == set()
    assert g.meta["filtered"]["presence"] == {"objects": 1, "relations": 1}
    calls = g.meta["calls"]
    if mode == "loglikelihood":
        assert calls["loglikelihood"] == 3 + 1  # three objects, one relation
    else:
        assert "loglikelihood" not in calls


def test_presence_check_keeps_what_the_model_confirms():
    g = _hallu_run("generate", threshold=0.2, says_no=False)
    assert sorted(o.label for o in g.objects) == ["cup", "elephant", "person"]
    assert "presence" not in g.meta["filtered"]


def test_response_cache_makes_a_rerun_free(tmp_path):
    ind = VLMInducer(backend="scripted", backend_options={"script": SCRIPT}, config=_config(cache=str(tmp_path / "r.db")))
    be = ind.backend
    scripted = be.inner
    first = induce_from_clips(be, _clips(), video_id="v", fps=10.0, duration=4.0, config=ind.cfg)
    n_calls = len(scripted.calls)
    assert n_calls >= 11 and first.meta["calls"]["cache_hits"] == 0 and first.meta["calls"]["cache_misses"] == 57
    second = induce_from_clips(be, _clips(), video_id="v", fps=10.0, duration=4.0, config=ind.cfg)
    assert len(scripted.calls) == n_calls  # nothing reached the model
    assert second.meta["calls"]["cache_misses"] == 0 and second.meta["calls"]["cache_hits"] == 57
    for section in ("objects", "relations", "actions", "references", "clips"):
        assert getattr(first, section) == getattr(second, section)


def test_a_ready_backend_is_wrapped_in_the_cache_too(tmp_path):
    from stepkit.models.cache import CachedBackend

    ind = VLMInducer(backend=ScriptedBackend(SCRIPT), cache=str(tmp_path / "c.db"))
    assert isinstance(ind.backend, CachedBackend) and ind.config()["model"] == "scripted/test"
    assert "cache" not in ind.config()  # where answers are cached does not change them


def test_keyframes_are_shrunk_to_image_size_and_never_enlarged():
    shapes: list[tuple[int, ...]] = []

    class Spy(ScriptedBackend):
        def generate(self, prompts, params):
            shapes.extend(im.shape for p in prompts for im in p.images)
            return super().generate(prompts, params)

    big = [ClipFrames(0.0, 1.0, [Keyframe(0.5, np.zeros((300, 600, 3), np.uint8))])]
    induce_from_clips(Spy({"rules": [], "default": "no"}), big, video_id="b", fps=10, duration=1.0,
                      config=_config(image_size=100))
    assert shapes and set(shapes) == {(50, 100, 3)}
    shapes.clear()
    induce_from_clips(Spy({"rules": [], "default": "no"}), _clips()[:1], video_id="s", fps=10, duration=2.0,
                      config=_config(image_size=100))
    assert set(shapes) == {(16, 24, 3)}


def test_bad_clips_are_refused_by_name():
    from stepkit.errors import ConfigError

    be = ScriptedBackend({"rules": [], "default": "no"})
    with pytest.raises(ConfigError, match=r"clip 0 \[0.0, 1.0\]"):
        induce_from_clips(be, [(0.0, 1.0, [(1.5, _frame(1))])], video_id="x", fps=10, duration=2.0)
    with pytest.raises(ConfigError, match="clip 0: expected"):
        induce_from_clips(be, [(0.0, 1.0)], video_id="x", fps=10, duration=2.0)
    with pytest.raises(ConfigError, match="HxWx3"):
        induce_from_clips(be, [(0.0, 1.0, [(0.5, np.zeros((4, 4, 2), np.uint8))])], video_id="x", fps=10, duration=2.0)


def test_backend_problems_are_named_once(tmp_path):
    from stepkit.errors import ConfigError, ModelError

    with pytest.raises(ModelError, match="no such checkpoint folder"):
        VLMInducer(model=str(tmp_path / "missing-ckpt"))
    ind = VLMInducer(backend="scripted", model=str(tmp_path / "missing.yaml"))
    with pytest.raises(ModelError, match="cannot read script") as first:
        ind.backend
    with pytest.raises(ModelError) as second:  # remembered: the next video fails at once
        ind.backend
    assert second.value is first.value
    ind = VLMInducer(backend="scripted", backend_options={"script": SCRIPT, "colour": 1})
    with pytest.raises(ConfigError, match="rejects its options"):
        ind.backend
