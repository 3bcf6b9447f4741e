"""Worker pools must not inherit locks from a parent that runs other threads."""

from __future__ import annotations

import threading
from concurrent.futures import ProcessPoolExecutor

import pytest

from stepkit.parallel import pool_context

_LOCK = threading.Lock()


def _take_lock(x: int) -> int:
    with _LOCK:
        return x * 2


@pytest.mark.timeout(120)
def test_workers_start_clean_while_another_thread_holds_a_lock():
    """With plain fork a worker would get a copy of ``_LOCK`` that is held forever (what hung a
    Charades import inside the test session); workers of ``pool_context()`` start clean."""
    assert pool_context().get_start_method() != "fork"
    held, release = threading.Event(), threading.Event()

    def hold():
        with _LOCK:
            held.set()
            release.wait(60)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(10)
    try:
        with ProcessPoolExecutor(max_workers=2, mp_context=pool_context()) as pool:
            futures = [pool.submit(_take_lock, i) for i in range(4)]
            assert [f.result(timeout=60) for f in futures] == [0, 2, 4, 6]
    finally:
        release.set()
        t.join()
