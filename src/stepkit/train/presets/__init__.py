"""Distributed presets by name: bundled accelerate / DeepSpeed / FSDP settings for the Trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError

PRESET_DIR = Path(__file__).resolve().parent
_NAMES = ("ddp", "zero2", "zero3", "fsdp")


def preset_names() -> list[str]:
    """Known preset names."""
    return list(_NAMES)


def load_preset(name: str) -> dict[str, Any]:
    """The preset's description, launch hint, requirements and TrainingArguments overrides."""
    if name not in _NAMES:
        raise ConfigError(f"unknown training preset {name!r}; known: {', '.join(_NAMES)}")
    return json.loads((PRESET_DIR / f"{name}.json").read_text(encoding="utf-8"))


def preset_training_args(name: str) -> dict[str, Any]:
    """TrainingArguments overrides of a preset, with bundled file names made absolute paths.

    ConfigError when the preset needs a package that is not installed (DeepSpeed for zero2/zero3).
    """
    import importlib.util

    spec = load_preset(name)
    req = spec.get("requires")
    if req and importlib.util.find_spec(req) is None:
        raise ConfigError(f"training preset {name!r} needs the {req!r} package: "
                          f"pip install --no-build-isolation {req}")
    args = dict(spec["training_args"])
    if isinstance(args.get("deepspeed"), str):
        args["deepspeed"] = str(PRESET_DIR / args["deepspeed"])
    return args


def accelerate_config_path(name: str) -> Path:
    """The bundled ``accelerate launch --config_file`` YAML of a preset."""
    return PRESET_DIR / load_preset(name)["accelerate_config"]
