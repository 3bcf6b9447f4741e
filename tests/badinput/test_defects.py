"""One test per defect of issue 15 (the rest live in tests/kill/): each failed before its fix.

Numbers are the issue's. #1, #2, #12, #14 and the server parts of #7 belong to the model and
evaluation code and are tested there.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepkit.cli import app


def run(*argv: str):
    res = CliRunner().invoke(app, list(argv))
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


@pytest.fixture
def qa(world, tmp_path) -> Path:
    out = tmp_path / "qa"
    r = run("generate", str(world / "graphs"), "--out", str(out), "--per-video", "3")
    assert r.exit_code == 0, r.output
    return out


# 6 -------------------------------------------------------------------------------------------

def test_06_outputs_honour_the_umask(world, tmp_path, qa):
    want = 0o666 & ~_umask()
    assert want != 0o600
    graphs = tmp_path / "g"
    assert run("induce", str(world / "videos"), "--out", str(graphs)).exit_code == 0
    for p in [*graphs.glob("*.json"), qa / "qa.jsonl", qa / "summary.json"]:
        assert p.stat().st_mode & 0o777 == want, (p, oct(p.stat().st_mode))


def test_06_atomic_writer_keeps_an_existing_files_mode(tmp_path):
    from stepkit.io import atomic_write_text

    p = tmp_path / "x.txt"
    p.write_text("a")
    p.chmod(0o640)
    atomic_write_text(p, "b")
    assert p.read_text() == "b" and p.stat().st_mode & 0o777 == 0o640


# 7 -------------------------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("verb", [["graph", "validate"], ["graph", "show"]])
def test_07_json_nested_100000_deep_is_an_error_and_the_batch_goes_on(world, tmp_path, verb):
    folder = tmp_path / "g"
    shutil.copytree(world / "graphs", folder)
    (folder / "deep.json").write_text(DEEP)
    r = run(*verb, str(folder / "deep.json"))
    assert r.exit_code == 1 and "deep.json" in r.output and "nested more than 1024 levels" in r.output
    if verb[1] == "validate":
        r = run("graph", "validate", str(folder))
        assert r.exit_code == 1 and "3/4 graph files valid" in r.output


@pytest.mark.parametrize("verb", ["verify", "show", "export"])
def test_07_non_utf8_qa_jsonl(world, tmp_path, verb):
    bad = tmp_path / "q" / "qa.jsonl"
    bad.parent.mkdir()
    bad.write_bytes(b'{"id": "r1", "question": "caf\xe9?"}\n')
    argv = {"verify": ["qa", "verify", str(bad), str(world / "graphs")], "show": ["qa", "show", str(bad)],
            "export": ["qa", "export", str(bad), "--format", "llava", "--out", str(tmp_path / "e")]}[verb]
    r = run(*argv)
    assert r.exit_code == 1 and "qa.jsonl:1" in r.output and "UTF-8" in r.output


def test_07_qa_jsonl_holding_a_json_array(world, tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('[{"id": "r1"}]\n')
    r = run("qa", "show", str(bad))
    assert r.exit_code == 1 and "qa.jsonl:1" in r.output and "a Q/R/A record is a JSON object" in r.output


def test_07_world_size_is_bounded(tmp_path):
    r = run("world", "--out", str(tmp_path / "w"), "--size", "100000x100000", "--videos", "1")
    assert r.exit_code == 1 and "100000x100000" in r.output and "at most" in r.output
    assert not (tmp_path / "w").exists()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.slow
def test_07_optimizer_pt_that_is_not_weights(tmp_path, qa, world):
    pytest.importorskip("torch")
    from stepkit.models.tiny import tiny_model_path

    model = tiny_model_path("qwen2-vl", cache_dir=tmp_path / "tiny")
    out = tmp_path / "run"
    r = run("train", str(qa), "--model", str(model), "--out", str(out), "--max-steps", "2", "--stop-after", "1",
            "--save-steps", "1", "--num-frames", "2", "--quiet", "--videos-dir", str(world / "graphs"))
    assert r.exit_code == 0, r.output
    (out / "checkpoint-1" / "optimizer.pt").write_bytes(pickle.dumps(_Evil()))
    r = run("train", "--out", str(out), "--resume")
    assert r.exit_code == 1 and "checkpoint-1/optimizer.pt" in r.output and "refused to load it" in r.output
    assert "weights_only=False" not in r.output


# 8 -------------------------------------------------------------------------------------------

def test_08_record_schema_version_is_checked(world, qa, tmp_path):
    lines = (qa / "qa.jsonl").read_text().splitlines()
    d = json.loads(lines[0])
    d["schema_version"] = 999
    bad = tmp_path / "b" / "qa.jsonl"
    bad.parent.mkdir()
    bad.write_text(json.dumps(d) + "\n" + "\n".join(lines[1:]) + "\n")
    r = run("qa", "verify", str(bad), str(world / "graphs"))
    assert r.exit_code == 1 and "qa.jsonl:1" in r.output and "unknown schema version 999" in r.output
    r = run("train", str(bad), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "run"))
    assert r.exit_code == 1 and "unknown schema version 999" in r.output


# 9 -------------------------------------------------------------------------------------------

def test_09_import_star_question_file(tmp_path):
    f = tmp_path / "val_dev.json"
    f.write_text(json.dumps([{"qid": "Interaction_T1_1", "question": "What?", "a0": "x", "a1": "y", "a2": "z",
                              "a3": "w", "answer": "x", "video": "V1", "start": 0, "end": 3}]))
    r = run("import", "star", str(f), "--out", str(tmp_path / "g"))
    assert r.exit_code == 1 and "val_dev.json" in r.output
    assert "STAR questions" in r.output and "question file" in r.output and "situations" in r.output


# 10 ------------------------------------------------------------------------------------------

def test_10_generate_with_no_records_exits_non_zero(tmp_path):
    g = tmp_path / "graphs"
    g.mkdir()
    (g / "a.json").write_text("{}")
    r = run("generate", str(g), "--out", str(tmp_path / "qa"))
    assert r.exit_code == 1 and "no records written" in r.output


def test_10_induce_on_a_folder_named_like_a_video(tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    r = run("induce", str(tmp_path / "dir.mp4"), "--out", str(tmp_path / "g"))
    assert r.exit_code == 1 and "dir.mp4" in r.output and "no video files" in r.output


# 11 ------------------------------------------------------------------------------------------

# The lock protocol as another process sees it (stepkit.locks): flock on OUT/.stepkit.lock, holder as JSON.
HOLD = """
import fcntl, json, os, sys, time
os.makedirs(sys.argv[1], exist_ok=True)
fd = os.open(os.path.join(sys.argv[1], ".stepkit.lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "command": "stepkit holder", "started": time.time()}).encode())
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def held(tmp_path):
    """``held(folder)``: another process holds the lock of ``folder`` until the test ends."""
    procs = []

    def hold(folder: Path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"  # waits for the lock, no clock involved
        return p

    yield hold
    for p in procs:
        p.stdin.close()
        p.wait(timeout=30)


@pytest.mark.parametrize("verb", ["induce", "generate", "world", "train", "eval", "import"])
def test_11_a_second_writer_is_refused_naming_the_holder(world, tmp_path, qa, held, verb):
    out = tmp_path / "out"
    holder = held(out)
    argv = {
        "induce": ["induce", str(world / "videos"), "--out", str(out)],
        "generate": ["generate", str(world / "graphs"), "--out", str(out)],
        "world": ["world", "--out", str(out), "--videos", "1"],
        "train": ["train", str(qa), "--model", str(tmp_path / "m"), "--out", str(out)],
        "eval": ["eval", "--backend", "tiny", "--benchmark", "stepkit", "--data", str(qa), "--out", str(out)],
        "import": ["import", "star", str(tmp_path), "--out", str(out)],
    }[verb]
    r = run(*argv)
    assert r.exit_code == 1, r.output
    assert "another stepkit run is writing into this folder" in r.output and f"pid {holder.pid}" in r.output
    assert sorted(p.name for p in out.iterdir()) == [".stepkit.lock"]  # nothing written beside the holder


def test_11_selftrain_folder_is_locked(tmp_path, held):
    import yaml

    cfg = tmp_path / "st.yaml"
    cfg.write_text(yaml.safe_dump({"rounds": 1, "world": {"videos": 1}, "train": {"model": "tiny:qwen2-vl"}}))
    holder = held(tmp_path / "run")
    r = run("selftrain", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert r.exit_code == 1 and f"pid {holder.pid}" in r.output


def test_11_lock_is_released_and_leaves_nothing(tmp_path, world):
    out = tmp_path / "g"
    assert run("induce", str(world / "videos"), "--out", str(out)).exit_code == 0
    assert not (out / ".stepkit.lock").exists()
    lines = (out / ".manifest.jsonl").read_text().splitlines()
    assert run("induce", str(world / "videos"), "--out", str(out)).exit_code == 0
    assert (out / ".manifest.jsonl").read_text().splitlines() == lines  # nothing redone


# 13 ------------------------------------------------------------------------------------------

def test_13_video_probe_on_a_huge_y4m(tmp_path):
    f = tmp_path / "huge.y4m"
    f.write_bytes(b"YUV4MPEG2 W100000 H100000 F30:1 Ip C420jpeg\nFRAME\n" + bytes(1000))
    r = run("video", "probe", str(f))
    assert r.exit_code == 1 and "huge.y4m" in r.output and "100000x100000" in r.output
    assert "busy" not in r.output


def test_13_numeric_schema_version(world, tmp_path):
    d = json.loads(sorted((world / "graphs").glob("*.json"))[0].read_text())
    d["schema_version"] = 1.0
    (tmp_path / "g.json").write_text(json.dumps(d))
    r = run("graph", "validate", str(tmp_path / "g.json"))
    assert r.exit_code == 1 and 'write "1.0" in quotes' in r.output and "reads 1.0)" not in r.output


def test_13_train_config_unknown_field_names_the_file(qa, tmp_path):
    cfg = tmp_path / "mine.json"
    cfg.write_text('{"max_stepz": 3}')
    r = run("train", str(qa), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "run"), "--config", str(cfg))
    assert r.exit_code == 1 and "mine.json" in r.output and "max_stepz" in r.output


def test_13_corrupt_config_json_is_named(qa, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": ')
    r = run("train", str(qa), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "run"))
    assert r.exit_code == 1 and "config.json" in r.output and "invalid JSON" in r.output
    assert "cannot tell the model family" not in r.output


def test_13_eval_unknown_backend(qa, tmp_path):
    r = run("eval", "--backend", "bogus", "--benchmark", "stepkit", "--data", str(qa), "--out", str(tmp_path / "e"))
    assert r.exit_code == 1 and "--backend 'bogus'" in r.output and "unknown backend" in r.output
    assert "video" not in r.output.lower()
