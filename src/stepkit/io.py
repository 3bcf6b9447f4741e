"""Deterministic, atomic file output shared by every stage."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, ContextManager, Iterable, Iterator, TextIO


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """Serialise to JSON with sorted keys so equal objects give identical bytes."""
    return json.dumps(obj, indent=indent, sort_keys=True, ensure_ascii=False) + ("\n" if indent else "")


# Temporary names written beside their targets: ``.NAME.XXXXXXXX.tmp`` (``mkstemp`` here, 8 random
# characters) and ``.NAME.PID.tmp.EXT`` (the world's video encoder, which needs the extension).
_TEMP_NAME = re.compile(r"^\..+\.(?:[a-z0-9_]{8}\.tmp|\d+\.tmp\.[A-Za-z0-9]+)$")
_umask_guard = threading.Lock()


def _umask() -> int:
    # os.umask can only be read by setting it; do so under a lock and put it straight back.
    with _umask_guard:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """0666 less the umask: what ``open(path, "w")`` gives a new file (``mkstemp`` alone gives 0600)."""
    return 0o666 & ~_umask()


def new_file_mode(target: str | os.PathLike) -> int:
    """The permission bits a file written to ``target`` gets: those of the file it replaces, else
    :func:`default_file_mode`."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        return default_file_mode()


def _mkstemp_beside(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` (same folder, so the rename is atomic) with the final mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode(path))
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary files (``.NAME.XXXXXXXX.tmp``)."""
    return bool(_TEMP_NAME.match(name))


def sweep_stale_temps(folder: str | os.PathLike, *, skip: Callable[[Path], bool] | None = None) -> list[Path]:
    """Remove the temporary files a killed writer left under ``folder``; returns what was removed.

    Only call this while holding the folder's lock (:func:`stepkit.locks.output_lock`), so no live
    writer's file is taken. Subfolders for which ``skip(folder)`` is true are not entered.
    """
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if skip is not None:
            dirnames[:] = [d for d in dirnames if not skip(here / d)]
        for name in filenames:
            if is_temp_name(name):
                p = here / name
                try:
                    p.unlink()
                    removed.append(p)
                except FileNotFoundError:
                    pass
    return removed


@contextmanager
def _atomic_open(path: str | os.PathLike, mode: str) -> Iterator[IO[Any]]:
    from stepkit import faults

    path = Path(path)
    fd, tmp = _mkstemp_beside(path)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        faults.point("io.replace")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_text_writer(path: str | os.PathLike) -> ContextManager[TextIO]:
    """A UTF-8 text handle for streaming into ``path``: on success the whole file appears at once
    (temp file + fsync + rename); on any error the old file, if any, is left untouched."""
    return _atomic_open(path, "w")  # type: ignore[return-value]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one."""
    with _atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write JSON atomically with sorted keys."""
    return atomic_write_text(path, dumps_json(obj, indent=indent))


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    """Write one compact JSON object per line, atomically."""
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
    return atomic_write_text(path, text)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def atomic_write_many(items: Iterable[tuple[str | os.PathLike, str | bytes]]) -> list[Path]:
    """Write many files, each atomically (whole or not at all), with one disk sync for the batch.

    Syncing each small file on its own costs milliseconds apiece; thousands of graphs written this way
    take one ``os.sync`` instead. Every file is written to a temporary name beside its target first,
    all are synced together, then each is renamed into place.
    """
    from stepkit import faults

    staged: list[tuple[str, Path]] = []
    try:
        for path, data in items:
            path = Path(path)
            fd, tmp = _mkstemp_beside(path)
            staged.append((tmp, path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.sync()
        for tmp, path in staged:
            faults.point("io.replace")
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        raise
    return [p for _, p in staged]
