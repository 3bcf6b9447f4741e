"""One writer per output folder: an exclusive ``flock`` on ``OUT/.stepkit.lock`` for as long as a stage runs.

A second ``stepkit`` run into the same folder fails at once with :class:`FolderLocked`, naming the
process that holds it (pid, command line, start time). The kernel drops the lock when its holder
exits, however it exits (SIGKILL included), so a killed run never leaves a folder locked; the next
run that takes the lock also removes the temporary files the killed one left (see
:func:`stepkit.io.sweep_stale_temps`). The lock file itself is removed when the lock is released,
so a finished folder holds only the stage's outputs.

Every verb that writes a folder takes the lock: the CLI wraps every verb with an ``--out`` folder
(:func:`lock_commands`), and :func:`output_lock` can be used directly by library callers.
The lock is reentrant within a process, so a verb and the library function it calls can both take it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from stepkit.errors import StepkitError

LOCK_NAME = ".stepkit.lock"

# Every verb with an ``--out`` option holds the lock of that folder, so a verb added later is covered
# too; these verbs' ``--out`` is a file, not a folder. (The pipeline verbs also lock their run folder
# inside the library, where the folder may come from the config.)
OUT_IS_A_FILE: frozenset[tuple[str, ...]] = frozenset({("bench", "train")})


class FolderLocked(StepkitError):
    """Another process is writing into the output folder."""


_held: dict[str, list[Any]] = {}  # resolved folder -> [fd, depth]
_guard = threading.Lock()


def _is_secondary_rank() -> bool:
    # Under torchrun every rank runs the same verb; rank 0 holds the lock for the group.
    try:
        return int(os.environ.get("RANK", "0")) != 0
    except ValueError:
        return False


def describe_holder(lock_path: Path) -> str:
    """``pid N (command), since TIME`` from a lock file, or a generic phrase when it cannot be read."""
    try:
        info = json.loads(lock_path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])} ({info.get('command', '?')}), since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its details are not written yet)"


def _skip_locked_subfolder(folder: Path) -> bool:
    """Sweeping stops at nested output folders: they belong to their own stage (and its lock)."""
    return (folder / LOCK_NAME).exists()


def _acquire(folder: Path) -> int:
    import fcntl

    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLocked(
                f"{folder}: another stepkit run is writing into this folder: {describe_holder(path)}; "
                "wait for it to finish, or give another output folder") from None
        except OSError as exc:
            os.close(fd)
            raise StepkitError(f"{path}: cannot lock the output folder: {exc.strerror or exc}") from None
        # A holder that was releasing may have unlinked the file we opened: only the file at the
        # path counts, else two runs could each hold "the" lock on different files.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def output_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock on ``folder`` (created if missing) for the ``with`` block.

    Raises :class:`FolderLocked` naming the holder when another process has it. On entry, stale
    temporary files of killed writers under ``folder`` are removed. A folder this call created is
    removed again on exit if it is still empty.
    """
    from stepkit.io import sweep_stale_temps

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise StepkitError(f"{folder}: is a file; the output must be a folder")
    if _is_secondary_rank():
        yield folder
        return
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StepkitError(f"{folder}: cannot create the output folder: {exc.strerror or exc}") from None
    key = str(folder.resolve())
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield folder
        finally:
            with _guard:
                entry[1] -= 1
        return
    fd = _acquire(folder)
    with _guard:
        _held[key] = [fd, 1]
    try:
        info = {"pid": os.getpid(), "command": " ".join(["stepkit", *sys.argv[1:]]) if sys.argv else "?",
                "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)
        sweep_stale_temps(folder, skip=_skip_locked_subfolder)
        started = time.time()
        yield folder
    finally:
        with _guard:
            _held.pop(key, None)
        if "started" in locals():
            _honour_umask(folder, started)
        try:
            os.unlink(folder / LOCK_NAME)  # while still holding it: see _acquire
        except OSError:
            pass
        os.close(fd)
        if created:
            try:
                folder.rmdir()  # only succeeds when nothing was written
            except OSError:
                pass


def _honour_umask(folder: Path, since: float) -> None:
    """Give files this run wrote with ``mkstemp``'s 0600 (libraries' atomic writers, e.g. the model
    weights transformers saves) the mode the umask asks for, as stepkit's own writer does."""
    from stepkit.io import default_file_mode

    want = default_file_mode()
    if want == 0o600:
        return
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not _skip_locked_subfolder(here / d)]
        for name in filenames:
            p = here / name
            try:
                st = p.stat()
                if st.st_mode & 0o777 == 0o600 and st.st_mtime >= since - 1 and st.st_uid == os.getuid():
                    p.chmod(want)
            except OSError:
                pass


def holds_lock(folder: str | os.PathLike) -> bool:
    """Whether this process holds the lock on ``folder``."""
    with _guard:
        return str(Path(folder).resolve()) in _held


def locked_callback(callback: Callable[..., Any], param: str) -> Callable[..., Any]:
    """``callback`` (a typer command) running under :func:`output_lock` of its ``param`` argument."""
    sig = inspect.signature(callback)

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        folder = sig.bind_partial(*args, **kwargs).arguments.get(param)
        if folder is None:
            return callback(*args, **kwargs)
        try:
            lock = output_lock(folder)
            lock.__enter__()
        except StepkitError as exc:
            from stepkit.cli_common import fail

            fail(exc)
        ok = False
        try:
            result = callback(*args, **kwargs)
            ok = True
            return result
        finally:
            if ok:
                lock.__exit__(None, None, None)
            else:
                lock.__exit__(*sys.exc_info())

    return run


def lock_commands(app: Any, param: str = "out", skip: frozenset[tuple[str, ...]] = OUT_IS_A_FILE
                  ) -> list[tuple[str, ...]]:
    """Wrap every verb of the typer ``app`` that takes ``param`` (but those in ``skip``) so it holds
    that folder's lock while it runs; returns the verbs wrapped."""
    done: list[tuple[str, ...]] = []

    def wrap(info: Any, name: tuple[str, ...]) -> None:
        if info.callback is None or name in skip or hasattr(info.callback, "__stepkit_locked__"):
            return
        if param in inspect.signature(info.callback).parameters:
            info.callback = locked_callback(info.callback, param)
            info.callback.__stepkit_locked__ = True
            done.append(name)

    def walk(typer_app: Any, prefix: tuple[str, ...]) -> None:
        if typer_app.registered_callback is not None:
            wrap(typer_app.registered_callback, prefix)
        for cmd in typer_app.registered_commands:
            wrap(cmd, prefix + (cmd.name or cmd.callback.__name__.replace("_", "-"),))
        for group in typer_app.registered_groups:
            walk(group.typer_instance, prefix + (group.name,))

    walk(app, ())
    return done
