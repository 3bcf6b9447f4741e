"""Video IO: probing and decoding with PyAV, frame sampling with timestamps, scene splitting and keyframes."""

from __future__ import annotations

from stepkit.video.decode import Frame, FrameSample, VideoInfo, decode_all, iter_frames, probe, read_frames_at, sample_frames
from stepkit.video.split import CutDetector, Keyframe, Split, VideoClip, split_video

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")

__all__ = [
    "CutDetector",
    "Frame",
    "FrameSample",
    "Keyframe",
    "Split",
    "VIDEO_SUFFIXES",
    "VideoClip",
    "VideoInfo",
    "decode_all",
    "iter_frames",
    "probe",
    "read_frames_at",
    "sample_frames",
    "split_video",
]
