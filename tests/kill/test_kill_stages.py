"""induce, generate, eval: SIGKILLed at several points, then rerun = one uninterrupted run, no stray files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from killkit import jsonl_without, json_without, stepkit, strays, tree

RUN_FIELDS = ("seconds", "induced", "skipped", "cost", "per_video", "records_per_second", "elapsed", "started",
              "finished", "duration_s", "timestamp")


def _kill_chain(args: list[str], points: list[str]) -> None:
    """Run ``args`` killed at each point in turn (each kill lands in the run the last one left)."""
    for point in points:
        stepkit(*args, kill_at=point)


def test_induce_killed_between_and_inside_graph_writes(tmp_path, world_dir):
    full, split = tmp_path / "full", tmp_path / "split"
    stepkit("induce", str(world_dir / "videos"), "--out", str(full))
    args = ["induce", str(world_dir / "videos"), "--out", str(split)]
    stepkit(*args, kill_at="io.replace:2")  # graph 1 committed, graph 2 half-written
    assert len(list(split.glob(".*.tmp"))) == 1 and not (split / "summary.json").exists()
    _kill_chain(args, ["io.replace:2", "io.replace:1"])  # graph 2 then 3; then the summary itself
    stepkit(*args)
    assert strays(split) == []
    skip = lambda rel: rel in ("summary.json", ".manifest.jsonl")  # noqa: E731
    assert tree(full, skip=skip) == tree(split, skip=skip)  # every graph byte-identical
    assert jsonl_without(full / ".manifest.jsonl", "seconds") == jsonl_without(split / ".manifest.jsonl", "seconds")
    assert json_without(full / "summary.json", *RUN_FIELDS) == json_without(split / "summary.json", *RUN_FIELDS)


def _generate_args(world_dir) -> list[str]:
    return ["generate", str(world_dir / "graphs"), "--per-video", "6", "--seed", "3", "--out"]


@pytest.fixture(scope="module")
def generated(world_dir, tmp_path_factory):
    """The uninterrupted run the killed ones are compared with."""
    full = tmp_path_factory.mktemp("generate-full") / "qa"
    stepkit(*_generate_args(world_dir), str(full))
    return full


@pytest.mark.parametrize("points", [["io.replace:1"], ["io.replace:1", "io.replace:2"]])
def test_generate_killed_while_writing(tmp_path, world_dir, generated, points):
    full, split = generated, tmp_path / "split"
    args = _generate_args(world_dir)
    stepkit(*args, str(split), kill_at=points[0])
    if points[0] == "io.replace:1":  # killed with qa.jsonl complete in its temporary file (issue 15 #5)
        assert [p.name.startswith(".qa.jsonl.") for p in split.glob(".*.tmp")] == [True]
    _kill_chain(args + [str(split)], points[1:])
    stepkit(*args, str(split))
    assert strays(split) == []
    assert (full / "qa.jsonl").read_bytes() == (split / "qa.jsonl").read_bytes()
    assert json_without(full / "summary.json", *RUN_FIELDS) == json_without(split / "summary.json", *RUN_FIELDS)


def test_eval_killed_at_several_points(tmp_path, world_dir, qa_dir, tiny_model):
    pytest.importorskip("torch")
    full, split = tmp_path / "full", tmp_path / "split"
    args = ["eval", "--backend", "hf", "--model", str(tiny_model), "--benchmark", "stepkit", "--data", str(qa_dir),
            "--videos", str(world_dir / "videos"), "--frames", "2", "--bootstrap", "20", "--out"]
    stepkit(*args, str(full))
    _kill_chain(args + [str(split)], ["io.replace:1", "io.replace:3"])
    stepkit(*args, str(split))
    assert strays(split) == []
    assert (full / "predictions.jsonl").read_bytes() == (split / "predictions.jsonl").read_bytes()
    assert json_without(full / "metrics.json", *RUN_FIELDS) == json_without(split / "metrics.json", *RUN_FIELDS)
    assert sorted(tree(full)) == sorted(tree(split))


def test_generate_killed_from_outside_mid_write_leaves_no_temp_after_the_rerun(tmp_path, world_dir, wait_for):
    """Issue 15 #5: a killed generate left its partial ``.qa.jsonl.*.tmp`` for good."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    for i in range(40):  # enough graphs that generation is still writing when the kill comes
        for g in sorted((world_dir / "graphs").glob("world-*.json")):
            shutil.copy(g, graphs / f"{g.stem}-copy{i:02d}.json")
    out = tmp_path / "qa"
    cmd = [sys.executable, "-m", "stepkit.cli", "generate", str(graphs), "--out", str(out), "--per-video", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        wait_for(lambda: any(p.stat().st_size > 0 for p in out.glob(".qa.jsonl.*.tmp")), proc, 120,
                 "generate to be half-way through qa.jsonl")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(out.glob(".qa.jsonl.*.tmp")) and not (out / "qa.jsonl").exists()
    stepkit("generate", str(graphs), "--out", str(out), "--per-video", "20")
    assert strays(out) == []
    assert (out / "qa.jsonl").stat().st_size > 0
