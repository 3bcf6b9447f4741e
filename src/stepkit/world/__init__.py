"""The synthetic world: a seeded simulator that renders household videos with their exact STSG.

>>> from stepkit.world import render_world, simulate, vocab
>>> graph, frames = simulate(0, duration=5)   # doctest: +SKIP
"""

from __future__ import annotations

from stepkit.world import vocab
from stepkit.world.api import render_video, render_world, simulate, video_name, video_seed

__all__ = ["render_video", "render_world", "simulate", "video_name", "video_seed", "vocab"]
