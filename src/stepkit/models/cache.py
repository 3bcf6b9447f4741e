"""An on-disk response cache (SQLite) and a backend wrapper that uses it.

Keys are SHA-256 hashes of (model id, prompt text, system message, hashes of the image and video
frames, video fps, sampling parameters) for generations, and of (model id, prompt, continuation)
for log-likelihoods. Results are committed after every inner call, so a rerun is free and an
interrupted run resumes where it stopped. The database runs in WAL mode with a busy timeout, so
several processes can share one cache file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from stepkit.errors import ModelError
from stepkit.models import usage
from stepkit.models.base import Prompt, SamplingParams, VideoLLM

CACHE_SCHEMA_VERSION = 1


def frame_hash(frame: np.ndarray) -> str:
    """SHA-256 of a frame's shape, dtype and pixels."""
    arr = np.ascontiguousarray(frame)
    h = hashlib.sha256(f"{arr.shape}|{arr.dtype}|".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def prompt_key(prompt: Prompt) -> dict[str, Any]:
    """The parts of a prompt that change an answer, with frames replaced by their hashes."""
    return {"text": prompt.text, "system": prompt.system, "images": [frame_hash(f) for f in prompt.images],
            "video": None if prompt.video is None else [frame_hash(f) for f in prompt.video],
            "video_fps": prompt.video_fps}


def sampling_key(params: SamplingParams) -> dict[str, Any]:
    """Sampling parameters that matter; greedy decoding ignores seed and top_p."""
    key = params.key()
    if params.temperature <= 0:
        key.update(seed=None, top_p=None, temperature=0.0)
    return key


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class ResponseCache:
    """A SQLite table of ``key → JSON value``; safe to share between threads and processes."""

    def __init__(self, path: str | os.PathLike, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=self.timeout_s, check_same_thread=False,
                                   isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model_id TEXT NOT NULL, "
                         "kind TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL)")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(CACHE_SCHEMA_VERSION),))
        except sqlite3.DatabaseError as exc:
            raise ModelError(f"response cache {self.path} is not usable: {exc}") from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Values stored under ``keys`` (missing keys are absent from the result)."""
        out: dict[str, Any] = {}
        with self._lock:
            conn = self._connect()
            for start in range(0, len(keys), 500):
                part = list(keys[start:start + 500])
                marks = ",".join("?" * len(part))
                for key, value in conn.execute(f"SELECT key, value FROM responses WHERE key IN ({marks})", part):
                    out[key] = json.loads(value)
        return out

    def put_many(self, rows: Iterable[tuple[str, str, str, Any]]) -> None:
        """Store ``(key, model_id, kind, value)`` rows in one transaction."""
        rows = [(k, m, kind, json.dumps(v, ensure_ascii=False), time.time()) for k, m, kind, v in rows]
        if not rows:
            return
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close this process's connection."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


class CachedBackend:
    """Wraps a backend so every answer is looked up in (and saved to) a :class:`ResponseCache`.

    ``chunk_size`` prompts go to the inner backend per call; each chunk is committed before the
    next starts, so killing a run loses at most one chunk. ``hits`` / ``misses`` count prompts
    (generation) and continuations (log-likelihood).
    """

    def __init__(self, inner: VideoLLM, path: str | os.PathLike | ResponseCache, *, chunk_size: int = 8) -> None:
        self.inner = inner
        self.cache = path if isinstance(path, ResponseCache) else ResponseCache(path)
        # A backend that runs many requests at once (openai) gets chunks as large as its request
        # pool, so the cache does not cut a stage into rounds of 8 requests.
        self.chunk_size = max(1, chunk_size, int(getattr(inner, "concurrency", 1) or 1))
        self.model_id = inner.model_id
        self.hits = 0
        self.misses = 0
        self._count_lock = threading.Lock()

    @property
    def concurrency(self) -> int:
        """The inner backend's request concurrency (1 for a local model)."""
        return int(getattr(self.inner, "concurrency", 1) or 1)

    def saturated(self) -> bool:
        """Whether the inner backend's request slots are all busy (False where it cannot tell)."""
        fn = getattr(self.inner, "saturated", None)
        return bool(fn()) if callable(fn) else False

    def _count(self, hits: int, misses: int) -> None:
        with self._count_lock:
            self.hits += hits
            self.misses += misses
        usage.record(cache_hits=hits, cache_misses=misses)

    def generation_key(self, prompt: Prompt, params: SamplingParams) -> str:
        """The cache key of one prompt's completions."""
        return _digest({"v": CACHE_SCHEMA_VERSION, "kind": "generate", "model": self.model_id,
                        "prompt": prompt_key(prompt), "params": sampling_key(params)})

    def loglikelihood_key(self, prompt: Prompt, continuation: str) -> str:
        """The cache key of one continuation's log-likelihood."""
        return _digest({"v": CACHE_SCHEMA_VERSION, "kind": "loglikelihood", "model": self.model_id,
                        "prompt": prompt_key(prompt), "continuation": continuation})

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        """Cached completions; only prompts not in the cache reach the inner backend."""
        keys = [self.generation_key(p, params) for p in prompts]
        found = self.cache.get_many(sorted(set(keys)))
        todo: list[int] = []
        seen: set[str] = set()
        for i, k in enumerate(keys):
            if k not in found and k not in seen:
                todo.append(i)
                seen.add(k)
        self._count(len(prompts) - len(todo), len(todo))
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start:start + self.chunk_size]
            answers = self.inner.generate([prompts[i] for i in chunk], params)
            if len(answers) != len(chunk):
                raise ModelError(f"backend {self.model_id} returned {len(answers)} answers for {len(chunk)} prompts")
            rows = [(keys[i], self.model_id, "generate", list(a)) for i, a in zip(chunk, answers)]
            self.cache.put_many(rows)
            found.update({keys[i]: list(a) for i, a in zip(chunk, answers)})
        return [list(found[k]) for k in keys]

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """Cached log-likelihoods; only unseen continuations reach the inner backend."""
        keys = [self.loglikelihood_key(prompt, c) for c in continuations]
        found = self.cache.get_many(sorted(set(keys)))
        todo_conts: list[str] = []
        todo_keys: list[str] = []
        seen: set[str] = set()
        for k, c in zip(keys, continuations):
            if k not in found and k not in seen:
                todo_conts.append(c)
                todo_keys.append(k)
                seen.add(k)
        self._count(len(continuations) - len(todo_conts), len(todo_conts))
        if todo_conts:
            values = self.inner.loglikelihood(prompt, todo_conts)
            self.cache.put_many((k, self.model_id, "loglikelihood", float(v)) for k, v in zip(todo_keys, values))
            found.update(zip(todo_keys, (float(v) for v in values)))
        return [float(found[k]) for k in keys]

    def describe(self) -> dict[str, Any]:
        """The inner backend's description plus the cache path and counters."""
        inner = self.inner.describe() if hasattr(self.inner, "describe") else {"model_id": self.model_id}
        return {**inner, "cache": str(self.cache.path), "cache_hits": self.hits, "cache_misses": self.misses}
