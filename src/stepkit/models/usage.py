"""Per-task cost meters: requests, retries, tokens (from the server's ``usage``) and cache hits.

A backend adds what one call cost to every meter active in the calling context
(:func:`metering`), so a batch runner that induces many videos at once on one shared backend still
knows what each video cost. Worker threads a backend starts inherit the caller's meters because it
submits its work with :func:`contextvars.copy_context`.
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

FIELDS = ("requests", "retries", "completions", "prompt_tokens", "completion_tokens", "cache_hits", "cache_misses")


@dataclass
class Usage:
    """What some model calls cost; thread-safe to add to."""

    requests: int = 0
    retries: int = 0
    completions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        """Add ``counts`` (names from :data:`FIELDS`)."""
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + int(v))

    def merge(self, other: "Usage | dict[str, Any]") -> None:
        """Add another meter's (or its dict's) counts."""
        d = other.to_dict() if isinstance(other, Usage) else other
        self.add(**{k: int(d.get(k, 0) or 0) for k in FIELDS})

    def to_dict(self) -> dict[str, int]:
        """The counts as a plain dict."""
        with self._lock:
            return {k: getattr(self, k) for k in FIELDS}


_METERS: contextvars.ContextVar[tuple[Usage, ...]] = contextvars.ContextVar("stepkit_usage_meters", default=())


@contextmanager
def metering(usage: Usage | None = None) -> Iterator[Usage]:
    """Count every backend call made in this context (and in work it hands to threads) into ``usage``."""
    meter = usage if usage is not None else Usage()
    token = _METERS.set(_METERS.get() + (meter,))
    try:
        yield meter
    finally:
        _METERS.reset(token)


def record(**counts: int) -> None:
    """Add ``counts`` to every meter active in the calling context."""
    for m in _METERS.get():
        m.add(**counts)


__all__ = ["FIELDS", "Usage", "metering", "record"]
