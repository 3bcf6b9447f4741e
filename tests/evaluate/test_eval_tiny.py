"""End to end: a tiny model evaluated on a held-out world Q/R/A split, then two runs compared."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from stepkit.cli import app


def _png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiny_model_on_world_split(world_split, tiny_model, tmp_path: Path, one_torch_thread) -> None:
    runner = CliRunner()
    base = ["eval", "--backend", "tiny", "--model", str(tiny_model), "--benchmark", "stepkit",
            "--data", str(world_split["qa"]), "--videos", str(world_split["videos"]), "--frames", "4",
            "--bootstrap", "300"]
    res = runner.invoke(app, base + ["--out", str(tmp_path / "loglik")])
    assert res.exit_code == 0, res.output
    run = tmp_path / "loglik"
    m = json.loads((run / "metrics.json").read_text())
    n = sum(1 for _ in world_split["qa"].open())
    assert m["overall"]["n"] == n and m["mode"] == "mc-loglik" and m["model_id"].startswith("hf:")
    assert set(m["by_steps_bucket"]) <= {"1", "2", "3+"} and len(m["by_steps_bucket"]) >= 2
    assert sum(s["n"] for s in m["by_steps_bucket"].values()) == n
    for group in ("by_steps_bucket", "by_steps", "by_type"):
        for s in m[group].values():
            assert 0 <= s["ci_low"] <= s["accuracy"] <= s["ci_high"] <= 1
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == n and all(len(r["scores"]) == len(r["options"]) for r in rows)
    assert _png(run / "accuracy_by_steps.png") and _png(run / "accuracy_by_type.png")
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and not re.search(r'src="(?!data:)', html)
    assert rows[0]["question"].split("?")[0][:20].replace("'", "&#x27;") in html
    assert "| 3+ |" in (run / "report.md").read_text() or "| 2 |" in (run / "report.md").read_text()

    # the same split by generation (the tiny model babbles: parse failures are wrong, never a crash)
    res = runner.invoke(app, base + ["--mode", "mc-generate", "--max-new-tokens", "6", "--limit", "8",
                                     "--out", str(tmp_path / "gen")])
    assert res.exit_code == 0, res.output
    g = json.loads((tmp_path / "gen" / "metrics.json").read_text())
    assert g["overall"]["n"] == 8 and g["mode"] == "mc-generate"

    res = runner.invoke(app, ["eval", "compare", str(run), str(tmp_path / "gen"), "--out", str(tmp_path / "cmp"),
                              "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    c = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert c["common"] == 8 and c["only_in_a"] == n - 8
    assert c["overall"]["diff_ci_low"] <= c["overall"]["diff"] <= c["overall"]["diff_ci_high"]
    assert _png(tmp_path / "cmp" / "accuracy_by_steps.png")
