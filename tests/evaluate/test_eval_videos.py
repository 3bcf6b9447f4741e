"""Resolving benchmark videos under a root; missing videos fail fast, before any model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.evaluate.items import EvalItem, MissingVideosError, resolve_videos


def _item(i: int, video: str) -> EvalItem:
    return EvalItem(id=f"q{i}", video=video, question="q?", answer="a")


def test_resolution_rules(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    (root / "1025").mkdir(parents=True)
    for name in ("plain.mp4", "clip.webm", "1025/4010069381.mp4"):
        (root / name).write_bytes(b"x")
    items = [_item(0, "plain.mp4"), _item(1, "clip"), _item(2, "4010069381"), _item(3, "../elsewhere/plain.mp4")]
    out = resolve_videos(items, root)
    assert [Path(it.video_path).relative_to(root).as_posix() for it in out] == [
        "plain.mp4", "clip.webm", "1025/4010069381.mp4", "plain.mp4"]


def test_missing_videos_counted_and_named(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    (root / "v0.mp4").write_bytes(b"x")
    items = [_item(i, f"v{i}") for i in range(9)] + [_item(9, "v3")]
    with pytest.raises(MissingVideosError) as err:
        resolve_videos(items, root)
    msg = str(err.value)
    assert "8 of 9 videos not found" in msg and "9 questions" in msg
    assert str(root / "v1") in msg and str(root / "v5") in msg and str(root / "v6") not in msg


def _bare_names(qa: Path, out: Path) -> Path:
    """A copy of a Q/R/A file whose records name their videos by file name only."""
    lines = []
    for line in qa.read_text().splitlines():
        d = json.loads(line)
        d["video"] = Path(d["video"]).name if d.get("video") else None
        lines.append(json.dumps(d))
    out.mkdir(parents=True, exist_ok=True)
    (out / "qa.jsonl").write_text("\n".join(lines) + "\n")
    return out / "qa.jsonl"


def test_cli_fails_fast_on_missing_videos(world_split, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(world_split["videos"], partial)
    removed = sorted(partial.glob("*.mp4"))[:2]
    for p in removed:
        p.unlink()
    qa = _bare_names(world_split["qa"], tmp_path / "qa")
    # a model path that does not exist: the video check must fail before any model is touched
    res = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "no-model"), "--benchmark", "stepkit",
                                   "--data", str(qa), "--videos", str(partial),
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    out = " ".join(res.output.split())
    assert "2 of 3 videos not found" in out
    assert removed[0].stem in out and removed[1].stem in out
    assert not (tmp_path / "run").exists()


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["eval"])
    assert res.exit_code == 0 and "compare" in res.output and "export-lmms" in res.output
    res = runner.invoke(app, ["eval", "--benchmark", "star"])
    assert res.exit_code == 1 and "--data" in res.output and "--out" in res.output
    res = runner.invoke(app, ["eval", "--benchmark", "nope", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "unknown benchmark" in res.output
