"""The one rule for the video paths that records and exports name, used by every stage.

A path written by stepkit opens from where it is read. By default it is **absolute and normalised**
(``os.path.abspath`` + ``normpath``; symlinks are kept as named). As an option (``relative``) it is
**relative to the folder of the file that holds it** (``qa.jsonl``, ``llava.json``, ``trl.jsonl`` …),
so a folder of records and videos can be moved as a whole.

Reading a path back (:func:`resolve_video`): an absolute path is taken as is; a relative one is
relative to the holding file's folder (``base``). A ``videos_dir`` (``--videos-dir``) is tried first,
both with the path as named (when it stays inside the folder) and with its file name alone, so
videos moved to one folder are found again. The working directory is never consulted: the same file means the same videos from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from stepkit.errors import ConfigError, DataError

PATH_MODES = ("absolute", "relative")


def normalise(path: str | os.PathLike) -> str:
    """``path`` made absolute (against the working directory) and normalised."""
    return os.path.normpath(os.path.abspath(os.fspath(path)))


def check_mode(mode: str) -> str:
    """``mode`` if it is a known path mode; ConfigError otherwise."""
    if mode not in PATH_MODES:
        raise ConfigError(f"video path mode {mode!r}: choose {' or '.join(PATH_MODES)}")
    return mode


def candidates(video: str, *, base: str | os.PathLike | None = None,
               videos_dir: str | os.PathLike | None = None) -> list[str]:
    """Where ``video`` (as a file in folder ``base`` names it) may be, most specific first, normalised."""
    p = Path(video)
    out: list[str] = []
    if videos_dir is not None:
        vd = Path(videos_dir)
        if not p.is_absolute() and ".." not in p.parts:  # "sub/x.mp4" under the folder; "../x" would leave it
            out.append(normalise(vd / p))
        out.append(normalise(vd / p.name))
    if p.is_absolute():
        out.append(normalise(p))
    elif base is not None:
        out.append(normalise(Path(base) / p))
    else:
        out.append(normalise(p))
    seen: list[str] = []
    for c in out:
        if c not in seen:
            seen.append(c)
    return seen


def resolve_video(video: str | None, *, base: str | os.PathLike | None = None,
                  videos_dir: str | os.PathLike | None = None) -> str | None:
    """The absolute, normalised path of ``video`` as named in a file whose folder is ``base``.

    The first candidate (see :func:`candidates`) that is a file wins; when none is, the first
    candidate is returned (callers that need the file check :func:`require_video`). None stays None
    (a record without video)."""
    if not video:
        return None
    cands = candidates(video, base=base, videos_dir=videos_dir)
    for c in cands:
        if os.path.isfile(c):
            return c
    return cands[0]


def require_video(path: str | None, what: str) -> str:
    """``path`` if it names an existing file; DataError naming ``what`` (the record, the row) otherwise."""
    if not path:
        raise DataError(f"{what}: no video path")
    if not os.path.isfile(path):
        raise DataError(f"{what}: video {path} not found (paths are absolute or relative to the file holding "
                        "them; pass --videos-dir to point at the folder of the videos)")
    return path


def video_reference(path: str | None, *, holder_dir: str | os.PathLike, mode: str = "absolute") -> str | None:
    """How a file in ``holder_dir`` names the video at absolute ``path``: absolute, or relative to
    ``holder_dir`` (POSIX separators) in ``relative`` mode."""
    if path is None:
        return None
    check_mode(mode)
    if mode == "absolute":
        return normalise(path)
    rel = os.path.relpath(normalise(path), normalise(holder_dir))
    return str(PurePosixPath(*Path(rel).parts))


class VideoResolver:
    """:func:`resolve_video` for many records of one file, with a cache and the missing videos noted.

    ``base`` is the folder of the file whose records are resolved; ``videos_dir`` the optional
    override; ``missing`` collects the resolved paths that are no file (exports report them)."""

    def __init__(self, base: str | os.PathLike | None, videos_dir: str | os.PathLike | None = None) -> None:
        self.base = base
        self.videos_dir = videos_dir
        self.missing: set[str] = set()
        self._cache: dict[str, str | None] = {}

    def __call__(self, video: str | None) -> str | None:
        """The absolute path of ``video`` (None stays None)."""
        if not video:
            return None
        hit = self._cache.get(video)
        if hit is None:
            hit = resolve_video(video, base=self.base, videos_dir=self.videos_dir)
            if hit is not None and not os.path.isfile(hit):
                self.missing.add(hit)
            self._cache[video] = hit
        return hit


def holder_folder(path: str | os.PathLike) -> Path:
    """The folder whose files' relative video paths are read from: ``path`` itself if a folder."""
    p = Path(path)
    return p if p.is_dir() else p.parent
