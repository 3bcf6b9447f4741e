"""Named points where a test can have this process killed, to prove a stage survives SIGKILL there.

Set ``STEPKIT_KILL_AT="POINT:N[,POINT:N…]"`` (e.g. ``io.replace:3``) and the process sends itself
SIGKILL the N-th time it reaches POINT. ``VERB/POINT:N`` limits it to a ``stepkit VERB`` process
(e.g. ``train/io.replace:2`` in the train stage a ``stepkit selftrain`` runs). Unset (always, outside
tests) a point costs one dict lookup.
Points: ``io.replace`` (before an atomic file is renamed into place), ``induce.video`` (after a
video's graph and manifest line are written), ``stage.start`` (in ``stepkit selftrain``, once a
stage's child process has started).
"""

from __future__ import annotations

import os
import signal
import sys

_ENV = "STEPKIT_KILL_AT"


def _parse(text: str) -> dict[str, int]:
    plan: dict[str, int] = {}
    verb = sys.argv[1] if len(sys.argv) > 1 else ""
    for part in text.split(","):
        name, _, n = part.strip().rpartition(":")
        scope, _, name = name.rpartition("/")
        if name and n.isdigit() and scope in ("", verb):
            plan[name] = int(n)
    return plan


_plan = _parse(os.environ.get(_ENV, ""))
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Count a pass through ``name``; SIGKILL this process on the planned pass."""
    if not _plan or name not in _plan:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _plan[name]:
        os.kill(os.getpid(), signal.SIGKILL)
