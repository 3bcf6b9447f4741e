"""Child processes that end with their parent: each in its own process group, killed as a group.

``stepkit selftrain`` runs every stage as a child process. Whatever ends the parent — Ctrl-C,
SIGTERM, SIGKILL, a crash — the stage child and everything it started (data-loader workers, a
launcher's ranks, worker pools) must end too, or a rerun would write into the same folder at the
same time as the orphan. Three layers make sure of it:

1. the child starts a new session (its own process group), so the whole group can be signalled
   with one ``killpg``, and the parent does so when it is interrupted or the child has exited;
2. on Linux the child asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``),
   which also covers a parent killed by SIGKILL, where no handler runs;
3. every ``stepkit`` process started under the stage (the variable :data:`PARENT_ENV` says which
   process started it) watches that process and kills its own group once it is gone, which covers
   grandchildren (e.g. the ranks ``torchrun`` starts) that the kernel's signal does not reach.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

PARENT_ENV = "STEPKIT_STAGE_PARENT"
_PR_SET_PDEATHSIG = 1


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no libc symbols
        return None


def _child_preexec(parent_pid: int, libc: Any) -> None:
    # Runs in the child between fork and exec: keep it to system calls.
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        os._exit(1)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal every process of group ``pgid`` (nothing if the group is gone)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def popen_group(cmd: list[str], *, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
    """Start ``cmd`` in a new process group that dies with this process (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    env[PARENT_ENV] = str(os.getpid())
    libc = _libc()
    parent = os.getpid()
    # Code between fork and exec can deadlock on a lock another thread held at the fork: with other
    # threads alive (the replication study's parallel chains) rely on layer 3 alone.
    preexec = (lambda: _child_preexec(parent, libc)) if threading.active_count() == 1 else None
    return subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=preexec, **kwargs)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise SystemExit (so cleanup code runs) instead of
    ending the process on the spot; only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_group(cmd: list[str], *, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``cmd`` like ``subprocess.run`` (``stdout``/``stderr`` as given), in its own process group.

    If this process is interrupted (Ctrl-C, SIGTERM, SIGHUP) the whole group is killed before the
    interruption propagates; once the command exits, whatever it left running in its group is killed.
    """
    with _signals_raise():
        proc = popen_group(cmd, env=env, **kwargs)
        try:
            from stepkit import faults

            faults.point("stage.start")
            stdout, stderr = proc.communicate()
        except BaseException:
            kill_group(proc.pid)
            proc.wait()
            raise
        finally:
            kill_group(proc.pid)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def watch_parent_from_env() -> None:
    """In a stage's process, kill the stage's process group once the process that started the stage
    (named by :data:`PARENT_ENV`) has exited. Does nothing outside a stage."""
    text = os.environ.get(PARENT_ENV)
    if not text or not text.isdigit():
        return
    parent = int(text)
    try:
        if os.getpgid(parent) == os.getpgrp():
            return  # not in a group of our own: killing it would take the parent too
    except ProcessLookupError:
        kill_group(os.getpgrp())
        return
    threading.Thread(target=_watch, args=(parent,), name="stepkit-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    import select

    try:
        fd = os.pidfd_open(parent)  # type: ignore[attr-defined]
    except ProcessLookupError:
        kill_group(os.getpgrp())
        return
    except (AttributeError, OSError):  # no pidfd (not Linux, old kernel): ask once a second
        stop = threading.Event()
        while not stop.wait(1.0):
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                continue
        kill_group(os.getpgrp())
        return
    select.select([fd], [], [])  # readable once the process has exited
    kill_group(os.getpgrp())
