"""Fixtures shared by the whole suite."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip when it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"needs the reference data at {path} (../shared beside the checkout); absent here")
    return path


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str) -> None:
    """Return once ``condition()`` holds; fail if ``proc`` exits first or ``timeout`` seconds pass.

    Between checks it blocks on the process itself, so an early exit is seen at once.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        try:
            proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        if not condition():
            raise AssertionError(f"the process exited ({proc.returncode}) before {what}")


@pytest.fixture
def wait_for():
    """``wait_for(condition, proc, timeout, what)``: block on a child process until ``condition()`` holds."""
    return _wait_for


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run far faster on one torch thread than on two contended ones (measured here: ~20x)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
