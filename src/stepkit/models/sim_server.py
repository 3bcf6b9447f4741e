"""A simulated GPU inference server: OpenAI-compatible chat completions on loopback, with modelled latency.

It stands in for a vLLM / SGLang server when measuring how fast induction can go against one
(``stepkit bench induce --server sim``) and in tests that need a real HTTP server. Answers are
plausible replies to the induction prompts (objects, kinds, attributes, relations, motions,
yes/no checks), chosen by a seeded hash of the request, so the same request always gets the same
answer and a concurrent run gives exactly the graphs a sequential run gives.

Latency model (:class:`SimServerConfig`), that of a continuous-batching server:

* the server runs at most ``capacity`` sequences at once (vLLM's ``max_num_seqs``); a request
  with ``n`` samples holds ``n`` of them (one prefill, ``n`` decodes), and requests that do not
  fit wait in FIFO order;
* a request, once admitted, takes ``overhead_s + prompt_tokens * prefill_s_per_token +
  completion_tokens * decode_s_per_token`` seconds (``completion_tokens`` of its longest sample),
  independent of what else runs: ideal batching up to capacity;
* prompt tokens are ``len(text) / chars_per_token`` plus ``image_tokens`` per image;
  completion tokens are ``len(answer) / chars_per_token`` (at least 1), capped at ``max_tokens``;
* every latency is multiplied by ``time_scale``.

The server also counts what two request shapes save (not discounted from its latency):
``prefix_cached_tokens``, the prompt tokens a prefix cache would serve (the leading system text,
images and question some earlier request began with), and ``n_saved_prefill_tokens``, the prompt
tokens ``n`` samples in one request do not prefill again (``(n - 1) * prompt_tokens``);
``prefix_cached_tokens_text_first`` is what the prefix cache would serve were each message's text
put before its images.

The modelled capacity is therefore ``capacity / (slot-seconds per video)`` videos per second,
which the server measures (:meth:`SimServer.stats`) so a benchmark can say how close a client
comes to it. The server binds 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stepkit.errors import ConfigError


@dataclass
class SimServerConfig:
    """The modelled GPU server (defaults: a 7B Video-LLM on one H100-class GPU, roughly)."""

    capacity: int = 64  # sequences decoded at once; more wait
    overhead_s: float = 0.02  # per request: scheduling, tokenising, image preprocessing
    prefill_s_per_token: float = 0.0001  # prompt tokens (10k tokens/s of prefill)
    decode_s_per_token: float = 0.01  # completion tokens of one sequence (100 tokens/s each)
    image_tokens: int = 256  # tokens per image (Qwen2-VL at 448x448: 16x16 patches of 28 px)
    chars_per_token: float = 4.0
    time_scale: float = 1.0
    model: str = "sim-video-llm"

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise ConfigError(f"sim server: capacity must be a positive integer, got {self.capacity!r}")
        for name in ("overhead_s", "prefill_s_per_token", "decode_s_per_token", "time_scale", "chars_per_token"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0 or (name in ("time_scale", "chars_per_token") and v <= 0):
                need = "positive" if name in ("time_scale", "chars_per_token") else "non-negative"
                raise ConfigError(f"sim server: {name} must be a {need} number, got {v!r}")

    def service_s(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Seconds one admitted request takes."""
        return self.time_scale * (self.overhead_s + prompt_tokens * self.prefill_s_per_token
                                  + completion_tokens * self.decode_s_per_token)


# --- answers ------------------------------------------------------------------------------------

_DYNAMIC = ["person", "dog", "cat", "ball"]
_STATIC = ["table", "chair", "sofa", "lamp", "shelf", "bed", "door", "cup", "book", "laptop", "plant", "box"]
_COLORS = ["red", "blue", "green", "white", "black", "brown", "yellow"]
_SIZES = ["small", "large", "medium"]
_PREDICATES = ["next to", "on", "in front of", "behind", "near", "holding", "looking at"]
_VERBS = ["walk", "pick up", "put down", "push", "move left", "turn around", "open"]

