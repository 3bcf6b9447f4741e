"""Model backends chosen by name, imported lazily (``hf`` and ``tiny`` need torch; ``openai`` does not)."""

from __future__ import annotations

import importlib
from typing import Any, Callable

from stepkit.errors import ModelError
from stepkit.models.base import VideoLLM

# name -> "module:factory"; each factory takes keyword options and returns a VideoLLM.
_BACKENDS: dict[str, str] = {
    "hf": "stepkit.models.hf:HFBackend",
    "tiny": "stepkit.models.hf:tiny_backend",
    "openai": "stepkit.models.openai_compat:OpenAIBackend",
    "scripted": "stepkit.models.scripted:scripted_backend",
}


def register_backend(name: str, target: str) -> None:
    """Register ``"module:factory"`` under ``name`` (for plug-ins and scripted test backends)."""
    _BACKENDS[name] = target


def available_backends() -> list[str]:
    """Registered backend names."""
    return sorted(_BACKENDS)


def get_backend(name: str, *, cache: str | None = None, **options: Any) -> VideoLLM:
    """Build the backend registered as ``name`` with ``options``.

    ``cache`` (a file path) wraps it in a :class:`~stepkit.models.cache.CachedBackend`.
    Examples: ``get_backend("hf", model="/ckpt/Qwen2.5-VL-7B-Instruct")``,
    ``get_backend("openai", endpoint="http://127.0.0.1:8000/v1", model="qwen")``,
    ``get_backend("tiny", family="qwen2.5-vl", seed=0)``.
    """
    if name not in _BACKENDS:
        raise ModelError(f"unknown model backend {name!r}; choose one of {', '.join(available_backends())}")
    module, _, attr = _BACKENDS[name].partition(":")
    factory: Callable[..., VideoLLM] = getattr(importlib.import_module(module), attr)
    backend = factory(**options)
    if cache:
        from stepkit.models.cache import CachedBackend

        backend = CachedBackend(backend, cache)
    return backend


def open_model(model: str | None = None, endpoint: str | None = None, *, cache: str | None = None,
               **options: Any) -> VideoLLM:
    """The backend a CLI's ``--model PATH_OR_ID`` / ``--endpoint URL`` pair asks for.

    ``endpoint`` → ``openai`` (``model`` is then the served name, or None for the server's first);
    ``model="tiny:FAMILY"`` or ``"tiny:FAMILY:SEED"`` → ``tiny``; anything else → ``hf`` (a local
    folder, or a hub id where a network exists). ``options`` go to the backend's constructor.
    """
    if endpoint:
        return get_backend("openai", endpoint=endpoint, model=model, cache=cache, **options)
    if not model:
        raise ModelError("no model given: pass a local checkpoint folder, tiny:FAMILY, or an --endpoint URL")
    if model.startswith("tiny:"):
        return get_backend("tiny", model=model, cache=cache, **options)
    return get_backend("hf", model=model, cache=cache, **options)
