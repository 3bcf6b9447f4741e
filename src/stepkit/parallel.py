"""Process pools that are safe to start from a process that already runs threads."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.context import BaseContext


def pool_context() -> BaseContext:
    """The multiprocessing context for stepkit's worker pools: ``forkserver`` where the platform has
    it, else ``spawn``.

    Plain ``fork`` copies a process together with locks that its other threads (torch's and
    OpenCV's thread pools, a test runner's) may hold at that moment, and a child that then needs
    such a lock waits forever; a Charades import started inside a test session that had used torch
    hung that way. Workers of these contexts start from a clean, single-threaded process instead.
    """
    return mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
