"""`stepkit selftrain`: a killed run takes its stage processes with it; killed and resumed = uninterrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from killkit import jsonl_without, stepkit, strays, tree

CONFIG = {
    "rounds": 1,
    "world": {"videos": 2, "seed": 0, "duration": "4", "size": "160x96", "fps": 6},
    "induce": {"backend": "world"},
    "generate": {"per_video": 4, "steps": "1:0.5,2:0.5", "seed": 0},
    "train": {"model": "tiny:qwen2-vl", "max_steps": 2, "save_steps": 1,
              "extra_args": ["--lr", "1e-3", "--num-frames", "2", "--batch-size", "2"]},
    "eval": {"videos": 1, "seed": 1000, "per_video": 4, "steps": "1:0.5,2:0.5", "frames": 2,
             "extra_args": ["--bootstrap", "20"]},
}


def _config(tmp_path: Path, **change) -> Path:
    p = tmp_path / "st.yaml"
    p.write_text(yaml.safe_dump({**CONFIG, **change}))
    return p


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(d.name))
    return pids


def _children(parent: int, word: str) -> list[int]:
    """Live children of ``parent`` whose command line contains ``word``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z" and word in cmd:
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_selftrain_ends_its_stage_and_the_stages_children(tmp_path, wait_for):
    """Issue 15 #4: the stage child used to run on as an orphan and finish its folder."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "stepkit.cli", "selftrain", "--config", str(_config(tmp_path)), "--out", str(run),
           "--threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    found: list[int] = []
    try:
        # the tiny-model stage: long enough (it imports torch) to be killed half-way
        wait_for(lambda: bool(found.extend(_children(proc.pid, "tiny")) or found), proc, 300,
                 "the model stage to start")
        child = found[0]
        os.kill(proc.pid, signal.SIGKILL)  # the parent only: none of its handlers run
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    waiter = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        wait_for(lambda: not _alive(child), waiter, 120, "the stage process to end")
        assert not _group_members(child), "the stage's own children outlived it"
    finally:
        waiter.stdin.close()
        waiter.wait()
    assert not (run / "base_model" / "stepkit_tiny.json").exists()  # killed half-way, not left to finish
    from stepkit.locks import output_lock

    with output_lock(run / "base_model"):  # a rerun can take the stage's folder at once
        pass


@pytest.mark.slow
def test_selftrain_killed_at_several_points_matches_an_uninterrupted_run(tmp_path):
    cfg = _config(tmp_path)
    full, split = tmp_path / "full", tmp_path / "run"
    args = ["selftrain", "--config", str(cfg), "--threads", "1", "--out"]
    # Graphs and records name videos by absolute path: both runs are made in the same folder.
    stepkit(*args, str(split), timeout=900)
    split.rename(full)
    stepkit(*args, str(split), kill_at="stage.start:2")  # the run dies as its 2nd stage starts
    stepkit(*args, str(split), kill_at="stage.start:3")  # … and, resumed, as its 3rd
    r = stepkit(*args, str(split), kill_at="train/io.replace:4", check=False, timeout=900)  # the train stage dies
    assert r.returncode == 1 and "stage train" in r.stderr, r.stderr[-2000:]
    stepkit(*args, str(split), timeout=900)
    assert strays(split) == []
    timing = ("seconds_this_session", "seconds")
    drop = lambda d: {k: v for k, v in d.items() if k not in timing}  # noqa: E731
    a = [json.loads(x) for x in (full / "rounds.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (split / "rounds.jsonl").read_text().splitlines()]
    for ra, rb in zip(a, b):
        ra.pop("model"), rb.pop("model")
        if "train" in ra:
            ra["train"], rb["train"] = drop(ra["train"]), drop(rb["train"])
        if "graphs" in ra:
            for r in (ra, rb):
                r["graphs"] = {k: v for k, v in r["graphs"].items() if k not in ("induced", "skipped")}
    assert a == b and len(a) == 2
    def data(root: Path, rel: str) -> bytes:
        return (root / rel).read_bytes()

    for rel in ("heldout/qa/qa.jsonl", "round_1/qa/qa.jsonl", "round_1/train/model.safetensors",
                "round_0/eval/predictions.jsonl", "round_1/eval/predictions.jsonl"):
        assert data(full, rel) == data(split, rel), rel
    graphs = lambda rel: rel.endswith(".json") and not rel.startswith(".") and rel != "summary.json"  # noqa: E731
    assert {k: v for k, v in tree(full / "round_1" / "graphs").items() if graphs(k)} == \
        {k: v for k, v in tree(split / "round_1" / "graphs").items() if graphs(k)}
    assert jsonl_without(full / "round_1" / "train" / "loss_log.jsonl", "timestamp") == \
        jsonl_without(split / "round_1" / "train" / "loss_log.jsonl", "timestamp")
    for rel in ("round_1/train/checkpoint-1", "round_1/train/checkpoint-2"):
        assert tree(full / rel) == tree(split / rel), rel  # killed half-way, checkpoint-1 was made again
