"""A re-induce with a new config that fails for some videos leaves no graph of the old config looking current."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from stepkit.cli import app


def test_failed_reinduce_sets_old_config_graphs_aside(tmp_path, world):
    videos = tmp_path / "videos"
    shutil.copytree(world / "videos", videos)
    out = tmp_path / "graphs"
    run = CliRunner()
    r = run.invoke(app, ["induce", str(videos), "--out", str(out)])
    assert r.exit_code == 0, r.output
    first = sorted(p.name for p in out.glob("*.json") if p.name != "summary.json")
    assert len(first) == 3
    # a new config, and one video that now fails to decode
    bad = sorted(videos.glob("*.mp4"))[1]
    bad.write_bytes(bad.read_bytes()[:300])
    cfg = tmp_path / "new.yaml"
    cfg.write_text("min_run: 4\n")
    r = run.invoke(app, ["induce", str(videos), "--out", str(out), "--config", str(cfg)])
    assert r.exit_code == 2, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 1 and summary["induced"] == 2
    current = sorted(p.name for p in out.glob("*.json") if p.name != "summary.json")
    assert current == [n for n in first if n != f"{bad.stem}.json"]  # the old config's graph is gone from view
    moved = summary["set_aside"]
    assert [m["graph"] for m in moved] == [f"{bad.stem}.json"]
    assert (out / moved[0]["moved_to"]).is_file()
    assert "earlier config" in r.output
