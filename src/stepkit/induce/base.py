"""The inducer protocol and the registry that picks an inducer by name (``--backend``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from stepkit.errors import ConfigError
from stepkit.graph.types import STSG


@runtime_checkable
class Inducer(Protocol):
    """Turns one video file into a scene graph."""

    name: str

    def config(self) -> dict[str, Any]:
        """The settings that shape the output (saved in summaries; part of the resume key)."""
        ...

    def induce(self, video: Path, video_id: str) -> STSG:
        """The STSG of ``video``; raises a StepkitError for unreadable input."""
        ...


# name -> "module:factory"; factories take keyword options and return an Inducer. Lazy, so
# `--backend opencv` never imports torch and `--backend vlm` never imports cv2 needlessly.
_REGISTRY: dict[str, str] = {
    "world": "stepkit.induce.world:WorldInducer",
    "opencv": "stepkit.induce.opencv:OpenCVInducer",
    "vlm": "stepkit.induce.vlm:VLMInducer",
}


def register_inducer(name: str, target: str) -> None:
    """Register ``"module:factory"`` under ``name``."""
    _REGISTRY[name] = target


def available_inducers() -> list[str]:
    """Registered inducer names."""
    return sorted(_REGISTRY)


def get_inducer(name: str, **options: Any) -> Inducer:
    """Build the inducer registered as ``name`` with ``options``."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown inducer backend {name!r}; choose one of {', '.join(available_inducers())}")
    module, _, attr = _REGISTRY[name].partition(":")
    factory: Callable[..., Inducer] = getattr(importlib.import_module(module), attr)
    return factory(**options)
