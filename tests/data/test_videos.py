"""The one video-path rule (stepkit.data.videos)."""

from __future__ import annotations

import os

import pytest

from stepkit.data.videos import VideoResolver, require_video, resolve_video, video_reference
from stepkit.errors import ConfigError, DataError


@pytest.fixture
def layout(tmp_path):
    (tmp_path / "W" / "videos").mkdir(parents=True)
    (tmp_path / "W" / "graphs").mkdir()
    (tmp_path / "W" / "videos" / "a.mp4").write_bytes(b"x")
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "a.mp4").write_bytes(b"y")
    return tmp_path


def test_relative_paths_are_relative_to_the_holding_file_not_the_cwd(layout, monkeypatch):
    monkeypatch.chdir(layout / "moved")  # a.mp4 exists here too: it must not be picked
    got = resolve_video("../videos/a.mp4", base=layout / "W" / "graphs")
    assert got == str(layout / "W" / "videos" / "a.mp4") and os.path.isabs(got)
    assert resolve_video(None, base=layout) is None


def test_absolute_paths_are_normalised_and_videos_dir_wins(layout):
    messy = str(layout / "W" / "graphs" / ".." / "videos" / "a.mp4")
    assert resolve_video(messy) == str(layout / "W" / "videos" / "a.mp4")
    assert resolve_video(messy, videos_dir=layout / "moved") == str(layout / "moved" / "a.mp4")
    # not found anywhere: the most specific candidate, for the caller's error message
    assert resolve_video("x/b.mp4", base=layout, videos_dir=layout / "moved") == str(layout / "moved" / "x" / "b.mp4")


def test_references_absolute_or_relative(layout):
    target = str(layout / "W" / "videos" / "a.mp4")
    assert video_reference(target, holder_dir=layout / "E") == target
    rel = video_reference(target, holder_dir=layout / "E" / "sub", mode="relative")
    assert rel == "../../W/videos/a.mp4"
    assert os.path.normpath(os.path.join(layout / "E" / "sub", rel)) == target
    with pytest.raises(ConfigError, match="'sideways'"):
        video_reference(target, holder_dir=layout, mode="sideways")


def test_resolver_notes_missing_and_require_names_the_row(layout):
    res = VideoResolver(layout / "W" / "graphs")
    assert res("../videos/a.mp4") == str(layout / "W" / "videos" / "a.mp4")
    res("../videos/gone.mp4")
    assert res.missing == {str(layout / "W" / "videos" / "gone.mp4")}
    with pytest.raises(DataError, match=r"row 7: video .*gone\.mp4 not found"):
        require_video(str(layout / "W" / "videos" / "gone.mp4"), "row 7")
