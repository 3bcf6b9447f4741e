"""The synthetic world: determinism, decodable videos that agree with their graphs, valid and rich graphs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from stepkit.errors import ConfigError
from stepkit.graph import graph_problems, load_graph, read_graph_doc
from stepkit.world import render_world, simulate, video_seed, vocab


def _graphs(root: Path):
    return [load_graph(p) for p in sorted((root / "graphs").glob("*.json"))]


def test_render_writes_videos_graphs_and_summary(tiny_world: Path):
    summary = json.loads((tiny_world / "summary.json").read_text())
    assert [v["video_id"] for v in summary["videos"]] == [f"world-s5-{i:03d}" for i in range(3)]
    for row in summary["videos"]:
        assert (tiny_world / row["video"]).is_file()
        graph = load_graph(tiny_world / row["graph"])
        # the graph's `video` is relative to the graph file's folder
        assert (tiny_world / "graphs" / graph.video).resolve() == (tiny_world / row["video"]).resolve()


def test_same_seed_gives_identical_files_whatever_the_worker_count(tiny_world: Path, tiny_params: dict, tmp_path: Path):
    render_world(tmp_path, workers=2, **tiny_params)
    for sub in ("graphs", "videos"):
        a = sorted(p.name for p in (tiny_world / sub).iterdir())
        assert a == sorted(p.name for p in (tmp_path / sub).iterdir())
        for name in a:
            assert (tiny_world / sub / name).read_bytes() == (tmp_path / sub / name).read_bytes(), f"{sub}/{name}"


def test_videos_decode_and_agree_with_their_graphs(tiny_world: Path):
    import av

    for g in _graphs(tiny_world):
        with av.open(str(tiny_world / "graphs" / g.video)) as c:
            st = c.streams.video[0]
            frames = [f for f in c.decode(st)]
            assert st.codec_context.name == "h264"
            assert frames[0].format.name == "yuv420p"
            assert (frames[0].width, frames[0].height) == (g.width, g.height)
            assert len(frames) == g.num_frames
            assert abs(float(c.duration) / 1e6 - g.duration) < 1e-3
            assert abs(float(st.average_rate) - g.fps) < 1e-6


def test_graphs_validate_and_state_only_visible_things(tiny_world: Path):
    for p in sorted((tiny_world / "graphs").glob("*.json")):
        doc = read_graph_doc(p)
        assert graph_problems(doc) == [], p
        g = load_graph(p)
        objs = g.object_map()
        for e in list(g.relations) + list(g.actions):
            assert 0 <= e.t0 <= e.t1 <= g.duration
        for r in g.relations:
            # both ends have a box (they are on screen) somewhere inside the relation's interval
            for oid in (r.subject, r.object):
                times = [b.t for b in objs[oid].track]
                assert any(r.t0 - 0.5 <= t <= r.t1 + 0.5 for t in times), (p.name, r)
            for b in objs[r.subject].track:
                x0, y0, x1, y1 = b.xyxy
                assert 0 <= x0 < x1 <= g.width and 0 <= y0 < y1 <= g.height


def test_graph_words_come_from_the_vocabulary(tiny_world: Path):
    for g in _graphs(tiny_world):
        for o in g.objects:
            assert vocab.OBJECT_CLASSES[o.label] == o.kind
            for a in o.attributes:
                assert a.value in vocab.ATTRIBUTES[a.name]
        assert {r.predicate for r in g.relations} <= set(vocab.PREDICATES)
        assert {a.verb for a in g.actions} <= set(vocab.VERBS)
        assert all(c.description.endswith(".") and c.keyframes for c in g.clips)


def test_frames_use_only_the_palette():
    graph, frames = simulate(3, duration=4, fps=8)
    palette = {tuple(c) for c in vocab.PALETTE.values()}
    n = 0
    for f in frames:
        assert f.shape == (graph.height, graph.width, 3) and f.dtype == np.uint8
        colours = {tuple(c) for c in np.unique(f.reshape(-1, 3), axis=0)}
        assert colours <= palette
        n += 1
    assert n == graph.num_frames == 32


def test_twenty_default_videos_are_rich_enough():
    """The done-when counts of `stepkit world --videos 20 --seed 0`, from the graphs alone (no encoding)."""
    classes, attrs, preds, verbs = Counter(), Counter(), Counter(), Counter()
    two_people = with_cuts = 0
    per_video = []
    same_class_told_apart = 0
    for i in range(20):
        g, _ = simulate(video_seed(0, i), video_id=f"v{i}")
        classes.update(o.label for o in g.objects)
        attrs.update(a.name for o in g.objects for a in o.attributes)
        preds.update(r.predicate for r in g.relations)
        verbs.update(a.verb for a in g.actions)
        two_people += sum(o.label == "person" for o in g.objects) >= 2
        with_cuts += len(g.cuts()) >= 1
        per_video.append(len(g.actions))
        by_label = Counter(o.label for o in g.objects if o.kind == "dynamic" and o.label != "person")
        same_class_told_apart += any(n >= 2 for n in by_label.values())
    assert len(classes) >= 8 and len(attrs) >= 3 and len(preds) >= 5 and len(verbs) >= 6
    assert two_people >= 1 and with_cuts >= 5
    assert np.median(per_video) >= 6
    assert same_class_told_apart >= 3


def test_bad_settings_raise_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="size 321x180"):
        render_world(tmp_path, videos=1, size=(321, 180))
    with pytest.raises(ConfigError, match="fps 0"):
        simulate(0, fps=0)
    with pytest.raises(ConfigError, match="duration"):
        simulate(0, duration=1.0)


def test_cli_world_and_its_errors(tmp_path: Path):
    from typer.testing import CliRunner

    from stepkit.cli import app

    r = CliRunner().invoke(app, ["world", "--out", str(tmp_path / "w"), "--videos", "1", "--seed", "2",
                                 "--duration", "4", "--fps", "8", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "w" / "graphs").glob("*.json"))) == 1
    r = CliRunner().invoke(app, ["world", "--out", str(tmp_path / "x"), "--size", "big"])
    assert r.exit_code == 1 and "--size 'big'" in r.output
