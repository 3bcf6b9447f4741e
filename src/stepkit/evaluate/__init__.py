"""Evaluation: benchmark loaders, multiple-choice and open-ended scoring through any model backend,
accuracy by reasoning steps and type with bootstrap intervals, paired comparisons, reports, and the
lmms-eval export. Names are imported lazily so ``import stepkit.evaluate`` stays light."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "EvalConfig": "stepkit.evaluate.runner",
    "evaluate": "stepkit.evaluate.runner",
    "compare_runs": "stepkit.evaluate.runner",
    "EvalItem": "stepkit.evaluate.items",
    "resolve_videos": "stepkit.evaluate.items",
    "MissingVideosError": "stepkit.evaluate.items",
    "TASKS": "stepkit.evaluate.tasks",
    "get_task": "stepkit.evaluate.tasks",
    "extract_choice": "stepkit.evaluate.extract",
    "open_match": "stepkit.evaluate.extract",
    "breakdown": "stepkit.evaluate.metrics",
    "paired_comparison": "stepkit.evaluate.metrics",
    "export_lmms": "stepkit.evaluate.lmms",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stepkit.evaluate' has no attribute {name!r}")