_KIND_PATTERNS = [
    ("narrative", re.compile(r"Describe the scene in two or three sentences")),
    ("objects", re.compile(r"List every distinct person and object")),
    ("kind", re.compile(r"static \(it stays in place")),
    ("attributes", re.compile(r"Give its visible attributes")),
    ("relation", re.compile(r"How are they related in the image")),
    ("presence", re.compile(r"Answer yes or no\.")),
    ("motion", re.compile(r"What did the (.+?) do between")),
    ("event", re.compile(r"Describe the main event")),
]


def _rng(*parts: Any) -> random.Random:
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest())


def _scene(image_key: str) -> list[str]:
    """The objects 'in' an image: a function of its pixels (the data URL), so each video has its own."""
    r = _rng("scene", image_key)
    objs = ["person"] + r.sample(_STATIC, 3)
    if r.random() < 0.5:
        objs.append(r.choice(_DYNAMIC[1:]))
    return objs


def sim_answer(text: str, image_keys: list[str], *, seed: int, sample: int, temperature: float) -> str:
    """A plausible answer to an induction prompt; a pure function of its arguments."""
    kind = next((k for k, pat in _KIND_PATTERNS if pat.search(text)), None)
    scene = _scene(image_keys[0]) if image_keys else ["person", "table"]
    noisy = temperature > 0
    r = _rng(kind, text, ",".join(image_keys), seed, sample if noisy else 0)
    if kind == "narrative":
        return f"A person is in a room with a {scene[1]} and a {scene[2]}. The person looks around."
    if kind == "objects":
        objs = list(scene)
        if noisy and r.random() < 0.3:
            objs.pop(r.randrange(1, len(objs)))
        if noisy and r.random() < 0.2:
            objs.append(r.choice(_STATIC))
        return json.dumps({"objects": objs})
    if kind == "kind":
        m = re.search(r"Look at the (.+?)\.", text)
        obj = m.group(1) if m else ""
        dyn = obj in _DYNAMIC
        if noisy and r.random() < 0.1:
            dyn = not dyn
        return json.dumps({"kind": "dynamic" if dyn else "static"})
    if kind == "attributes":
        m = re.search(r"Look at the (.+?)\.", text)
        a = _rng("attr", image_keys[0] if image_keys else "", m.group(1) if m else "")
        return json.dumps({"attributes": {"color": a.choice(_COLORS), "size": a.choice(_SIZES)}})
    if kind == "relation":
        m = re.search(r"Look at the (.+?) and the (.+?)\.", text)
        if not m:
            return '{"predicate": "none"}'
        a, b = m.group(1), m.group(2)
        base = _rng("rel", image_keys[0] if image_keys else "", a, b)
        if base.random() < 0.4:
            return '{"predicate": "none"}'
        return json.dumps({"subject": a, "predicate": base.choice(_PREDICATES), "object": b})
    if kind == "presence":
        return "Yes." if r.random() < 0.85 else "No."
    if kind == "motion":
        m = _KIND_PATTERNS[6][1].search(text)
        agent = m.group(1) if m else ""
        base = _rng("motion", ",".join(image_keys), agent)
        if base.random() < 0.3:
            return '{"verb": "none"}'
        return json.dumps({"verb": base.choice(_VERBS), "object": None})
    if kind == "event":
        return f"A person walks past the {scene[1]}."
    return "no"


# --- the server ----------------------------------------------------------------------------------

