"""Build hook: compile the question generator's hot modules with mypyc (a wheel that generates
about 1.5x faster, byte-identical output); pyproject.toml holds everything else.

``STEPKIT_COMPILE``: ``auto`` (default: compile when mypyc and a C compiler are present, else pure
Python), ``1`` (compile or fail), ``0`` (pure Python). Editable installs are always pure Python
(``_build/stepkit_build.py``): a compiled module would shadow the source being edited.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from setuptools import setup

# The modules `stepkit generate` spends its time in (docs/benchmarks/generate.md); each must pass
# mypy, since mypyc enforces the annotations at run time (tests/reason/test_compiled.py).
COMPILED = ["ops", "quality", "sampler", "generate", "render", "lexicon", "plausibility", "draw"]


def _ext_modules() -> list:
    mode = os.environ.get("STEPKIT_COMPILE", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"STEPKIT_COMPILE={mode!r}: expected auto, 0 or 1")
    if mode == "0" or os.environ.get("STEPKIT_EDITABLE_BUILD") == "1":
        return []
    problem = None
    try:
        from mypyc.build import mypycify
    except ImportError:
        problem = "mypyc is not installed"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if problem is None and shutil.which(os.environ.get("CC", cc).split()[0]) is None:
        problem = f"no C compiler ({cc}) on PATH"
    if problem is not None:
        if mode == "1":
            sys.exit(f"STEPKIT_COMPILE=1: {problem}")
        print(f"stepkit: building pure Python ({problem}; generation runs ~1.5x slower)", file=sys.stderr)
        return []
    paths = [f"src/stepkit/reason/{m}.py" for m in COMPILED]
    return mypycify(paths, opt_level="3", debug_level="0")


setup(ext_modules=_ext_modules())
