"""Model backends behind one protocol (generate, log-likelihood), chosen by name."""

from __future__ import annotations

from stepkit.models.base import Prompt, SamplingParams, VideoLLM
from stepkit.models.families import FAMILIES, Family, family_names, get_family
from stepkit.models.registry import available_backends, get_backend, open_model, register_backend

__all__ = ["FAMILIES", "Family", "Prompt", "SamplingParams", "VideoLLM", "available_backends", "family_names",
           "get_backend", "get_family", "open_model", "register_backend"]
