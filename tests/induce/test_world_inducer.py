"""The world perceiver recovers world graphs from pixels alone."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from stepkit.errors import ConfigError, VideoError
from stepkit.graph import graph_problems, load_graph
from stepkit.graph.metrics import count_matches, metrics_from_counts
from stepkit.induce import get_inducer
from stepkit.induce.world import WorldInducer


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Four 10-second world videos (seed 5; two of them with a camera cut)."""
    from stepkit.world import render_world

    root = tmp_path_factory.mktemp("world_for_inducer")
    render_world(root, videos=4, seed=5, duration=10.0, workers=2)
    return root


@pytest.fixture(scope="module")
def induced(world: Path):
    """(ground truth, prediction, seconds spent inducing) per video; videos copied away from their graphs."""
    blind = world / "blind"
    blind.mkdir()
    ind = WorldInducer()
    out = []
    for g in sorted((world / "graphs").glob("*.json")):
        gt = load_graph(g)
        video = blind / Path(gt.video).name  # no ground truth beside it
        shutil.copy(world / "graphs" / gt.video, video)
        t = time.perf_counter()
        pred = ind.induce(video, gt.video_id)
        out.append((gt, pred, time.perf_counter() - t))
    return out


def test_recovers_relations_actions_and_cuts(induced):
    totals: dict[str, int] = {}
    for gt, pred, _ in induced:
        for k, v in count_matches(pred, gt).items():
            totals[k] = totals.get(k, 0) + v
    m = metrics_from_counts(totals)
    assert totals["gt_cuts"] >= 1 and totals["gt_triplets"] >= 30 and totals["gt_actions"] >= 8
    assert m["object_recall"] >= 0.95
    assert m["triplet_precision"] >= 0.85 and m["triplet_recall"] >= 0.85
    assert m["action_recall"] >= 0.8
    assert m["cut_f1"] == 1.0


def test_output_is_valid_and_faster_than_real_time(induced):
    for gt, pred, seconds in induced:
        assert graph_problems(pred.to_dict()) == []
        assert (pred.num_frames, pred.fps, pred.width, pred.height) == (gt.num_frames, gt.fps, gt.width, gt.height)
        assert abs(pred.duration - gt.duration) < 1e-6
        assert seconds < gt.duration
        assert pred.meta["inducer"]["backend"] == "world"


def test_same_video_same_graph(world: Path, induced):
    gt, pred, _ = induced[0]
    again = WorldInducer().induce(world / "blind" / Path(gt.video).name, gt.video_id)
    assert again.to_dict() == pred.to_dict()


def test_registry_and_options():
    assert isinstance(get_inducer("world"), WorldInducer)
    assert get_inducer("world", hand_tol=3.0).config()["hand_tol"] == 3.0
    with pytest.raises(ConfigError, match="unknown option"):
        get_inducer("world", nonsense=1)


def test_unreadable_inputs_raise_video_errors(tmp_path: Path):
    ind = WorldInducer()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    for path, words in ((tmp_path / "missing.mp4", "no such"), (empty, "empty"), (text, "cannot decode")):
        with pytest.raises(VideoError, match=words) as exc:
            ind.induce(path, "x")
        assert str(path) in str(exc.value)
