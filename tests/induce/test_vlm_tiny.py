"""The Video-LLM inducer end to end with a real (tiny, random) Video-LLM on three short videos.

Videos come from the synthetic world. A random model answers nonsense; the inducer must still split, prompt, count what it rejects and
write a valid graph, deterministically.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from stepkit.graph import graph_problems, load_graph, save_graph  # noqa: E402
from stepkit.induce import get_inducer  # noqa: E402
from stepkit.induce.vlm import ClipFrames, Keyframe, VLMInducerConfig, induce_from_clips  # noqa: E402
from stepkit.induce.vlm_prompts import PromptSet  # noqa: E402
from stepkit.models.scripted import ScriptedBackend  # noqa: E402

FAST = {"samples": 2, "keyframes_per_clip": 2, "max_new_tokens": 24, "text_max_new_tokens": 16, "batch_size": 8,
        "image_size": 56, "split": "uniform", "clip_seconds": 3.0}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here runs on one torch thread (two contended threads spin-wait on a busy machine)."""
    yield


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three 6-second videos of the synthetic world (seed 1), small frames."""
    from stepkit.world import render_world

    root = tmp_path_factory.mktemp("world")
    summary = render_world(root, videos=3, seed=1, duration=6.0, size=(128, 72), workers=1)
    return [root / row["video"] for row in summary["videos"]]


@pytest.fixture(scope="module")
def tiny_options(tmp_path_factory):
    return {"family": "qwen2.5-vl", "seed": 0, "cache_dir": str(tmp_path_factory.mktemp("tiny_models"))}


def test_tiny_model_end_to_end_on_three_videos(videos, tiny_options, tmp_path):
    from stepkit.video import split_video

    inducer = get_inducer("vlm", backend="tiny", backend_options=tiny_options, config=dict(FAST))
    assert inducer.name == "vlm"
    graphs = []
    for path in videos:
        g = inducer.induce(path, path.stem)
        doc = g.to_dict()
        assert graph_problems(doc) == []
        out = save_graph(g, tmp_path / f"{path.stem}.json")
        assert load_graph(out).to_dict() == json.loads(out.read_text())
        # The clips are the splitter's, with its keyframe times.
        split = split_video(path, mode="uniform", clip_seconds=3.0, keyframes_per_clip=2)
        assert len(split.clips) == 2
        assert [(c.t0, c.t1) for c in g.clips] == [(round(c.t0, 6), round(c.t1, 6)) for c in split.clips]
        assert [c.keyframes for c in g.clips] == [[round(k.t, 6) for k in c.keyframes] for c in split.clips]
        kf = sum(len(c.keyframes) for c in g.clips)
        calls = g.meta["calls"]
        # At least one narrative and one object list per keyframe and one event per clip were asked for.
        assert calls["prompts"] >= 2 * kf + len(g.clips)
        assert calls["completions"] >= kf * (1 + FAST["samples"]) + len(g.clips)
        assert g.meta["model"].startswith("tiny:qwen2.5-vl")
        # A random model's structured answers are nonsense: rejected and counted, never a crash.
        assert g.meta["rejects_total"] > 0
        assert all(k.split("/")[0] in {"narrative", "objects", "kind", "attributes", "relation", "motion", "identity",
                                       "event", "presence_object", "presence_relation", "presence_motion"}
                   for k in g.meta["rejects"])
        graphs.append(doc)
    assert len(graphs) == 3
    # Seeded end to end: the same video gives the same graph.
    again = inducer.induce(videos[0], videos[0].stem).to_dict()
    assert again == graphs[0]


class _ScriptedAnswersModelScores:
    """Structured answers from a script, yes/no log-likelihoods from the real tiny model."""

    def __init__(self, script: ScriptedBackend, model):
        self.script, self.model, self.model_id = script, model, "scripted+tiny"

    def generate(self, prompts, params):
        return self.script.generate(prompts, params)

    def loglikelihood(self, prompt, continuations):
        return self.model.loglikelihood(prompt, continuations)


def test_loglikelihood_presence_check_with_the_tiny_model(tiny_options):
    from stepkit.models import Prompt, get_backend

    model = get_backend("tiny", **tiny_options)
    script = ScriptedBackend({"rules": [
        {"regex": "List every distinct", "answers": ['{"objects": ["person", "cup", "table", "elephant"]}']},
        {"regex": "static \\(it stays", "answers": ['{"kind": "static"}']},
    ]})
    cfg = VLMInducerConfig(samples=2, presence="loglikelihood", presence_targets=["objects"], narrative=False,
                           attributes=False, relations=False, motions=False, bridging=False, events=False)
    image = np.random.default_rng(0).integers(0, 255, (56, 56, 3), dtype=np.uint8)
    g = induce_from_clips(_ScriptedAnswersModelScores(script, model), [ClipFrames(0.0, 1.0, [Keyframe(0.5, image)])],
                          video_id="ll", fps=10, duration=1.0, config=cfg)
    # Independently: the model's own yes/no scores for the same presence questions.
    ps = PromptSet.load("v1")
    system = ps.render("system")
    expect = []
    for label in ["person", "cup", "table", "elephant"]:
        text = ps.render("presence_object", time="0.50", phrase=("an " if label[0] in "aeiou" else "a ") + label)
        yes, no = model.loglikelihood(Prompt(text=text, images=[image], system=system), ["yes", "no"])
        assert np.isfinite(yes) and np.isfinite(no)
        if yes - no > 0:
            expect.append(label)
    assert [o.label for o in g.objects] == expect
    assert g.meta["calls"]["loglikelihood"] == 4
    assert g.meta["filtered"].get("presence", {}).get("objects", 0) == 4 - len(expect)


class _ScriptedObjectsModelRest:
    """Object lists from a script (so every later question gets asked), all other answers from the tiny model."""

    def __init__(self, script: ScriptedBackend, model):
        self.script, self.model, self.model_id = script, model, "scripted-objects+tiny"

    def generate(self, prompts, params):
        out = []
        for p in prompts:
            src = self.script if "List every distinct" in p.text else self.model
            out += src.generate([p], params)
        return out

    def loglikelihood(self, prompt, continuations):
        return self.model.loglikelihood(prompt, continuations)


def test_every_question_survives_the_tiny_models_nonsense(tiny_options):
    from stepkit.models import get_backend

    model = get_backend("tiny", **tiny_options)
    script = ScriptedBackend({"rules": [{"regex": "List every distinct", "answers": ['{"objects": ["person", "cup"]}']}]})
    rng = np.random.default_rng(1)
    clips = [ClipFrames(t, t + 2.0, [Keyframe(t + 0.5, rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)),
                                     Keyframe(t + 1.5, rng.integers(0, 255, (56, 56, 3), dtype=np.uint8))])
             for t in (0.0, 2.0)]
    cfg = VLMInducerConfig(samples=2, max_new_tokens=16, text_max_new_tokens=12, keep_unsure=True, seed=3)
    g = induce_from_clips(_ScriptedObjectsModelRest(script, model), clips, video_id="n", fps=10, duration=4.0, config=cfg)
    assert graph_problems(g.to_dict()) == []
    # Objects came from the script; unreadable presence answers were kept (keep_unsure), so every later
    # question (kind, attributes, relation, motion, identity, event) went to the random model.
    assert [(o.label, o.clip) for o in g.objects] == [("person", "c1"), ("cup", "c1"), ("person", "c2"), ("cup", "c2")]
    asked = {k.split("/")[0] for k in g.meta["rejects"]}
    assert {"presence_object", "kind", "attributes", "relation", "motion", "identity"} <= asked
    assert (g.relations, g.actions, g.references) == ([], [], [])  # nothing readable came back
    assert all(o.kind == "dynamic" for o in g.objects)  # no readable vote: the default
    # 4 narratives + 4 object lists + 8 presence + 8 kinds + 8 attribute lists + 4 pairs + 4 motion steps
    # (every node dynamic) + 2 identity questions + 2 events; n = 2 for the structured ones.
    assert g.meta["calls"]["prompts"] == 44
    assert g.meta["calls"]["completions"] == (4 + 8 + 2) + 2 * (4 + 8 + 8 + 4 + 4 + 2)
