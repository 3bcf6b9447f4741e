"""stepkit's build backend: setuptools', plus mypy where setup.py compiles, and never compiled
modules in an editable install (they would shadow the sources being edited)."""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every hook not redefined below)

_MYPYC = "mypy>=1.11"


def _compiling() -> bool:
    return os.environ.get("STEPKIT_COMPILE", "auto").strip().lower() != "0"


def get_requires_for_build_wheel(config_settings=None):
    extra = [_MYPYC] if _compiling() else []
    return _setuptools.get_requires_for_build_wheel(config_settings) + extra


def _pure(hook):
    def run(*args, **kwargs):
        os.environ["STEPKIT_EDITABLE_BUILD"] = "1"
        try:
            return hook(*args, **kwargs)
        finally:
            os.environ.pop("STEPKIT_EDITABLE_BUILD", None)
    run.__name__ = hook.__name__
    return run


get_requires_for_build_editable = _pure(_setuptools.get_requires_for_build_editable)
prepare_metadata_for_build_editable = _pure(_setuptools.prepare_metadata_for_build_editable)
build_editable = _pure(_setuptools.build_editable)
