"""The ``openai`` backend: an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, hosted APIs).

Standard library only (urllib): images and video frames travel as base64 data URLs, requests time
out, and 429 / 5xx / connection failures are retried with exponential backoff (honouring
``Retry-After``). ``loglikelihood`` needs a server that returns prompt log-probabilities the way
vLLM does (``prompt_logprobs`` with ``continue_final_message``); other servers get a clear
ModelError.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from stepkit.errors import ModelError
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


class OpenAIBackend:
    """Chat completions from ``endpoint`` (the base URL, e.g. ``http://127.0.0.1:8000/v1``).

    ``model``: the served model name (default: the first one ``GET /models`` lists).
    ``api_key``: sent as a bearer token (default: ``$STEPKIT_API_KEY`` or ``$OPENAI_API_KEY``).
    ``video_mode``: ``frames`` sends a video as one image per frame (works everywhere);
    ``video_url`` sends it as an mp4 data URL (vLLM / SGLang video models).
    ``concurrency`` requests run at once; ``max_retries`` retries per request with delays
    ``backoff_s * 2**attempt`` (capped at ``max_backoff_s``, plus jitter).
    """

    def __init__(self, endpoint: str, *, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, max_retries: int = 5, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, concurrency: int = 4, video_mode: str = "frames",
                 image_format: str = "png", extra_body: dict[str, Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not endpoint or not endpoint.startswith(("http://", "https://")):
            raise ModelError(f"endpoint {endpoint!r} must be an http(s) URL such as http://127.0.0.1:8000/v1")
        if video_mode not in ("frames", "video_url"):
            raise ModelError(f"video_mode must be 'frames' or 'video_url', got {video_mode!r}")
        if image_format not in ("png", "jpeg"):
            raise ModelError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
        base = endpoint.rstrip("/")
        for suffix in ("/chat/completions", "/completions"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        self.endpoint = base
        self.api_key = api_key if api_key is not None else (os.environ.get("STEPKIT_API_KEY")
                                                            or os.environ.get("OPENAI_API_KEY"))
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.concurrency = max(1, concurrency)
        self.video_mode = video_mode
        self.image_format = image_format
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep
        self.requests_sent = 0
        self.retries = 0
        self._count_lock = threading.Lock()
        self.model = model or self._first_model()
        self.model_id = f"openai:{self.model}@{self.endpoint}"

    # --- HTTP -----------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.endpoint}{path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            with self._count_lock:
                self.retries += 1 if attempt else 0
                self.requests_sent += 1
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    payload = resp.read()
                try:
                    return json.loads(payload)
                except ValueError as exc:
                    raise ModelError(f"{url} answered with something that is not JSON: {payload[:200]!r}") from exc
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:500].decode("utf-8", "replace")
                last = f"HTTP {exc.code}: {detail}"
                if exc.code not in _RETRY_STATUS:
                    raise ModelError(f"{url} refused the request ({last})") from exc
                header = exc.headers.get("Retry-After") if exc.headers else None
                try:
                    retry_after = float(header) if header else None
                except ValueError:
                    retry_after = None
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt == self.max_retries:
                break
            delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * (1 + 0.1 * random.random())
            self._sleep(max(delay, retry_after or 0.0))
        raise ModelError(f"{url} failed after {self.max_retries + 1} attempts; last error: {last}")

    def _first_model(self) -> str:
        listing = self._request("GET", "/models")
        models = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict) and m.get("id")]
        if not models:
            raise ModelError(f"{self.endpoint}/models lists no models; pass the model name explicitly")
        return str(models[0])

    # --- messages -------------------------------------------------------------------------------

    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """OpenAI chat messages for a prompt: images, then the video, then the text."""
        msgs: list[dict[str, Any]] = []
        if prompt.system:
            msgs.append({"role": "system", "content": prompt.system})
        content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": data_url(f, self.image_format)}}
                                         for f in prompt.images]
        if prompt.video:
            if self.video_mode == "video_url":
                fps = float(prompt.video_fps or 1.0)
                content.append({"type": "video_url", "video_url": {"url": video_data_url(prompt.video, fps)}})
            else:
                content += [{"type": "image_url", "image_url": {"url": data_url(f, self.image_format)}}
                            for f in prompt.video]
        content.append({"type": "text", "text": prompt.text})
        msgs.append({"role": "user", "content": content})
        return msgs

    # --- the protocol ---------------------------------------------------------------------------

    def _complete(self, prompt: Prompt, params: SamplingParams) -> list[str]:
        msgs = self.messages(prompt)
        out: list[str] = []
        rounds = 0
        while len(out) < params.n:
            want = params.n - len(out)
            body: dict[str, Any] = {"model": self.model, "messages": msgs, "n": want,
                                    "temperature": params.temperature, "max_tokens": params.max_new_tokens,
                                    "seed": params.seed + rounds}
            if params.temperature > 0:
                body["top_p"] = params.top_p
            body.update(self.extra_body)
            reply = self._request("POST", "/chat/completions", body)
            choices = reply.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ModelError(f"{self.endpoint}/chat/completions returned no choices: {str(reply)[:300]}")
            for ch in sorted(choices, key=lambda c: c.get("index", 0))[:want]:
                content = (ch.get("message") or {}).get("content")
                out.append((content or "").strip())
            rounds += 1
            if rounds > params.n:  # a server that ignores n: one request per sample is enough
                break
        return out[: params.n]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions per prompt (``concurrency`` requests in flight)."""
        if params.n < 1 or params.max_new_tokens < 1:
            raise ModelError(f"sampling needs n >= 1 and max_new_tokens >= 1, got {params}")
        if len(prompts) <= 1 or self.concurrency == 1:
            return [self._complete(p, params) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda p: self._complete(p, params), prompts))

    def _prompt_logprobs(self, messages: list[dict[str, Any]], *, continue_final: bool) -> list[float | None]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": 1, "temperature": 0.0,
                                "prompt_logprobs": 0, "add_generation_prompt": not continue_final,
                                "continue_final_message": continue_final}
        reply = self._request("POST", "/chat/completions", body)
        plp = reply.get("prompt_logprobs")
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
            values.append(float(best["logprob"]) if isinstance(best, dict) else float(best))
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

        if len(continuations) <= 1 or self.concurrency == 1:
            return [score(c) for c in continuations]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(continuations))) as pool:
            return list(pool.map(score, continuations))

    def describe(self) -> dict[str, Any]:
        """Endpoint, model and request counters (for summaries)."""
        return {"backend": "openai", "model_id": self.model_id, "endpoint": self.endpoint, "model": self.model,
                "video_mode": self.video_mode, "requests": self.requests_sent, "retries": self.retries}
