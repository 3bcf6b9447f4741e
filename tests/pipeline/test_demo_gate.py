"""The demo's perception gate: a wrong-video eval per round, the gate in the ledger and in report.html."""

from __future__ import annotations

import json
from pathlib import Path

from stepkit.pipeline.config import load_config
from stepkit.pipeline.demo_report import write_run_report
from stepkit.pipeline.selftrain import plan, write_ledger

DEMO = Path(__file__).resolve().parents[2] / "src" / "stepkit" / "pipeline" / "configs" / "demo.yaml"


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_demo_scores_every_round_with_another_videos_frames() -> None:
    cfg = load_config(DEMO)
    cfg.out = "D"
    stages = plan(cfg)
    for k in range(cfg.rounds + 1):
        names = [s.name for s in stages if s.round == k]
        own = next(s for s in stages if s.round == k and s.name == "eval")
        wrong = next(s for s in stages if s.round == k and s.name == "eval-wrong-video")
        assert names.index("eval-wrong-video") < names.index("eval")  # the ledger is written after eval
        assert _opt(wrong.argv, "--videos-from") == "shuffle" and "--videos-from" not in own.argv
        assert wrong.argv[:wrong.argv.index("--out")] == own.argv[:own.argv.index("--out")] + [
            "--videos-from", "shuffle", "--seed", "0"]
        assert _opt(wrong.argv, "--out") == str(Path(f"D/round_{k}/eval_wrong_video"))
    model = next(s for s in stages if s.name == "model")
    assert _opt(model.argv, "--image-size") == "112"  # ~30 visual tokens per clip


def _eval_dir(d: Path, correct: list[int], shuffle: bool) -> None:
    d.mkdir(parents=True)
    rows = [{"id": f"q{i}", "steps": 1, "type": "attribute", "correct": bool(c)} for i, c in enumerate(correct)]
    (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    acc = sum(correct) / len(correct)
    (d / "metrics.json").write_text(json.dumps({
        "videos_from": "shuffle" if shuffle else "own", "frames": 4,
        "overall": {"accuracy": acc, "ci_low": acc, "ci_high": acc, "n": len(correct)},
        "by_steps_bucket": {"1": {"accuracy": acc, "ci_low": acc, "ci_high": acc, "n": len(correct)}},
        "by_type": {"attribute": {"accuracy": acc, "ci_low": acc, "ci_high": acc, "n": len(correct)}}}))


def test_report_shows_the_gate_for_base_and_trained_models(tmp_path: Path) -> None:
    cfg = load_config(DEMO)
    cfg.out = str(tmp_path / "run")
    root = Path(cfg.out)
    ignores = [1] * 20 + [0] * 20  # the same answers with any video: fails
    sees, wrong = [1] * 30 + [0] * 10, [1] * 10 + [0] * 30  # 75% vs 25%: passes
    _eval_dir(root / "round_0" / "eval", ignores, False)
    _eval_dir(root / "round_0" / "eval_wrong_video", ignores, True)
    _eval_dir(root / "round_1" / "eval", sees, False)
    _eval_dir(root / "round_1" / "eval_wrong_video", wrong, True)
    rows = [json.loads(line) for line in write_ledger(cfg).read_text().splitlines()]
    assert [r["gate"]["passed"] for r in rows] == [False, True]
    assert rows[1]["gate"]["gap"] == 0.5 and rows[1]["eval_wrong_video"]["overall"]["accuracy"] == 0.25
    page = write_run_report(cfg).read_text()
    assert "Perception gate: its own frames vs another video" in page
    gate = page[page.index("Perception gate"):]
    assert "base model</td><td>50.0 (n=40)</td><td>50.0</td><td>+0.0" in gate and "<b>fails</b>" in gate
    assert "after round 1</td><td>75.0 (n=40)</td><td>25.0</td><td>+50.0" in gate and "<b>passes</b>" in gate
