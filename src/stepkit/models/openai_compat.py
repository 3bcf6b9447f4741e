"""The ``openai`` backend: an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, hosted APIs).

Standard library only (urllib): images and video frames travel as base64 data URLs, requests time
out, and 429 / 5xx / connection failures are retried with exponential backoff (honouring
``Retry-After``). ``loglikelihood`` needs a server that returns prompt log-probabilities the way
vLLM does (``prompt_logprobs`` with ``continue_final_message``); other servers get a clear
ModelError.
"""

from __future__ import annotations

import base64
import contextvars
import http.client
import io
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from stepkit.errors import ModelError
from stepkit.models import usage
from stepkit.models.base import Prompt, SamplingParams

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def data_url(frame: np.ndarray, fmt: str = "png", quality: int = 90) -> str:
    """A ``data:image/...;base64,`` URL of an HxWx3 uint8 frame."""
    from PIL import Image

    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ModelError(f"a prompt frame must be HxWx3 uint8, got shape {arr.shape}")
    buf = io.BytesIO()
    img = Image.fromarray(arr.astype(np.uint8, copy=False))
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="PNG")
    return f"data:image/{fmt};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def video_data_url(frames: Sequence[np.ndarray], fps: float) -> str:
    """A ``data:video/mp4;base64,`` URL of frames encoded as H.264 (for servers taking ``video_url``)."""
    import av

    buf = io.BytesIO()
    h, w = (int(x) // 2 * 2 for x in np.asarray(frames[0]).shape[:2])
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=max(1, round(fps)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.asarray(f, np.uint8)[:h, :w]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return f"data:video/mp4;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def check_endpoint(endpoint: Any) -> str:
    """``endpoint`` as a base URL (``…/v1``), or a ModelError saying why it cannot be one."""
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise ModelError(f"endpoint {endpoint!r} must be an http(s) URL such as http://127.0.0.1:8000/v1")
    url = endpoint.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"endpoint {endpoint!r} must be an http(s) URL with a host, such as http://127.0.0.1:8000/v1")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError as exc:
        raise ModelError(f"endpoint {endpoint!r}: bad port ({exc})") from None
    base = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def endpoint_list(endpoint: str | Sequence[str]) -> list[str]:
    """One or several endpoints (a list, or one string with commas) as checked base URLs."""
    items = [e for e in endpoint.split(",")] if isinstance(endpoint, str) else list(endpoint or [])
    if not items:
        raise ModelError("no endpoint given: pass an http(s) URL such as http://127.0.0.1:8000/v1")
    out: list[str] = []
    for e in items:
        base = check_endpoint(e)
        if base not in out:
            out.append(base)
    return out


def _retry_after(header: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(header)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class _DataURLs:
    """Encoded frames by content hash: a keyframe shown in 40 prompts is encoded once."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._urls: OrderedDict[tuple[str, str], str] = OrderedDict()

    def get(self, frame: np.ndarray, fmt: str) -> str:
        from stepkit.models.cache import frame_hash

        key = (frame_hash(frame), fmt)
        with self._lock:
            hit = self._urls.get(key)
            if hit is not None:
                self._urls.move_to_end(key)
                return hit
        url = data_url(frame, fmt)
        with self._lock:
            self._urls[key] = url
            while len(self._urls) > self.size:
                self._urls.popitem(last=False)
        return url


class OpenAIBackend:
    """Chat completions from ``endpoint`` (the base URL, e.g. ``http://127.0.0.1:8000/v1``).

    ``endpoint`` may list several servers of the same model (a list, or a comma-separated string):
    each request goes to the one with the fewest requests outstanding, and a failed attempt is
    retried on another. ``concurrency`` caps the requests in flight over all threads using this
    backend (default 64, enough to fill one vLLM / SGLang server's batch); ``generate`` sends its
    prompts in parallel up to that cap, so several videos induced at once share one request pool.
    ``model``: the served model name (default: the first one ``GET /models`` lists).
    ``model_id``: the identity used in cache keys and graph metadata (default
    ``openai:MODEL@ENDPOINT``; set it to keep a cache valid when the set of servers changes).
    ``api_key``: sent as a bearer token (default: ``$STEPKIT_API_KEY`` or ``$OPENAI_API_KEY``).
    ``video_mode``: ``frames`` sends a video as one image per frame (works everywhere);
    ``video_url`` sends it as an mp4 data URL (vLLM / SGLang video models).
    ``max_retries`` retries per request with delays ``backoff_s * 2**attempt`` (capped at
    ``max_backoff_s``, plus jitter); a ``Retry-After`` header is honoured up to ``max_backoff_s``.
    """

    def __init__(self, endpoint: str | Sequence[str], *, model: str | None = None, api_key: str | None = None,
                 model_id: str | None = None, timeout_s: float = 120.0, max_retries: int = 5,
                 backoff_s: float = 1.0, max_backoff_s: float = 30.0, concurrency: int = 64,
                 video_mode: str = "frames", image_format: str = "png", extra_body: dict[str, Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.endpoints = endpoint_list(endpoint)
        if video_mode not in ("frames", "video_url"):
            raise ModelError(f"video_mode must be 'frames' or 'video_url', got {video_mode!r}")
        if image_format not in ("png", "jpeg"):
            raise ModelError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ModelError(f"concurrency must be a positive integer, got {concurrency!r}")
        self.endpoint = self.endpoints[0] if len(self.endpoints) == 1 else ",".join(self.endpoints)
        self.api_key = api_key if api_key is not None else (os.environ.get("STEPKIT_API_KEY")
                                                            or os.environ.get("OPENAI_API_KEY"))
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.concurrency = concurrency
        self.video_mode = video_mode
        self.image_format = image_format
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep
        self.requests_sent = 0
        self.retries = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._count_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._outstanding = {e: 0 for e in self.endpoints}
        self._per_endpoint = {e: 0 for e in self.endpoints}
        self._turn = 0
        self._waiting = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._urls = _DataURLs()
        self.model = model or self._first_model()
        self.model_id = model_id or f"openai:{self.model}@{self.endpoint}"

    # --- HTTP -----------------------------------------------------------------------------------

    def _pick(self, avoid: str | None) -> str:
        """The endpoint with the fewest outstanding requests (round-robin among ties), not ``avoid`` if possible."""
        with self._count_lock:
            n = len(self.endpoints)
            order = [self.endpoints[(self._turn + i) % n] for i in range(n)]
            self._turn = (self._turn + 1) % n
            choices = [e for e in order if e != avoid] or order
            best = min(choices, key=lambda e: self._outstanding[e])
            self._outstanding[best] += 1
            self._per_endpoint[best] += 1
            return best

    def saturated(self) -> bool:
        """Whether requests are waiting for a free slot (every one of ``concurrency`` is in use)."""
        with self._count_lock:
            return self._waiting > 0 or sum(self._outstanding.values()) >= self.concurrency

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        failed_on: str | None = None
        for attempt in range(self.max_retries + 1):
            with self._count_lock:
                self._waiting += 1
            self._slots.acquire()
            with self._count_lock:
                self._waiting -= 1
            base = self._pick(failed_on)
            url = f"{base}{path}"
            with self._count_lock:
                self.retries += 1 if attempt else 0
                self.requests_sent += 1
            usage.record(requests=1, retries=1 if attempt else 0)
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            retry_after: float | None = None
            try:
                try:
                    with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                        payload = resp.read()
                finally:
                    with self._count_lock:
                        self._outstanding[base] -= 1
                    self._slots.release()
                try:
                    return json.loads(payload)
                except (ValueError, RecursionError) as exc:
                    raise ModelError(f"{url} answered with something that is not JSON: {payload[:200]!r}") from exc
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:500].decode("utf-8", "replace")
                last = f"HTTP {exc.code}: {detail}"
                if exc.code not in _RETRY_STATUS:
                    raise ModelError(f"{url} refused the request ({last})") from exc
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            failed_on = base
            if attempt == self.max_retries:
                break
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * (1 + 0.1 * random.random())
            # A server may ask for longer (Retry-After), but never for longer than max_backoff_s:
            # a 429 with "Retry-After: 600" must not stall a batch for ten minutes per request.
            self._sleep(min(max(delay, retry_after or 0.0), self.max_backoff_s * 1.1))
        where = f"{self.endpoint}{path}" if len(self.endpoints) == 1 else f"{path} on {self.endpoint}"
        raise ModelError(f"{where} failed after {self.max_retries + 1} attempts; last error: {last}")

    def _first_model(self) -> str:
        listing = self._request("GET", "/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise ModelError(f"{self.endpoints[0]}/models answered {_shape(listing)} instead of an object with a "
                             "'data' list of models; is this an OpenAI-compatible server?")
        models = [m.get("id") for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and m.get("id")]
        if not models:
            raise ModelError(f"{self.endpoints[0]}/models lists no models; pass the model name explicitly")
        return str(models[0])

    def _run_all(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` on the shared request pool, in order; the caller's meters follow."""
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="stepkit-openai")
            pool = self._pool
        futures = [pool.submit(contextvars.copy_context().run, fn, x) for x in items]
        return [f.result() for f in futures]

    # --- messages -------------------------------------------------------------------------------

    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """OpenAI chat messages for a prompt: the system turn, then images, then the video, then the text.

        Images come before the question so that every prompt about one keyframe shares its longest
        possible prefix (system + image tokens); servers with prefix caching (vLLM's automatic
        prefix caching, SGLang's RadixAttention) then prefill that image once, not once per question.
        """
        msgs: list[dict[str, Any]] = []
        if prompt.system:
            msgs.append({"role": "system", "content": prompt.system})
        content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": self._urls.get(f, self.image_format)}}
                                         for f in prompt.images]
        if prompt.video:
            if self.video_mode == "video_url":
                fps = float(prompt.video_fps or 1.0)
                content.append({"type": "video_url", "video_url": {"url": video_data_url(prompt.video, fps)}})
            else:
                content += [{"type": "image_url", "image_url": {"url": self._urls.get(f, self.image_format)}}
                            for f in prompt.video]
        content.append({"type": "text", "text": prompt.text})
        msgs.append({"role": "user", "content": content})
        return msgs

    # --- the protocol ---------------------------------------------------------------------------

    def _choices(self, reply: Any, want: int) -> list[str]:
        """The texts of a chat-completions reply, or a ModelError saying what is wrong with its shape."""
        where = f"{self.endpoint}/chat/completions"
        if not isinstance(reply, dict):
            raise ModelError(f"{where} answered {_shape(reply)} instead of a chat-completion object")
        choices = reply.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ModelError(f"{where} returned no choices: {str(reply)[:300]}")
        if not all(isinstance(c, dict) for c in choices):
            raise ModelError(f"{where}: 'choices' holds {_shape(next(c for c in choices if not isinstance(c, dict)))} "
                             "instead of choice objects")
        out: list[str] = []
        for ch in sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index", 0), int) else 0)[:want]:
            message = ch.get("message")
            if message is None:
                message = {}
            if not isinstance(message, dict):
                raise ModelError(f"{where}: a choice's 'message' is {_shape(message)}, not an object")
            content = message.get("content")
            if isinstance(content, list):
                # Some servers answer with content parts; only text parts can be an answer.
                if not all(isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                           for part in content):
                    raise ModelError(f"{where}: a choice's 'content' is a list that is not text parts "
                                     f"({str(content)[:200]}); expected a string")
                content = "".join(part["text"] for part in content)
            elif content is not None and not isinstance(content, str):
                raise ModelError(f"{where}: a choice's 'content' is {_shape(content)}; expected a string")
            out.append((content or "").strip())
        tokens = reply.get("usage")
        if isinstance(tokens, dict):
            p = tokens.get("prompt_tokens")
            c = tokens.get("completion_tokens")
            p = p if isinstance(p, int) and not isinstance(p, bool) and p >= 0 else 0
            c = c if isinstance(c, int) and not isinstance(c, bool) and c >= 0 else 0
            with self._count_lock:
                self.prompt_tokens += p
                self.completion_tokens += c
            usage.record(prompt_tokens=p, completion_tokens=c)
        usage.record(completions=len(out))
        return out

    def _complete(self, prompt: Prompt, params: SamplingParams) -> list[str]:
        msgs = self.messages(prompt)
        out: list[str] = []
        rounds = 0
        while len(out) < params.n:
            want = params.n - len(out)
            # All samples in one request (``n``): the server prefills the prompt once and decodes
            # the n samples from that one KV cache.
            body: dict[str, Any] = {"model": self.model, "messages": msgs, "n": want,
                                    "temperature": params.temperature, "max_tokens": params.max_new_tokens,
                                    "seed": params.seed + rounds}
            if params.temperature > 0:
                body["top_p"] = params.top_p
            body.update(self.extra_body)
            out += self._choices(self._request("POST", "/chat/completions", body), want)
            rounds += 1
            if rounds > params.n:  # a server that ignores n: one request per sample is enough
                break
        return out[: params.n]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions per prompt (up to ``concurrency`` requests in flight)."""
        if params.n < 1 or params.max_new_tokens < 1:
            raise ModelError(f"sampling needs n >= 1 and max_new_tokens >= 1, got {params}")
        return self._run_all(lambda p: self._complete(p, params), list(prompts))

    def _prompt_logprobs(self, messages: list[dict[str, Any]], *, continue_final: bool) -> list[float | None]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0.0,
                                "prompt_logprobs": 0, "add_generation_prompt": not continue_final,
                                "continue_final_message": continue_final}
        reply = self._request("POST", "/chat/completions", body)
        plp = reply.get("prompt_logprobs") if isinstance(reply, dict) else None
        if not isinstance(plp, list):
            raise ModelError(f"{self.endpoint} does not return prompt log-probabilities ('prompt_logprobs'), so "
                             "loglikelihood is unavailable there; use a vLLM server or the hf backend")
        values: list[float | None] = []
        for entry in plp:
            if not entry:
                values.append(None)
                continue
            # vLLM: {token_id: {"logprob": x, "rank": r, "decoded_token": s}}; with prompt_logprobs=0
            # the entry holds the prompt's own token (rank may exceed 1).
            best = list(entry.values())[0] if isinstance(entry, dict) else entry
            try:
                values.append(float(best["logprob"]) if isinstance(best, dict) else float(best))
            except (KeyError, TypeError, ValueError):
                raise ModelError(f"{self.endpoint}: a 'prompt_logprobs' entry is not a log-probability: "
                                 f"{str(entry)[:200]}") from None
        return values

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """Summed log-probability of each continuation as the assistant's reply to ``prompt``."""
        msgs = self.messages(prompt)
        base = len(self._prompt_logprobs(msgs, continue_final=False))

        def score(cont: str) -> float:
            if not cont:
                return 0.0
            full = self._prompt_logprobs(msgs + [{"role": "assistant", "content": cont}], continue_final=True)
            tail = full[base:]
            if not tail or any(v is None for v in tail):
                raise ModelError(f"{self.endpoint}: prompt log-probabilities do not cover the continuation {cont!r}")
            return float(sum(tail))  # type: ignore[arg-type]

        return self._run_all(score, list(continuations))

    def describe(self) -> dict[str, Any]:
        """Endpoints, model and request / token counters (for summaries)."""
        with self._count_lock:
            per = dict(self._per_endpoint)
            return {"backend": "openai", "model_id": self.model_id, "endpoint": self.endpoint, "model": self.model,
                    "video_mode": self.video_mode, "concurrency": self.concurrency, "requests": self.requests_sent,
                    "retries": self.retries, "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens,
                    **({"requests_per_endpoint": per} if len(per) > 1 else {})}

    def close(self) -> None:
        """Stop the request threads (the backend stays usable; a later call starts them again)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def _shape(value: Any) -> str:
    """A short description of a JSON value's type, for error messages."""
    if isinstance(value, list):
        return f"a JSON array ({str(value)[:80]})"
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, str):
        return f"a string ({value[:80]!r})"
    if value is None:
        return "null"
    return f"a {type(value).__name__} ({str(value)[:80]})"
