"""Video paths open from wherever a client reads them: `world -> generate -> train / eval` with no
--videos-dir, and every export's paths from the export's folder and from another working directory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from interop_cli import invoke

from stepkit.data.record import load_records


def _client_paths(fmt: str, folder: Path) -> list[str]:
    """The video paths of an export as its client joins them (relative ones against the export's folder)."""
    if fmt == "llava":  # LLaVA-NeXT: os.path.join(--video_folder, item["video"]) with --video_folder = the folder
        return [os.path.join(str(folder), it["video"]) for it in json.loads((folder / "llava.json").read_text())]
    if fmt in ("chatml", "trl"):
        name, key = ("chatml.jsonl", "messages") if fmt == "chatml" else ("trl.jsonl", "prompt")
        out = []
        for line in (folder / name).read_text().splitlines():
            [video] = [c["video"] for m in json.loads(line)[key] for c in m["content"] if c["type"] == "video"]
            out.append(os.path.join(str(folder), video))
        return out
    if fmt == "hf":
        from datasets import load_from_disk

        return [os.path.join(str(folder / "hf"), v) for v in load_from_disk(str(folder / "hf"))["video"]]
    raise AssertionError(fmt)


def test_generate_writes_absolute_normalised_paths(world):
    recs = load_records(world["qa"])
    assert recs
    for r in recs:
        assert os.path.isabs(r.video) and os.path.normpath(r.video) == r.video and os.path.isfile(r.video)
        assert Path(r.video).parent == world["videos"].resolve() or Path(r.video).parent == world["videos"]


@pytest.mark.parametrize("paths", ["absolute", "relative"])
def test_every_export_opens_from_its_folder_and_elsewhere(world, tmp_path, monkeypatch, paths):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for fmt in ("llava", "chatml", "trl", "hf"):
        folder = tmp_path / f"{fmt}-{paths}"
        invoke("qa", "export", world["qa"], "--format", fmt, "--out", folder, "--paths", paths)
        for cwd in (folder, elsewhere):
            monkeypatch.chdir(cwd)
            got = _client_paths(fmt, folder)
            assert got and all(os.path.isfile(p) for p in got), (fmt, paths, cwd, got[:2])
        if paths == "relative":  # the folder moves with its videos
            raw = json.loads((folder / "llava.json").read_text()) if fmt == "llava" else None
            if raw:
                assert all(not os.path.isabs(it["video"]) for it in raw)


def test_relative_records_and_videos_dir(world, tmp_path, monkeypatch):
    """generate --paths relative writes paths relative to qa.jsonl's folder; --videos-dir points a
    generate run at videos moved elsewhere; exports of both open from another folder."""
    moved = tmp_path / "moved_videos"
    shutil.copytree(world["videos"], moved)
    invoke("generate", world["graphs"], "--out", tmp_path / "QA_rel", "--per-video", "2", "--paths", "relative")
    invoke("generate", world["graphs"], "--out", tmp_path / "QA_moved", "--per-video", "2", "--videos-dir", moved)
    rel = load_records(tmp_path / "QA_rel")
    assert all(not os.path.isabs(r.video) and os.path.isfile(tmp_path / "QA_rel" / r.video) for r in rel)
    assert all(r.video.startswith(str(moved)) and os.path.isfile(r.video) for r in load_records(tmp_path / "QA_moved"))
    monkeypatch.chdir(moved)
    invoke("qa", "export", tmp_path / "QA_rel", "--format", "llava", "--out", tmp_path / "E")
    items = json.loads((tmp_path / "E" / "llava.json").read_text())
    assert all(os.path.isabs(it["video"]) and os.path.isfile(it["video"]) for it in items)
    # a relative --videos-dir is the user's (from the working directory), written out absolute
    monkeypatch.chdir(tmp_path)
    invoke("qa", "export", tmp_path / "QA_rel", "--format", "llava", "--out", tmp_path / "E2", "--videos-dir",
           "moved_videos")
    items = json.loads((tmp_path / "E2" / "llava.json").read_text())
    assert all(it["video"].startswith(str(moved) + os.sep) and os.path.isfile(it["video"]) for it in items)
    # a bad path mode is a clear error, not a traceback
    res = __import__("typer.testing", fromlist=["CliRunner"]).CliRunner().invoke(
        __import__("stepkit.cli", fromlist=["app"]).app,
        ["qa", "export", str(tmp_path / "QA_rel"), "--format", "llava", "--paths", "sideways"])
    assert res.exit_code != 0 and "sideways" in res.output and "Traceback" not in res.output


def test_world_generate_train_without_videos_dir(world, tmp_path, monkeypatch):
    """The natural path: `stepkit train QA --model M` finds the generated records' videos with no flag,
    from any working directory."""
    from stepkit.models.tiny import tiny_model_path

    model = tiny_model_path("qwen2.5-vl")
    monkeypatch.chdir(tmp_path)
    invoke("train", world["qa"], "--model", model, "--out", tmp_path / "run", "--max-steps", "2", "--num-frames", "2",
           "--batch-size", "2")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["finished"] and summary["global_step"] == 2 and summary["manifest"]["samples"] > 0


def test_eval_without_videos_flag(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    invoke("eval", "--model", "qwen2.5-vl", "--backend", "tiny", "--benchmark", "stepkit", "--data", world["qa"],
           "--out", tmp_path / "ev", "--limit", "2", "--frames", "2")
    assert (tmp_path / "ev" / "metrics.json").is_file()
