"""Decoding with PyAV: probe a video, iterate its frames, sample frames with their timestamps.

Every failure a user can cause (missing, empty, truncated or non-video file) raises
:class:`stepkit.errors.VideoError` naming the file; PyAV's own exceptions never escape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from stepkit.errors import VideoError

# A full decode that yields fewer frames than this share of the declared count is truncated.
_TRUNCATION_SHARE = 0.95


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream."""

    path: str
    fps: float
    duration: float
    num_frames: int
    width: int
    height: int
    codec: str
    frames_declared: bool = True  # False when num_frames is estimated from duration × fps


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``index`` counts from 0 in decode order, ``t`` is seconds from the start."""

    index: int
    t: float
    image: np.ndarray  # HxWx3 uint8 RGB


@dataclass
class FrameSample:
    """Frames picked from a video, with their timestamps (s) and frame indices."""

    info: VideoInfo
    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
    if path.is_dir():
        raise VideoError(f"{path}: is a folder, not a video file")
    try:
        size = path.stat().st_size
    except OSError as exc:  # pragma: no cover - permissions and the like
        raise VideoError(f"{path}: cannot read video file: {exc}") from None
    if size == 0:
        raise VideoError(f"{path}: empty file (0 bytes), not a video")


def _open(path: Path):
    """Open ``path`` with PyAV and return (container, video stream)."""
    import av

    _check_file(path)
    _check_y4m_header(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoError(
            f"{path}: not a readable video (truncated, corrupt or not a video file): {_reason(exc)}"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: cannot open video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: the file holds no video stream")
    stream = container.streams.video[0]
    if not stream.codec_context or not stream.codec_context.width:
        container.close()
        raise VideoError(f"{path}: the video stream has no decodable frames (unknown codec or size)")
    return container, stream


# Larger than any real video (8K is 7680x4320): FFmpeg refuses such a frame with EBUSY/ENOMEM,
# which reads as "Device or resource busy".
MAX_FRAME_SIDE = 16384


def _check_y4m_header(path: Path) -> None:
    """Name the problem of a YUV4MPEG2 header whose frame size is absurd (FFmpeg's error would not)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
        return
    if not head.startswith(b"YUV4MPEG2"):
        return
    fields = {t[:1]: t[1:] for t in head.split(b"\n", 1)[0].split(b" ")[1:] if t}
    try:
        w, h = int(fields.get(b"W", b"0")), int(fields.get(b"H", b"0"))
    except ValueError:
        raise VideoError(f"{path}: Y4M header has a malformed frame size") from None
    if not (0 < w <= MAX_FRAME_SIDE and 0 < h <= MAX_FRAME_SIDE):
        raise VideoError(f"{path}: Y4M header declares a {w}x{h} frame; frames must be 1..{MAX_FRAME_SIDE} "
                         "pixels a side")


def _reason(exc: BaseException) -> str:
    errno = getattr(exc, "errno", None)
    if errno in (12, 16):  # ENOMEM, EBUSY: FFmpeg's codes for parameters it cannot allocate
        return "FFmpeg cannot allocate the stream as declared (frame size or format out of range)"
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__


def _info_from(path: Path, container, stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    if duration <= 0 and container.duration:
        duration = container.duration / 1_000_000
    frames = int(stream.frames or 0)
    declared = frames > 0
    if fps <= 0 and frames and duration > 0:
        fps = frames / duration
    if fps <= 0:
        raise VideoError(f"{path}: the video stream declares no frame rate")
    if frames <= 0:
        frames = int(round(duration * fps))
    if duration <= 0:
        duration = frames / fps
    return VideoInfo(
        path=str(path),
        fps=fps,
        duration=duration,
        num_frames=frames,
        width=int(stream.codec_context.width),
        height=int(stream.codec_context.height),
        codec=str(stream.codec_context.name),
        frames_declared=declared,
    )


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, duration, frame count, size and codec of ``path`` (no decoding)."""
    path = Path(path)
    container, stream = _open(path)
    try:
        return _info_from(path, container, stream)
    finally:
        container.close()


def _out_size(info: VideoInfo, width: int | None, height: int | None) -> tuple[int, int] | None:
    if width is None and height is None:
        return None
    if width is not None and height is None:
        height = max(2, int(round(info.height * width / info.width / 2)) * 2)
    elif height is not None and width is None:
        width = max(2, int(round(info.width * height / info.height / 2)) * 2)
    return int(width), int(height)


def iter_frames(
    path: str | os.PathLike,
    *,
    t0: float | None = None,
    t1: float | None = None,
    width: int | None = None,
    height: int | None = None,
    want: Callable[[int, float], bool] | None = None,
    fmt: str = "rgb24",
) -> Iterator[Frame]:
    """Decode ``path`` in order, yielding frames whose time lies in ``[t0, t1]``.

    ``width``/``height`` rescale (one alone keeps the aspect ratio); ``want(index, t)`` returning
    False skips a frame's conversion to an array (it is still decoded). ``fmt`` is a PyAV pixel
    format ("rgb24" or "bgr24" for OpenCV). Raises VideoError when decoding fails or a full
    decode ends well short of the declared frame count (a truncated file).
    """
    import av

    path = Path(path)
    container, stream = _open(path)
    try:
        info = _info_from(path, container, stream)
        size = _out_size(info, width, height)
        stream.thread_type = "AUTO"
        start = stream.start_time or 0
        tb = stream.time_base
        index = -1
        last_t = -1.0
        try:
            for frame in container.decode(stream):
                index += 1
                if frame.pts is not None and tb is not None:
                    t = float((frame.pts - start) * tb)
                else:
                    t = index / info.fps
                t = max(t, 0.0)
                last_t = t
                if t0 is not None and t < t0 - 1e-9:
                    continue
                if t1 is not None and t > t1 + 1e-9:
                    return
                if want is not None and not want(index, t):
                    continue
                if size is None:
                    image = frame.to_ndarray(format=fmt)
                else:
                    image = frame.to_ndarray(width=size[0], height=size[1], format=fmt)
                yield Frame(index=index, t=t, image=image)
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{path}: decoding failed after {index} frames ({max(last_t, 0):.2f} s of "
                f"{info.duration:.2f} s): truncated or corrupt video ({_reason(exc)})"
            ) from None
        decoded = index + 1
        if decoded == 0:
            raise VideoError(f"{path}: no frame could be decoded (truncated or corrupt video)")
        if t1 is None and info.frames_declared and decoded < _TRUNCATION_SHARE * info.num_frames - 1:
            raise VideoError(
                f"{path}: truncated video: decoded {decoded} of {info.num_frames} declared frames"
            )
    finally:
        container.close()


def decode_all(path: str | os.PathLike, **kwargs) -> list[Frame]:
    """Every frame of ``path`` (see :func:`iter_frames` for the options)."""
    return list(iter_frames(path, **kwargs))


def _uniform_indices(first: int, last: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``[first, last]`` (centres of ``n`` equal segments)."""
    count = last - first + 1
    if n <= 0 or count <= 0:
        return []
    if n >= count:
        return list(range(first, last + 1))
    return sorted({first + int((k + 0.5) * count / n) for k in range(n)})


def sample_frames(
    path: str | os.PathLike,
    *,
    n: int | None = None,
    fps: float | None = None,
    t0: float | None = None,
    t1: float | None = None,
    width: int | None = None,
    height: int | None = None,
) -> FrameSample:
    """Sample ``n`` frames uniformly, or frames at ``fps`` per second, within ``[t0, t1]``.

    Exactly one of ``n`` and ``fps`` is given. Frames come back as HxWx3 uint8 RGB arrays with
    their timestamps (seconds) and frame indices, in time order.
    """
    path = Path(path)
    if (n is None) == (fps is None):
        raise ValueError("give exactly one of n and fps")
    if n is not None and n < 1:
        raise VideoError(f"{path}: asked for {n} frames; need at least 1")
    if fps is not None and fps <= 0:
        raise VideoError(f"{path}: sampling rate must be positive, got {fps}")
    info = probe(path)
    lo = 0.0 if t0 is None else max(0.0, float(t0))
    hi = info.duration if t1 is None else min(info.duration, float(t1))
    if hi < lo:
        raise VideoError(f"{path}: empty time window [{t0}, {t1}] (video lasts {info.duration:.2f} s)")
    # Frame i shows [i/fps, (i+1)/fps); pick by nominal frame index, then read real timestamps.
    first = min(int(np.floor(lo * info.fps + 1e-6)), max(info.num_frames - 1, 0))
    last = min(max(int(np.ceil(hi * info.fps - 1e-6)) - 1, first), max(info.num_frames - 1, 0))
    if n is not None:
        wanted = set(_uniform_indices(first, last, n))
    else:
        step = info.fps / fps
        wanted = set()
        k = 0
        while True:
            i = first + int(round(k * step))
            if i > last:
                break
            wanted.add(i)
            k += 1
    sample = FrameSample(info=info)
    for fr in iter_frames(path, width=width, height=height, want=lambda i, t: i in wanted):
        sample.frames.append(fr.image)
        sample.times.append(fr.t)
        sample.indices.append(fr.index)
        if fr.index >= last:
            break
    return sample


def read_frames_at(
    path: str | os.PathLike, indices: Sequence[int], *, width: int | None = None, height: int | None = None
) -> dict[int, Frame]:
    """The frames at the given indices, by index; decodes up to the last one."""
    wanted = set(int(i) for i in indices)
    if not wanted:
        return {}
    last = max(wanted)
    out: dict[int, Frame] = {}
    for fr in iter_frames(path, width=width, height=height, want=lambda i, t: i in wanted):
        out[fr.index] = fr
        if fr.index >= last:
            break
    missing = wanted - set(out)
    if missing:
        raise VideoError(f"{path}: frames {sorted(missing)[:5]} are past the end of the video")
    return out
