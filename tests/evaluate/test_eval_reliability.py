"""Eval on bad input: video paths confined to their roots, unreadable videos and failed model requests
recorded as errors (not wrong answers) while the rest is scored, a non-zero exit when nothing is."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.evaluate.items import EvalItem, MissingVideosError, resolve_videos


def _item(i: int, video: str) -> EvalItem:
    return EvalItem(id=f"q{i}", video=video, question="q?", answer="a")


def _records(qa: Path) -> list[dict]:
    return [json.loads(line) for line in qa.read_text().splitlines() if line.strip()]


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_paths_outside_the_roots_are_not_opened(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    (root / "inside.mp4").write_bytes(b"x")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "clip.mp4").write_bytes(b"x")
    (outside / "shadow").write_text("root:x:0:0\n")
    for video in ("../elsewhere/clip.mp4", str(outside / "clip.mp4"), str(outside / "shadow"), "../elsewhere/shadow"):
        with pytest.raises(MissingVideosError) as err:
            resolve_videos([_item(0, "inside"), _item(1, video)], root)
        msg = str(err.value)
        assert "1 of 2 videos not found" in msg and "outside" in msg and "--allow-outside-videos" in msg
        assert str(outside) in msg
        # opting out reads it
        got = resolve_videos([_item(1, video)], root, confine=False)
        assert Path(got[0].video_path).resolve().parent == outside.resolve()
    # stepkit's own records: outside video files yes, anything else no
    ok = resolve_videos([_item(1, str(outside / "clip.mp4"))], root, outside_video_files=True)
    assert Path(ok[0].video_path) == outside / "clip.mp4"
    with pytest.raises(MissingVideosError, match="outside"):
        resolve_videos([_item(1, str(outside / "shadow"))], root, outside_video_files=True)
    # the annotation's own folder is a root too; "..": climbing out of it is not
    base = tmp_path / "ann"
    (base / "v").mkdir(parents=True)
    (base / "v" / "a.mp4").write_bytes(b"x")
    assert resolve_videos([_item(0, "v/a.mp4")], None, base=base)[0].video_path == str(base / "v" / "a.mp4")
    with pytest.raises(MissingVideosError, match="outside"):
        resolve_videos([_item(0, "../elsewhere/shadow")], None, base=base)


def test_cli_refuses_a_record_naming_a_file_outside(world_split, tmp_path: Path) -> None:
    secret = tmp_path / "secret" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0\n")
    recs = _records(world_split["qa"])
    recs[1]["video"] = str(secret)
    qa = _write(tmp_path / "qa" / "qa.jsonl", recs)
    res = CliRunner().invoke(app, ["eval", "--backend", "tiny", "--model", str(tmp_path / "no-model"), "--benchmark",
                                   "stepkit", "--data", str(qa), "--videos", str(world_split["videos"]),
                                   "--out", str(tmp_path / "run")])
    out = " ".join(res.output.split())
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert str(secret) in out and "not opened" in out and "--allow-outside-videos" in out
    assert not (tmp_path / "run").exists()


def _scripted(answer: str = "The answer is (A)."):
    from stepkit.models.scripted import ScriptedBackend

    return ScriptedBackend({"model_id": "scripted/a", "rules": [], "default": answer})


def test_unreadable_videos_are_errors_not_wrong_answers(world_split, tmp_path: Path, monkeypatch) -> None:
    import stepkit.evaluate.runner as runner_mod

    videos = tmp_path / "videos"
    videos.mkdir()
    good = sorted(world_split["videos"].glob("*.mp4"))
    (videos / good[0].name).write_bytes(good[0].read_bytes())
    for p in good[1:]:
        (videos / p.name).write_text("this is text, not a video\n")  # text-as-video
    recs = _records(world_split["qa"])
    for r in recs:
        r["video"] = Path(r["video"]).name
    qa = _write(tmp_path / "qa" / "qa.jsonl", recs)
    monkeypatch.setattr(runner_mod, "build_model", lambda cfg: _scripted())
    args = ["eval", "--benchmark", "stepkit", "--data", str(qa), "--videos", str(videos), "--mode", "mc-generate",
            "--frames", "2", "--bootstrap", "100"]
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    rows = _records(tmp_path / "run" / "predictions.jsonl")
    bad = [r for r in rows if r.get("error")]
    n_bad = sum(1 for r in recs if r["video"] != good[0].name)
    assert len(bad) == n_bad and all(r["error_kind"] == "video" for r in bad)
    assert all(good[1].stem in r["error"] or any(p.stem in r["error"] for p in good[1:]) for r in bad)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["errors"] == n_bad and m["overall"]["n"] == len(rows) - n_bad and m["questions"] == len(rows)
    assert m["errors_by_kind"] == {"video": n_bad}
    assert f"errors {n_bad}" in " ".join(res.output.split()) and "not scored" in res.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["scored"] == len(rows) - n_bad and summary["first_error"]

    # nothing readable: exit 1, the run folder still says why
    (videos / good[0].name).write_text("no video either\n")
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "none")])
    assert res.exit_code == 1 and "nothing could be scored" in res.output and "Traceback" not in res.output
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["overall"]["n"] == 0


class _Server:
    """An OpenAI-compatible server on loopback that fails the requests whose question matches."""

    def __init__(self, fail_when, status: int = 400) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "loopback-model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                text = json.dumps(body["messages"])
                if fail_when(text):
                    self._send(status, {"error": {"message": "simulated failure"}})
                    return
                self._send(200, {"id": "x", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "The answer is (A)."},
                     "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 4}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "_Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_openai_failed_requests_are_recorded_and_the_rest_kept(world_split, tmp_path: Path) -> None:
    recs = _records(world_split["qa"])
    doomed = {r["question"] for r in recs[::3]}
    base = ["eval", "--backend", "openai", "--benchmark", "stepkit", "--data", str(world_split["qa"]),
            "--frames", "0", "--mode", "mc-generate", "--bootstrap", "100", "--batch-size", "4",
            "--model-opt", "max_retries=1", "--model-opt", "backoff_s=0.0"]
    for status in (400, 503):
        with _Server(lambda text: any(json.dumps(q)[1:-1] in text for q in doomed), status) as srv:
            out = tmp_path / f"run{status}"
            res = CliRunner().invoke(app, base + ["--endpoint", srv.url, "--out", str(out)])
        assert res.exit_code == 2, res.output
        rows = _records(out / "predictions.jsonl")
        assert len(rows) == len(recs)
        failed = [r for r in rows if r.get("error")]
        assert {r["question"] for r in failed} == doomed and all(r["error_kind"] == "request" for r in failed)
        assert all("simulated failure" in r["error"] or str(status) in r["error"] for r in failed)
        kept = [r for r in rows if not r.get("error")]
        assert kept and all(r["raw"] == "The answer is (A)." and r["pred_index"] == 0 for r in kept)
        m = json.loads((out / "metrics.json").read_text())
        assert m["overall"]["n"] == len(kept) and m["errors"] == len(failed)
        assert m["overall"]["correct"] == sum(r["answer_index"] == 0 for r in kept)


def test_openai_server_failing_everything_stops_early(world_split, tmp_path: Path) -> None:
    from stepkit.evaluate.scoring import MAX_CONSECUTIVE_FAILURES

    recs = _records(world_split["qa"])
    many = [dict(r, id=f"{r['id']}-{k}") for k in range(4) for r in recs]  # more questions than the breaker allows
    qa = _write(tmp_path / "qa" / "qa.jsonl", many)
    with _Server(lambda text: True) as srv:
        res = CliRunner().invoke(app, ["eval", "--backend", "openai", "--endpoint", srv.url, "--benchmark", "stepkit",
                                       "--data", str(qa), "--frames", "0", "--mode", "mc-generate",
                                       "--model-opt", "max_retries=0", "--out", str(tmp_path / "run")])
        sent = srv.requests
    assert res.exit_code == 1 and "nothing could be scored" in res.output
    # each batch of 8 tried whole, then its prompts one by one, until MAX prompts failed in a row:
    # then nothing more is sent and the rest is recorded as not asked
    limit = 2 * (MAX_CONSECUTIVE_FAILURES + 8)
    assert len(many) > limit and sent <= limit
    rows = _records(tmp_path / "run" / "predictions.jsonl")
    assert len(rows) == len(many) and all(r["error"] for r in rows)
    assert sum("not asked" in r["error"] for r in rows) >= len(many) - MAX_CONSECUTIVE_FAILURES - 8
