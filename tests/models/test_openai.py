"""The openai backend against a small OpenAI-compatible server started on 127.0.0.1 by the test."""

from __future__ import annotations

import base64
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stepkit.errors import ModelError
from stepkit.models import Prompt, SamplingParams, VideoLLM, get_backend

_OBJECTS = ["cup", "book", "laptop", "towel", "pillow"]


def _char_logprob(c: str) -> float:
    return -0.25 if c in "aeiou " else -1.5


def _render(messages, add_generation_prompt: bool, continue_final: bool) -> str:
    """The server's 'chat template': one character per token."""
    out = []
    for i, m in enumerate(messages):
        c = m["content"]
        if not isinstance(c, str):
            c = "".join("<img>" if p["type"] == "image_url" else "<vid>" if p["type"] == "video_url" else p["text"]
                        for p in c)
        last = i == len(messages) - 1
        out.append(f"<{m['role']}>{c}" + ("" if continue_final and last else "</s>"))
    if add_generation_prompt:
        out.append("<assistant>")
    return "".join(out)


class _Server:
    """A canned OpenAI-compatible server: the first chat call fails with 503, then it answers."""

    def __init__(self, *, fail_first: int = 1, prompt_logprobs: bool = True, lifetime_s: float = 60.0):
        self.requests: list[dict] = []
        self.failures_left = fail_first
        self.supports_logprobs = prompt_logprobs
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code, obj, headers=None):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": "served-qwen2.5-vl", "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                if outer.failures_left > 0:
                    outer.failures_left -= 1
                    self._send(503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"})
                    return
                if self.path != "/v1/chat/completions" or not body.get("model"):
                    self._send(400, {"error": {"message": "bad request: model is required"}})
                    return
                reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                         "model": body["model"], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
                if body.get("prompt_logprobs") is not None and outer.supports_logprobs:
                    text = _render(body["messages"], body.get("add_generation_prompt", True),
                                   body.get("continue_final_message", False))
                    reply["prompt_logprobs"] = [None] + [
                        {str(ord(c)): {"logprob": _char_logprob(c), "rank": 1, "decoded_token": c}} for c in text[1:]]
                choices = []
                for i in range(body.get("n", 1)):
                    question = json.dumps(body["messages"][-1]["content"])
                    sample = i if body.get("temperature", 0) > 0 else 0
                    rng = random.Random(f"{question}|{body.get('seed', 0)}|{sample}")
                    choices.append({"index": i, "finish_reason": "stop",
                                    "message": {"role": "assistant",
                                                "content": f" The {rng.choice(_OBJECTS)} is on the table.\n"}})
                reply["choices"] = choices
                self._send(200, reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.timer = threading.Timer(lifetime_s, self.close)  # stops by itself if a test hangs
        self.timer.daemon = True
        self.timer.start()

    def close(self):
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _backend(url, **kw):
    sleeps: list[float] = []
    b = get_backend("openai", endpoint=url, api_key="sk-test", sleep=sleeps.append, **kw)
    return b, sleeps


def test_generate_retries_then_answers(server, frames):
    b, sleeps = _backend(server.url, backoff_s=0.5)
    assert isinstance(b, VideoLLM)
    assert b.model == "served-qwen2.5-vl" and b.model_id == f"openai:served-qwen2.5-vl@{server.url}"
    out = b.generate([Prompt("What is on the table?", images=[frames[0]], video=frames, system="Be brief.")],
                     SamplingParams(n=3, temperature=0.8, max_new_tokens=16, seed=5))
    assert len(out) == 1 and len(out[0]) == 3
    assert all(a.startswith("The ") and a.endswith("is on the table.") for a in out[0])
    assert b.retries == 1 and len(sleeps) == 1 and 0.5 <= sleeps[0] <= 0.56
    body = server.requests[-1]["body"]
    assert server.requests[-1]["auth"] == "Bearer sk-test"
    assert body["n"] == 3 and body["temperature"] == 0.8 and body["max_tokens"] == 16 and body["seed"] == 5
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 5 + ["text"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_many_prompts_keep_their_order(server):
    b, _ = _backend(server.url, concurrency=3)
    prompts = [Prompt(f"question {i}") for i in range(12)]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8)
    out = b.generate(prompts, params)
    one_by_one, _ = _backend(server.url, concurrency=1)
    assert out == one_by_one.generate(prompts, params)
    assert len({tuple(o) for o in out}) > 1  # the server's answers depend on the question


def test_video_url_mode_sends_an_mp4(server, frames):
    b, _ = _backend(server.url, video_mode="video_url", model="served-qwen2.5-vl")
    b.generate([Prompt("What moves?", video=frames, video_fps=2.0)], SamplingParams(max_new_tokens=4))
    part = server.requests[-1]["body"]["messages"][0]["content"][0]
    assert part["type"] == "video_url"
    raw = base64.b64decode(part["video_url"]["url"].split(",", 1)[1])
    assert raw[4:8] == b"ftyp"
    import io

    import av

    with av.open(io.BytesIO(raw)) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(frames)


def test_loglikelihood_sums_the_continuation_tokens(server):
    b, _ = _backend(server.url)
    conts = ["the cup", "xyz", ""]
    scores = b.loglikelihood(Prompt("Where is it?"), conts)
    assert scores == pytest.approx([sum(_char_logprob(c) for c in s) for s in conts])
    scored = [r["body"] for r in server.requests if r["body"].get("continue_final_message")]
    assert sorted(b["messages"][-1]["content"] for b in scored) == ["the cup", "xyz"]  # "" needs no request
    assert all(b["messages"][-1]["role"] == "assistant" and b["add_generation_prompt"] is False for b in scored)


def test_loglikelihood_unsupported_is_a_clear_error():
    s = _Server(fail_first=0, prompt_logprobs=False)
    try:
        b, _ = _backend(s.url)
        with pytest.raises(ModelError, match="prompt log-probabilities"):
            b.loglikelihood(Prompt("Where is it?"), ["the cup"])
    finally:
        s.close()


def test_client_errors_are_not_retried(server):
    b, sleeps = _backend(server.url, model="m")
    server.failures_left = 0
    b.model = None  # the server rejects a request without a model: 400, no retry
    with pytest.raises(ModelError, match="HTTP 400: .*model is required"):
        b.generate([Prompt("hi")], SamplingParams(max_new_tokens=2))
    assert sleeps == []


def test_gives_up_after_retries_on_a_dead_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    with pytest.raises(ModelError, match="failed after 3 attempts"):
        get_backend("openai", endpoint=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, backoff_s=1.0,
                    sleep=sleeps.append, timeout_s=2).generate([Prompt("hi")], SamplingParams(max_new_tokens=2))
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential backoff


def test_bad_options():
    with pytest.raises(ModelError, match="http"):
        get_backend("openai", endpoint="127.0.0.1:8000", model="m")
    with pytest.raises(ModelError, match="video_mode"):
        get_backend("openai", endpoint="http://127.0.0.1:1/v1", model="m", video_mode="gif")


# --- issue 15 #1, #7, #14 and issue 16: misbehaving servers, several endpoints, usage ----------

class _Scripted:
    """A loopback server whose chat replies come from ``reply(body) -> (status, obj, headers)``."""

    def __init__(self, reply, models=None):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, obj, headers=None):
                data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, models if models is not None else {"data": [{"id": "m"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                self._send(*reply(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _ok(text="yes", n=1, prompt_tokens=7, completion_tokens=2):
    return (200, {"choices": [{"index": i, "message": {"role": "assistant", "content": text}} for i in range(n)],
                  "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}, {})


def test_retry_after_header_forms():
    from email.utils import formatdate

    from stepkit.models.openai_compat import _retry_after

    assert _retry_after("600") == 600.0 and _retry_after("soon") is None and _retry_after(None) is None
    assert 50 <= _retry_after(formatdate(time.time() + 60, usegmt=True)) <= 61


def test_retry_after_is_capped_by_max_backoff():
    state = {"left": 2}

    def reply(body):
        if state["left"]:
            state["left"] -= 1
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "600"}
        return _ok()

    s = _Scripted(reply)
    try:
        sleeps: list[float] = []
        b = get_backend("openai", endpoint=s.url, model="m", sleep=sleeps.append, backoff_s=0.5, max_backoff_s=2.0)
        assert b.generate([Prompt("hi")], SamplingParams(max_new_tokens=2)) == [["yes"]]
        assert len(sleeps) == 2 and max(sleeps) <= 2.0 * 1.1  # not 600 s
    finally:
        s.close()


@pytest.mark.parametrize("answer, problem", [
    ([1, 2, 3], "JSON array"),
    ({"choices": [{"message": {"content": [1, 2, 3]}}]}, "'content' is a list"),
    ({"choices": [{"message": {"content": {"a": 1}}}]}, "'content' is a JSON object"),
    ({"choices": [7]}, "'choices' holds"),
    ({"choices": [{"message": [1]}]}, "'message' is a JSON array"),
    ("just a string", "a string"),
])
def test_a_server_answering_the_wrong_shape_is_a_clean_error(answer, problem):
    s = _Scripted(lambda body: (200, answer, {}))
    try:
        b = get_backend("openai", endpoint=s.url, model="m", sleep=lambda x: None)
        with pytest.raises(ModelError) as e:
            b.generate([Prompt("hi")], SamplingParams(max_new_tokens=2))
        assert s.url in str(e.value) and problem in str(e.value)
    finally:
        s.close()


def test_text_parts_content_is_joined_and_a_model_listing_array_is_an_error():
    s = _Scripted(lambda body: (200, {"choices": [{"message": {"content": [{"type": "text", "text": "a "},
                                                                           {"type": "text", "text": "cup"}]}}]}, {}),
                  models=[1, 2, 3])
    try:
        with pytest.raises(ModelError, match=r"/models answered a JSON array"):
            get_backend("openai", endpoint=s.url, sleep=lambda x: None)
        b = get_backend("openai", endpoint=s.url, model="m", sleep=lambda x: None)
        assert b.generate([Prompt("hi")], SamplingParams(max_new_tokens=2)) == [["a cup"]]
    finally:
        s.close()


@pytest.mark.parametrize("bad", ["ftp://x", "x", "http://", "http://host:notaport/v1", ""])
def test_invalid_endpoints_are_refused_at_construction(bad):
    with pytest.raises(ModelError, match="endpoint"):
        get_backend("openai", endpoint=bad, model="m")


def test_requests_spread_over_endpoints_and_usage_is_counted(frames):
    from stepkit.models.usage import metering

    a = _Scripted(lambda body: _ok("from a", n=body.get("n", 1), prompt_tokens=100, completion_tokens=3 * body.get("n", 1)))
    c = _Scripted(lambda body: _ok("from a", n=body.get("n", 1), prompt_tokens=100, completion_tokens=3 * body.get("n", 1)))
    try:
        b = get_backend("openai", endpoint=[a.url, c.url], model="m", concurrency=4)
        assert b.endpoints == [a.url, c.url] and b.model_id == f"openai:m@{a.url},{c.url}"
        prompts = [Prompt(f"q{i}", images=[frames[i % 4]]) for i in range(20)]
        with metering() as m:
            out = b.generate(prompts, SamplingParams(n=3, temperature=0.7, max_new_tokens=4))
        assert out == [["from a"] * 3] * 20
        assert len(a.requests) + len(c.requests) == 20 and len(a.requests) >= 5 and len(c.requests) >= 5
        assert all(r["n"] == 3 for r in a.requests + c.requests)  # one request serves all samples
        assert m.to_dict() == {"requests": 20, "retries": 0, "completions": 60, "prompt_tokens": 2000,
                               "completion_tokens": 180, "cache_hits": 0, "cache_misses": 0}
        d = b.describe()
        assert d["prompt_tokens"] == 2000 and sum(d["requests_per_endpoint"].values()) == 20
        # a comma-separated string is the same list
        assert get_backend("openai", endpoint=f"{a.url},{c.url}", model="m").endpoints == [a.url, c.url]
    finally:
        a.close()
        c.close()


def test_a_dead_endpoint_is_retried_on_another():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    live = _Scripted(lambda body: _ok("ok"))
    try:
        sleeps: list[float] = []
        b = get_backend("openai", endpoint=[dead, live.url], model="m", sleep=sleeps.append, timeout_s=2)
        out = b.generate([Prompt(f"q{i}") for i in range(6)], SamplingParams(max_new_tokens=2))
        assert out == [["ok"]] * 6 and len(live.requests) == 6
    finally:
        live.close()


def test_in_flight_requests_are_capped_across_threads():
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()
    release = threading.Event()

    def reply(body):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            if state["peak"] >= 5:
                release.set()
        release.wait(5)
        with lock:
            state["now"] -= 1
        return _ok()

    s = _Scripted(reply)
    try:
        b = get_backend("openai", endpoint=s.url, model="m", concurrency=5)
        threads = [threading.Thread(target=b.generate, args=([Prompt(f"t{t}q{i}") for i in range(4)],
                                                             SamplingParams(max_new_tokens=2))) for t in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert state["peak"] == 5 and len(s.requests) == 12  # three callers share five slots
    finally:
        s.close()
