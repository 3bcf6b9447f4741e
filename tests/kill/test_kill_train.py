"""`stepkit train`: killed at several points and resumed = one uninterrupted run; resume of a finished run is a no-op."""

from __future__ import annotations

import json

import pytest

from killkit import jsonl_without, strays, stepkit, tree

pytest.importorskip("torch")

TIMING = ("timestamp", "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss",
          "seconds_this_session", "grad_norm")


def _args(qa_dir, model, out):
    return ["train", str(qa_dir), "--model", str(model), "--out", str(out), "--max-steps", "4", "--save-steps", "2",
            "--num-frames", "2", "--lr", "1e-3", "--seed", "1", "--quiet", "--videos-dir", str(qa_dir)]


def test_resume_of_a_finished_run_is_a_no_op(tmp_path, qa_dir, tiny_model, world_dir):
    out = tmp_path / "run"
    stepkit(*_args(qa_dir, tiny_model, out)[:-2], "--videos-dir", str(world_dir / "graphs"))
    before = tree(out)
    r = stepkit("train", "--out", str(out), "--resume")
    assert "4/4 steps, finished" in r.stdout, r.stdout
    assert not (out / "checkpoint-5").exists()
    assert tree(out) == before  # nothing retrained, nothing rewritten
    assert oct((out / "model.safetensors").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    m = os.umask(0o022)
    os.umask(m)
    return m


def test_kill_at_several_points_then_resume_matches_one_run(tmp_path, qa_dir, tiny_model, world_dir):
    videos = ["--videos-dir", str(world_dir / "graphs")]
    full, split = tmp_path / "full", tmp_path / "split"
    stepkit(*_args(qa_dir, tiny_model, full)[:-2], *videos)
    # io.replace 1-2: run config and data manifest; 3-4: checkpoint-2's files; 5-6: checkpoint-4's;
    # 7: the final config (model already saved). Each kill lands in the run the previous one left.
    stepkit(*_args(qa_dir, tiny_model, split)[:-2], *videos, kill_at="io.replace:4")
    assert (split / "checkpoint-2" / "trainer_state.json").is_file()  # cut short: not a checkpoint to resume
    r = stepkit("train", "--out", str(split), "--resume", check=False)
    assert r.returncode == 1 and "nothing to resume" in r.stdout + r.stderr
    # starts afresh: 1-3 config, manifest, the loss log trimmed to step 0; 4-5 checkpoint-2; 6 checkpoint-4's config
    stepkit(*_args(qa_dir, tiny_model, split)[:-2], *videos, kill_at="io.replace:6")
    assert (split / "checkpoint-2" / "data_manifest.json").is_file()
    # resumed from checkpoint-2: 1-3 config, manifest, loss log; 4-5 checkpoint-4; 6 the final config
    stepkit("train", "--out", str(split), "--resume", kill_at="io.replace:6")
    assert (split / "model.safetensors").is_file() and not (split / "summary.json").exists()
    r = stepkit("train", "--out", str(split), "--resume")
    assert "4/4 steps, finished" in r.stdout, r.stdout
    assert not (split / "checkpoint-5").exists()
    assert strays(split) == []
    a, b = tree(full), tree(split)
    assert a["model.safetensors"] == b["model.safetensors"]
    assert jsonl_without(full / "loss_log.jsonl", *TIMING) == jsonl_without(split / "loss_log.jsonl", *TIMING)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (full, split))
    for k in ("global_step", "max_steps", "finished", "final_loss", "manifest"):
        assert sa[k] == sb[k], k
