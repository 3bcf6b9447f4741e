"""Induction at scale against a real loopback HTTP server (the simulated GPU server).

Many videos in flight give the graphs of a sequential run, byte for byte; cost is counted in the
summary; ``--estimate`` counts requests without a model; a bad endpoint fails once, up front.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "video"))
from vidutil import write_video  # noqa: E402

from stepkit.cli import app  # noqa: E402
from stepkit.induce.runner import run_induce  # noqa: E402
from stepkit.induce.vlm import VLMInducer  # noqa: E402
from stepkit.models.sim_server import SimServer, SimServerConfig  # noqa: E402

CFG = {"split": "uniform", "clip_seconds": 1.0, "keyframes_per_clip": 2, "image_size": 32, "max_objects": 3}


def _clip(seed: int, seconds: float = 2.0, fps: int = 10) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    frames = []
    for i in range(int(seconds * fps)):
        f = base.copy()
        x = (4 * i) % 48
        f[10:26, x:x + 16] = (220, 30, 30)
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("scale_videos")
    for i in range(5):
        write_video(d / f"v{i}.mp4", _clip(i))
    return d


@pytest.fixture(scope="module")
def sim():
    with SimServer(SimServerConfig(time_scale=0.02)) as s:
        yield s


def _graphs(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("v*.json"))}


def test_many_in_flight_gives_the_sequential_graphs_and_counts_cost(videos, sim, tmp_path):
    seq = run_induce(videos, tmp_path / "seq", VLMInducer(endpoint=sim.url, config={**CFG, "in_flight": 1}))
    before = sim.stats()["busy_max"]
    par_inducer = VLMInducer(endpoint=sim.url, config={**CFG, "in_flight": 13})  # not a multiple of batch_size
    par = run_induce(videos, tmp_path / "par", par_inducer)
    assert seq["induced"] == par["induced"] == 5 and not par["failures"]
    assert _graphs(tmp_path / "seq") == _graphs(tmp_path / "par") and len(_graphs(tmp_path / "seq")) == 5
    assert par_inducer.parallel_videos == 13 and sim.stats()["busy_max"] > max(before, 5)  # really concurrent
    assert seq["config_sha256"] == par["config_sha256"]  # in_flight and cache are not part of the resume key
    for key in ("requests", "completions", "prompt_tokens", "completion_tokens"):
        assert seq["cost"][key] == par["cost"][key] > 0
        assert sum(v["cost"][key] for v in par["per_video"]) == par["cost"][key]
    assert seq["cost"]["completions"] > seq["cost"]["requests"]  # samples ride in one request (n)
    assert par["cost"]["seconds_per_video"] > 0 and par["cost"]["videos_per_minute"] > 0
    # with a response cache: concurrent and sequential fill it alike; a rerun answers from it
    cached = {**CFG, "cache": str(tmp_path / "c.sqlite")}
    first = run_induce(videos, tmp_path / "c1", VLMInducer(endpoint=sim.url, config={**cached, "in_flight": 32}))
    assert first["cost"]["cache_misses"] == first["cost"]["requests"] == seq["cost"]["requests"]
    again = run_induce(videos, tmp_path / "c2", VLMInducer(endpoint=sim.url, config={**cached, "in_flight": 1}))
    assert again["cost"]["requests"] == 0 and again["cost"]["cache_hits"] == first["cost"]["cache_misses"]
    # resume: nothing to do, nothing sent
    rerun = run_induce(videos, tmp_path / "par", VLMInducer(endpoint=sim.url, config={**CFG, "in_flight": 32}))
    assert rerun["skipped"] == 5 and rerun["cost"]["requests"] == 0


def test_prompts_put_the_image_first(videos, sim, tmp_path):
    from stepkit.models import Prompt, SamplingParams, get_backend

    b = get_backend("openai", endpoint=sim.url)
    msgs = b.messages(Prompt("what?", images=[np.zeros((8, 8, 3), np.uint8)], system="sys"))
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert [p["type"] for p in msgs[1]["content"]] == ["image_url", "text"]
    assert b.generate([Prompt("Is there a cup in the image? Answer yes or no.")], SamplingParams(max_new_tokens=4))[0][0] \
        in ("Yes.", "No.")
    # many questions about one image: a prefix cache serves the image to all but the first
    with SimServer(SimServerConfig(time_scale=0.001)) as s:
        c = get_backend("openai", endpoint=s.url)
        img = np.full((56, 56, 3), 7, np.uint8)
        c.generate([Prompt(f"question {i}?", images=[img], system="sys") for i in range(6)], SamplingParams(max_new_tokens=4))
        st = s.stats()
        assert st["prefix_cached_tokens"] >= 5 * 256 > st["prefix_cached_tokens_text_first"]


class _CountingServer:
    """Answers every request with HTTP 500 and counts them."""

    def __init__(self):
        self.hits = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _fail(self):
                outer.hits += 1
                self.send_response(500)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _fail

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_an_invalid_endpoint_fails_once_up_front(videos, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["induce", str(videos), "--out", str(tmp_path / "o"), "--backend", "vlm",
                              "--endpoint", "ftp://x"])
    assert res.exit_code != 0 and res.exception is None or isinstance(res.exception, SystemExit)
    out = res.output
    assert "ftp://x" in out and out.count("ftp://x") == 1 and "Traceback" not in out
    assert not (tmp_path / "o" / "summary.json").exists()  # no video was tried


def test_an_unusable_server_fails_once_before_any_video(videos, tmp_path):
    s = _CountingServer()
    try:
        cfg = tmp_path / "vlm.yaml"
        cfg.write_text(json.dumps({**CFG, "backend_options": {"max_retries": 0}}))
        res = CliRunner().invoke(app, ["induce", str(videos), "--out", str(tmp_path / "o"), "--backend", "vlm",
                                       "--endpoint", s.url, "--config", str(cfg)])
        assert res.exit_code != 0 and "Traceback" not in res.output
        assert s.url in res.output and "HTTP 500" in res.output
        assert s.hits == 1  # one GET /models for five videos, not one per video
        assert not (tmp_path / "o" / "summary.json").exists() and res.output.count("HTTP 500") == 1
    finally:
        s.close()


def test_estimate_counts_requests_without_a_model(videos, tmp_path):
    from stepkit.induce.estimate import estimate_induce

    cfg = {**CFG, "max_clips": 1, "samples": 5}
    est = estimate_induce(videos / "v0.mp4", VLMInducer(endpoint="http://127.0.0.1:9/v1", config=cfg), objects=3)
    row = est["per_video"][0]
    assert row["clips"] == 1 and row["keyframes"] == 2
    # F keyframes, O objects, P = O(O-1)/2 pairs, C clips, D dynamic objects:
    # narrative F + objects F + presence F*O + kinds F*O + attributes F*O + relations F*P
    # + relation presence F*P + events C + motions D*(K-1) + motion presence D*(K-1)
    F, O, P, C, D, K = 2, 3, 3, 1, 1, 2
    assert row["requests"] == F + F + 3 * F * O + 2 * F * P + C + 2 * D * (K - 1) == 37
    sampled = F + F * O + F * O + F * P + D * (K - 1)  # requests carrying n=5 samples
    assert row["completions"] == row["requests"] + 4 * sampled
    res = CliRunner().invoke(app, ["induce", str(videos), "--out", str(tmp_path / "e"), "--backend", "vlm",
                                   "--endpoint", "http://127.0.0.1:9/v1", "--estimate", "--objects", "3"])
    assert res.exit_code == 0, res.output
    assert "requests" in res.output and "prompt tokens" in res.output
    assert not (tmp_path / "e").exists()


def test_the_sim_server_queues_beyond_its_capacity():
    import concurrent.futures

    from stepkit.models import Prompt, SamplingParams, get_backend

    with SimServer(SimServerConfig(capacity=4, time_scale=0.05)) as s:
        b = get_backend("openai", endpoint=s.url, concurrency=16)
        prompts = [Prompt(f"Is there a cup {i} in the image? Answer yes or no.") for i in range(12)]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda ps: b.generate(ps, SamplingParams(n=2, temperature=0.5, max_new_tokens=4)),
                                 [prompts[:6], prompts[6:]]))
        st = s.stats()
        assert st["requests"] == 12 and st["sequences"] == 24 and st["busy_max"] == 4  # 2 requests x n=2 at once
        assert st["queue_seconds"] > 0 and all(len(a) == 2 for o in outs for a in o)
        assert outs[0] == b.generate(prompts[:6], SamplingParams(n=2, temperature=0.5, max_new_tokens=4))


def test_bench_sim_smoke():
    from stepkit.induce.bench_sim import bench_sim, sim_markdown

    r = bench_sim(in_flight=(1, 4), servers=(1, 2), capacity=8, time_scale=0.02, seconds=1.0, distinct=2,
                  config={"max_clips": 1})
    assert [(x["servers"], x["in_flight"]) for x in r["rows"]] == [(1, 1), (1, 4), (2, 16)]
    assert all(x["graphs_identical"] and x["failed"] == 0 and x["capacity_videos_per_min"] > 0 for x in r["rows"])
    text = sim_markdown(r)
    assert "| 2 | 16 |" in text and "byte-identical to the sequential run at every point: yes" in text


def test_kill_during_a_concurrent_run_then_resume(videos, tmp_path, wait_for):
    import signal
    import subprocess

    from stepkit.induce.runner import read_manifest

    with SimServer(SimServerConfig(time_scale=0.3)) as slow:
        ref = run_induce(videos, tmp_path / "ref", VLMInducer(endpoint=slow.url, config={**CFG, "in_flight": 8}))
        cfg = tmp_path / "vlm.yaml"
        cfg.write_text(json.dumps({**CFG, "in_flight": 8, "videos_in_flight": 3}))
        cmd = [sys.executable, "-m", "stepkit.cli", "induce", str(videos), "--out", str(tmp_path / "o"),
               "--backend", "vlm", "--endpoint", slow.url, "--config", str(cfg)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: len(read_manifest(tmp_path / "o")) >= 1, proc, 120, "the first graph")
            proc.send_signal(signal.SIGKILL)  # other videos are in flight at this moment
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        done = len(read_manifest(tmp_path / "o"))
        assert 1 <= done < 5
        res = CliRunner().invoke(app, ["induce", str(videos), "--out", str(tmp_path / "o"), "--backend", "vlm",
                                       "--endpoint", slow.url, "--config", str(cfg)])
        assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["skipped"] == done and summary["induced"] == 5 - done
    assert _graphs(tmp_path / "o") == _graphs(tmp_path / "ref")
    assert ref["cost"]["requests"] > summary["cost"]["requests"] > 0  # only the unfinished videos were asked again
    assert not [p for p in (tmp_path / "o").rglob("*") if ".tmp" in p.name]
