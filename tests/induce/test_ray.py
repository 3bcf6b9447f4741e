"""`stepkit induce --executor ray` on a real 2-CPU Ray cluster that talks over 127.0.0.1 only.

The cluster is started with ``ray start --head`` in its own temp dir and stopped by killing its
processes (found by that dir) at the end. The run must give the graphs and summary of a
one-process run, also when a Ray worker is SIGKILLed in the middle, and a rerun resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_scaling import CFG, _clip  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "video"))
from vidutil import write_video  # noqa: E402

from stepkit.induce.runner import MANIFEST, read_manifest, run_induce  # noqa: E402
from stepkit.induce.vlm import VLMInducer  # noqa: E402
from stepkit.models.sim_server import SimServer, SimServerConfig  # noqa: E402

ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1",
       "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(d.name)] = (ppid, cmd)
    return out


def _cluster_pids(temp_dir: str) -> set[int]:
    """Processes of the cluster in ``temp_dir``: those naming it, and their descendants."""
    procs = _procs()
    pids = {p for p, (_, cmd) in procs.items() if temp_dir in cmd}
    grew = True
    while grew:
        more = {p for p, (pp, _) in procs.items() if pp in pids and p not in pids}
        pids |= more
        grew = bool(more)
    return pids


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP socket ``ss -ltnp`` shows for ``pids``."""
    text = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        for chunk in parts[5].split("pid=")[1:]:
            pid = int(chunk.split(",")[0])
            if pid in pids:
                found.append((parts[3], pid))
    return found