class _Slots:
    """``capacity`` sequence slots handed out in FIFO order (a request holds ``n`` of them)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self.cond = threading.Condition()
        self.queue: deque[object] = deque()

    def acquire(self, n: int) -> None:
        n = min(n, self.capacity)
        ticket = object()
        with self.cond:
            self.queue.append(ticket)
            while self.queue[0] is not ticket or self.free < n:
                self.cond.wait()
            self.queue.popleft()
            self.free -= n
            self.cond.notify_all()

    def release(self, n: int) -> None:
        with self.cond:
            self.free += min(n, self.capacity)
            self.cond.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of clients connect at once; the default backlog of 5 resets them


class SimServer:
    """The simulated server on ``127.0.0.1:port`` (0: any free port); ``url`` is its ``/v1`` base."""

    def __init__(self, config: SimServerConfig | None = None, *, port: int = 0) -> None:
        self.config = config or SimServerConfig()
        self._slots = _Slots(self.config.capacity)
        self._lock = threading.Lock()
        self._stats = {"requests": 0, "sequences": 0, "prompt_tokens": 0, "completion_tokens": 0,
                       "slot_seconds": 0.0, "queue_seconds": 0.0, "busy_max": 0,
                       "prefix_cached_tokens": 0, "prefix_cached_tokens_text_first": 0, "n_saved_prefill_tokens": 0}
        self._prefixes: OrderedDict[str, None] = OrderedDict()
        self._prefixes_text_first: OrderedDict[str, None] = OrderedDict()
        self._busy = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # no per-request log lines
                pass

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/sim/stats":
                    self._send(200, outer.stats())
                elif self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": outer.config.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                except (ValueError, TypeError):
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                if self.path.rstrip("/") == "/v1/sim/reset":
                    outer.reset_stats()
                    self._send(200, {"reset": True})
                    return
                if self.path.rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                code, reply = outer.complete(body)
                self._send(code, reply)

        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True,
                                        name="stepkit-sim-server")
        self._thread.start()

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one chat-completions body (after waiting for slots and the modelled time)."""
        cfg = self.config
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, {"error": {"message": "messages must be a non-empty list"}}
        text_parts: list[str] = []
        image_keys: list[str] = []
        segments: list[tuple[str, int]] = []  # the prompt in order: (content hash, tokens)
        text_first: list[tuple[str, int]] = []  # the same prompt with each message's text before its images
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            start = len(segments)
            if isinstance(content, str):
                text_parts.append(content)
                segments.append((hashlib.sha1(content.encode()).hexdigest(), int(len(content) / cfg.chars_per_token)))
            elif isinstance(content, list):
                for part in content:
                    if not isinstance(part, dict):
                        continue
                    if part.get("type") == "text":
                        text = str(part.get("text", ""))
                        text_parts.append(text)
                        segments.append((hashlib.sha1(text.encode()).hexdigest(), int(len(text) / cfg.chars_per_token)))
                    elif part.get("type") in ("image_url", "video_url"):
                        url = str((part.get(part["type"]) or {}).get("url", ""))
                        image_keys.append(hashlib.sha1(url.encode()).hexdigest()[:16])
                        segments.append((image_keys[-1], cfg.image_tokens))
            mine = segments[start:]
            text_first += [x for x in mine if x[0] not in image_keys] + [x for x in mine if x[0] in image_keys]
        question = text_parts[-1] if text_parts else ""
        n = body.get("n", 1)
        n = n if isinstance(n, int) and n >= 1 else 1
        max_tokens = body.get("max_tokens", 256)
        max_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens >= 1 else 256
        temperature = float(body.get("temperature", 0.0) or 0.0)
        seed = body.get("seed", 0)
        answers = [sim_answer(question, image_keys, seed=seed, sample=i, temperature=temperature) for i in range(n)]
        prompt_tokens = int(sum(len(t) for t in text_parts) / cfg.chars_per_token) + cfg.image_tokens * len(image_keys)
        cached = self._prefix_hits(self._prefixes, segments)
        cached_text_first = self._prefix_hits(self._prefixes_text_first, text_first)
        lengths = [min(max_tokens, max(1, int(len(a) / cfg.chars_per_token))) for a in answers]
        service = cfg.service_s(prompt_tokens, max(lengths))
        t0 = time.perf_counter()
        self._slots.acquire(n)
        waited = time.perf_counter() - t0
        with self._lock:
            self._busy += min(n, cfg.capacity)
            self._stats["busy_max"] = max(self._stats["busy_max"], self._busy)
        try:
            time.sleep(service)
        finally:
            with self._lock:
                self._busy -= min(n, cfg.capacity)
            self._slots.release(n)
        with self._lock:
            st = self._stats
            st["requests"] += 1
            st["sequences"] += n
            st["prompt_tokens"] += prompt_tokens
            st["completion_tokens"] += sum(lengths)
            st["slot_seconds"] += service * min(n, cfg.capacity)
            st["prefix_cached_tokens"] += cached
            st["prefix_cached_tokens_text_first"] += cached_text_first
            st["n_saved_prefill_tokens"] += (n - 1) * prompt_tokens
            st["queue_seconds"] += waited
        choices = [{"index": i, "finish_reason": "stop" if lengths[i] < max_tokens else "length",
                    "message": {"role": "assistant", "content": a}} for i, a in enumerate(answers)]
        return 200, {"id": f"simcmpl-{hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]}",
                     "object": "chat.completion", "model": cfg.model, "choices": choices,
                     "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": sum(lengths),
                               "total_tokens": prompt_tokens + sum(lengths)}}

    def _prefix_hits(self, store: OrderedDict[str, None], segments: list[tuple[str, int]]) -> int:
        """Prompt tokens a prefix cache would serve: the longest run of leading segments (system
        text, images, question) some earlier request began with; then remember this prompt's prefixes.
        Counted only: the latency model does not discount them."""
        chain, hit, still = hashlib.sha1(), 0, True
        keys = []
        for key, tokens in segments:
            chain.update(key.encode())
            k = chain.hexdigest()
            keys.append(k)
            with self._lock:
                if still and k in store:
                    hit += tokens
                    store.move_to_end(k)
                else:
                    still = False
        with self._lock:
            for k in keys:
                store[k] = None
            while len(store) > 200_000:
                store.popitem(last=False)
        return hit

    def stats(self) -> dict[str, Any]:
        """Requests, sequences, tokens, slot-seconds used and time spent queueing so far."""
        with self._lock:
            return {**self._stats, "config": asdict(self.config)}

    def reset_stats(self) -> None:
        """Zero the counters and empty the modelled prefix cache."""
        with self._lock:
            self._prefixes.clear()
            self._prefixes_text_first.clear()
            for k in self._stats:
                self._stats[k] = 0.0 if isinstance(self._stats[k], float) else 0

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "SimServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SimServerProcess:
    """A :class:`SimServer` in a child process (its own interpreter, as a real server would be).

    ``url``, ``stats()``, ``reset_stats()`` and ``close()`` work as on :class:`SimServer`.
    """

    def __init__(self, config: SimServerConfig | None = None, *, start_timeout_s: float = 60.0) -> None:
        import subprocess
        import sys

        self.config = config or SimServerConfig()
        self._proc = subprocess.Popen([sys.executable, "-m", "stepkit.models.sim_server", json.dumps(asdict(self.config))],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = ""
        deadline = time.monotonic() + start_timeout_s
        while not line.startswith("http://") and time.monotonic() < deadline and self._proc.poll() is None:
            line = (self._proc.stdout.readline() if self._proc.stdout else "").strip()
        if not line.startswith("http://"):
            self.close()
            raise ConfigError("sim server: the child process did not start")
        self.url = line

    def _call(self, method: str, path: str) -> Any:
        import urllib.request

        req = urllib.request.Request(f"{self.url}{path}", data=b"{}" if method == "POST" else None, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        """The child server's counters."""
        return self._call("GET", "/sim/stats")

    def reset_stats(self) -> None:
        """Zero the child server's counters."""
        self._call("POST", "/sim/reset")

    def close(self) -> None:
        """Stop the child (closing its stdin ends it) and wait for it."""
        if self._proc.poll() is None:
            try:
                if self._proc.stdin:
                    self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except Exception:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> "SimServerProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _main() -> None:
    """Child-process entry: serve until stdin closes (so the server never outlives its parent)."""
    import sys

    cfg = SimServerConfig(**json.loads(sys.argv[1])) if len(sys.argv) > 1 else SimServerConfig()
    server = SimServer(cfg)
    print(server.url, flush=True)
    try:
        sys.stdin.read()
    finally:
        server.close()


if __name__ == "__main__":
    _main()
