"""Kill-and-resume helpers (imported by the tests of this folder): run a verb as a real process, SIGKILL it at a named point, compare folders.

A kill point is planned with ``STEPKIT_KILL_AT`` (see :mod:`stepkit.faults`): the process kills
itself there, so every kill lands at the same place on every run and nothing waits on a clock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

# Written out rather than imported from stepkit, so the tests read the same against older code.
LOCK_NAME = ".stepkit.lock"
_TEMP = re.compile(r"^\..+\.(?:[a-z0-9_]{8}\.tmp|\d+\.tmp\.[A-Za-z0-9]+)$")


def is_temp_name(name: str) -> bool:
    """A temporary file of an atomic writer (``.NAME.XXXXXXXX.tmp``, ``.NAME.PID.tmp.EXT``)."""
    return bool(_TEMP.match(name))


def stepkit(*args: str, kill_at: str | None = None, check: bool = True, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m stepkit.cli ARGS``; with ``kill_at`` the run must die by SIGKILL there."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env.pop("STEPKIT_KILL_AT", None)
    if kill_at:
        env["STEPKIT_KILL_AT"] = kill_at
    proc = subprocess.run([sys.executable, "-m", "stepkit.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)
    if check:
        if kill_at:
            assert proc.returncode == -signal.SIGKILL, (
                f"expected a SIGKILL at {kill_at}, got exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        else:
            assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def strays(folder: Path) -> list[str]:
    """Temporary files and lock files left anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and (is_temp_name(p.name) or p.name == LOCK_NAME))


def tree(folder: Path, *, skip: Callable[[str], bool] = lambda rel: False) -> dict[str, str]:
    """relative path -> SHA-256 of every file under ``folder`` (minus ``skip``)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_file() and not skip(rel):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def json_without(path: Path, *keys: str) -> Any:
    """A JSON file with run-dependent keys (timings, counts of this session) removed at any depth."""
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in keys}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return strip(json.loads(path.read_text(encoding="utf-8")))


def jsonl_without(path: Path, *keys: str) -> list[Any]:
    """Each line of a JSONL file with ``keys`` removed."""
    return [{k: v for k, v in json.loads(ln).items() if k not in keys}
            for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