def _loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@pytest.fixture(scope="module")
def cluster():
    temp_dir = tempfile.mkdtemp(prefix="stk-ray-", dir="/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_bin = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    # Ray's token authentication, with the token in the cluster's own dir (not ~/.ray)
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    subprocess.run([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", temp_dir,
                    "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=180)
    try:
        yield {"address": f"127.0.0.1:{port}", "temp_dir": temp_dir, "env": env}
    finally:
        pids = _cluster_pids(temp_dir)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + (3 if sig == signal.SIGTERM else 10)
            while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
                time.sleep(0.1)  # teardown only: the processes are not ours to wait() on
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def servers():
    a, b = SimServer(SimServerConfig(time_scale=0.5)), SimServer(SimServerConfig(time_scale=0.5))
    yield [a, b]
    a.close()
    b.close()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray_videos")
    for i in range(6):
        write_video(d / f"v{i}.mp4", _clip(10 + i))
    return d


def _graphs(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("v*.json"))}


_TIMING = ("seconds", "seconds_per_video", "videos_per_minute", "retries")


def _comparable(summary: dict) -> dict:
    s = json.loads(json.dumps(summary))
    s.pop("seconds")
    for k in _TIMING:
        s["cost"].pop(k, None)
    for v in s["per_video"]:
        v.pop("seconds")
        v["cost"].pop("retries")
    return s


def _cli(videos: Path, out: Path, servers, cfg: Path, cluster: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stepkit.cli", "induce", str(videos), "--out", str(out), "--backend", "vlm",
           "--config", str(cfg)]
    for s in servers:
        cmd += ["--endpoint", s.url]
    cmd += ["--executor", "ray", "--address", cluster["address"]]
    return subprocess.Popen(cmd, env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_induce_on_ray_matches_one_process_and_survives_a_killed_worker(cluster, servers, videos, tmp_path, wait_for):
    cfg = tmp_path / "vlm.yaml"
    cfg.write_text(json.dumps({**CFG, "in_flight": 8, "videos_in_flight": 2}))
    # one process, the same two endpoints
    local = run_induce(videos, tmp_path / "local", VLMInducer(endpoint=[s.url for s in servers],
                                                             config={**CFG, "in_flight": 8, "videos_in_flight": 2}))
    assert local["induced"] == 6

    proc = _cli(videos, tmp_path / "ray", servers, cfg, cluster)
    try:
        # once the first video is written, SIGKILL one induce actor (a Ray worker process)
        try:
            wait_for(lambda: len(read_manifest(tmp_path / "ray")) >= 1, proc, 150, "the first graph on Ray")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {proc.stdout.read() if proc.poll() is not None and proc.stdout else ''}") from None
        pids = _cluster_pids(cluster["temp_dir"])
        actors = [p for p, (_, cmd) in _procs().items() if p in pids and cmd.startswith("ray::InduceActor")]
        assert len(actors) == 2, [(_procs()[p][1][:40]) for p in pids]
        # the cluster and its workers listen on loopback only
        listening = _listening(pids | {proc.pid})
        assert listening and all(_loopback(a) for a, _ in listening), listening
        os.kill(actors[0], signal.SIGKILL)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert _graphs(tmp_path / "ray") == _graphs(tmp_path / "local") and len(_graphs(tmp_path / "local")) == 6
    ray_summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert _comparable(ray_summary) == _comparable(local)
    assert len((tmp_path / "ray" / MANIFEST).read_text().splitlines()) == 6

    # a rerun on the cluster resumes: nothing to do, no request sent
    before = sum(s.stats()["requests"] for s in servers)
    proc = _cli(videos, tmp_path / "ray", servers, cfg, cluster)
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output
    again = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert again["skipped"] == 6 and again["cost"]["requests"] == 0
    assert sum(s.stats()["requests"] for s in servers) == before


@pytest.mark.slow
def test_a_cpu_inducer_on_ray_matches_one_process(cluster, videos, tmp_path):
    from stepkit.induce.base import get_inducer

    local = run_induce(videos, tmp_path / "local", get_inducer("opencv"))
    cmd = [sys.executable, "-m", "stepkit.cli", "induce", str(videos), "--out", str(tmp_path / "ray"), "--backend",
           "opencv", "--executor", "ray", "--address", cluster["address"]]
    proc = subprocess.run(cmd, env=cluster["env"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _graphs(tmp_path / "ray") == _graphs(tmp_path / "local") and len(_graphs(tmp_path / "local")) == 6
    assert _comparable(json.loads((tmp_path / "ray" / "summary.json").read_text())) == _comparable(local)


@pytest.mark.slow
def test_without_address_a_local_cluster_is_started_and_stopped(videos, tmp_path):
    from stepkit.induce.base import get_inducer

    home_token = Path.home() / ".ray" / "auth_token"
    had_token = home_token.exists()
    local = run_induce(videos, tmp_path / "local", get_inducer("opencv"))
    env = {k: v for k, v in ENV.items() if not k.startswith("RAY_AUTH")}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # stepkit sets it itself
    proc = subprocess.run([sys.executable, "-m", "stepkit.cli", "induce", str(videos), "--out", str(tmp_path / "ray"),
                           "--backend", "opencv", "--executor", "ray"], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _graphs(tmp_path / "ray") == _graphs(tmp_path / "local")
    assert home_token.exists() == had_token  # its token lived in a temp dir, now removed


@pytest.mark.slow
def test_a_local_model_on_ray_matches_one_process(cluster, videos, tmp_path):
    """A vlm inducer with a local model (the tiny random Qwen2.5-VL): one actor per GPU, here one on CPU."""
    from stepkit.induce.base import get_inducer

    opts = {"backend": "tiny", "backend_options": {"family": "qwen2.5-vl", "seed": 0, "cache_dir": str(tmp_path / "tiny")},
            "samples": 2, "keyframes_per_clip": 2, "max_new_tokens": 12, "text_max_new_tokens": 8, "image_size": 32,
            "split": "uniform", "clip_seconds": 2.0, "max_objects": 2}
    few = tmp_path / "few"
    few.mkdir()
    for name in ("v0.mp4", "v1.mp4"):
        (few / name).symlink_to(videos / name)
    local = run_induce(few, tmp_path / "local", get_inducer("vlm", **opts))
    cfg = tmp_path / "vlm.yaml"
    cfg.write_text(json.dumps(opts))
    proc = subprocess.run([sys.executable, "-m", "stepkit.cli", "induce", str(few), "--out", str(tmp_path / "ray"),
                           "--backend", "vlm", "--config", str(cfg), "--executor", "ray", "--address", cluster["address"]],
                          env=cluster["env"], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _graphs(tmp_path / "ray") == _graphs(tmp_path / "local") and len(_graphs(tmp_path / "local")) == 2
    assert _comparable(json.loads((tmp_path / "ray" / "summary.json").read_text())) == _comparable(local)
