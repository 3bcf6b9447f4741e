"""Raw video → STSG: the paper's Video-LLM parser, classical perception, and the world perceiver."""

from __future__ import annotations

from stepkit.induce.base import Inducer, available_inducers, get_inducer, register_inducer

__all__ = ["Inducer", "available_inducers", "get_inducer", "register_inducer"]
