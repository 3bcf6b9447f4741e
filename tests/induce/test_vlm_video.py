"""The inducer on a real video file: splitting, keyframe times and graph timing, with recorded answers."""

from __future__ import annotations

import numpy as np
import pytest

from stepkit.errors import StepkitError
from stepkit.graph import graph_problems
from stepkit.induce.vlm import VLMInducer
from stepkit.models.scripted import ScriptedBackend

GENERIC = {
    "model_id": "scripted/generic",
    "rules": [
        {"regex": "Describe the scene", "answers": ["A red box slides across a room."]},
        {"regex": "List every distinct", "answers": ['```json\n{"objects": ["box", "wall"]}\n```']},
        {"regex": r"Look at the box\.\nIs the box static", "answers": ['{"kind": "dynamic"}']},
        {"regex": r"Is the wall static", "answers": ['{"kind": "static"}']},
        {"regex": "Give its visible attributes", "answers": ['{"attributes": {"color": "red"}}']},
        {"regex": "How are they related", "answers": ['{"subject": "box", "predicate": "in front of", "object": "wall"}']},
        {"regex": "What did the box do", "answers": ['{"verb": "move right", "object": null}']},
        {"regex": "What did the wall do", "answers": ['{"verb": "none"}']},
        {"regex": "same individual box", "answers": ["Yes"]},
        {"regex": "same individual wall", "answers": ["No"]},
        {"regex": "Describe the main event", "answers": ["The red box moves to the right."]},
        {"regex": "Answer yes or no", "answers": ["yes"]},
    ],
}


def _render(path, frames: int = 30, cut: int = 15) -> None:
    import av

    c = av.open(str(path), "w")
    s = c.add_stream("mpeg4", rate=10)
    s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
    for i in range(frames):
        f = np.zeros((64, 64, 3), np.uint8)
        f[:] = (20, 20, 120) if i < cut else (230, 210, 40)
        f[20:36, 4 + 2 * (i % cut) : 18 + 2 * (i % cut)] = (220, 30, 30)
        for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()


def test_video_to_graph_with_recorded_answers(tmp_path):
    from stepkit.video import split_video

    video = tmp_path / "slide.mp4"
    _render(video)
    split = split_video(video, keyframes_per_clip=3)
    assert len(split.clips) == 2  # the cut at 1.5 s
    ind = VLMInducer(backend=ScriptedBackend(GENERIC), config={"samples": 2, "keyframes_per_clip": 3})
    g = ind.induce(video, "slide")
    assert graph_problems(g.to_dict()) == []
    assert (g.fps, g.duration, g.num_frames, g.width, g.height) == (10.0, 3.0, 30, 64, 64)
    assert g.video == str(video)
    kts = [[round(k.t, 6) for k in c.keyframes] for c in split.clips]
    assert [c.keyframes for c in g.clips] == kts
    assert [c.description for c in g.clips] == ["The red box moves to the right."] * 2
    # one box and one wall per clip; static wall, dynamic box
    assert [(o.label, o.kind, o.clip) for o in g.objects] == [
        ("box", "dynamic", "c1"), ("wall", "static", "c1"), ("box", "dynamic", "c2"), ("wall", "static", "c2")]
    # attributes and relations span each whole clip (every keyframe agreed)
    for o in g.objects:
        c = next(c for c in g.clips if c.id == o.clip)
        assert [(a.name, a.value, a.t0, a.t1) for a in o.attributes] == [("color", "red", c.t0, c.t1)]
    assert [(r.predicate, r.t0, r.t1) for r in g.relations] == [("in front of", c.t0, c.t1) for c in g.clips]
    # the box's consecutive "move right" steps merge into one action from its first to its last keyframe
    assert [(a.agent, a.verb, a.t0, a.t1) for a in g.actions] == [
        ("o1", "move right", kts[0][0], kts[0][-1]), ("o3", "move right", kts[1][0], kts[1][-1])]
    assert [(r.a, r.b) for r in g.references] == [("o1", "o3")]


def test_unreadable_video_raises_a_stepkit_error(tmp_path):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("hello", encoding="utf-8")
    ind = VLMInducer(backend=ScriptedBackend(GENERIC))
    with pytest.raises(StepkitError):
        ind.induce(bad, "bad")
