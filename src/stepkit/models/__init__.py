"""Model backends behind one protocol (generate, log-likelihood), chosen by name."""

from __future__ import annotations

from stepkit.models.base import Prompt, SamplingParams, VideoLLM

__all__ = ["Prompt", "SamplingParams", "VideoLLM"]
