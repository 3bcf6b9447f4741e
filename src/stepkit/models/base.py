"""The protocol every model backend speaks: chat generation over images or video, and log-likelihood."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass
class Prompt:
    """One chat turn for a Video-LLM.

    ``images`` are HxWx3 uint8 frames shown as separate images; ``video`` is a list of such frames
    shown as one video (with ``video_fps``). ``system`` is an optional system message.
    """

    text: str
    images: list[np.ndarray] = field(default_factory=list)
    video: list[np.ndarray] | None = None
    video_fps: float | None = None
    system: str | None = None


@dataclass
class SamplingParams:
    """How to decode: ``n`` samples at ``temperature`` (0 means greedy), at most ``max_new_tokens``."""

    n: int = 1
    temperature: float = 0.0
    max_new_tokens: int = 256
    top_p: float = 1.0
    seed: int = 0

    def key(self) -> dict[str, Any]:
        """The fields that change an answer (the response-cache key)."""
        return {"n": self.n, "temperature": self.temperature, "max_new_tokens": self.max_new_tokens,
                "top_p": self.top_p, "seed": self.seed}


@runtime_checkable
class VideoLLM(Protocol):
    """A backend that answers prompts about images or video."""

    model_id: str

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        """For each prompt, ``params.n`` completions."""
        ...

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """Summed log-probability of each continuation given the prompt."""
        ...
