"""The wrong-video control (``--videos-from shuffle``) and the perception gate built on it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import pytest
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.errors import ConfigError
from stepkit.evaluate.extract import LETTERS
from stepkit.evaluate.metrics import perception_gate
from stepkit.evaluate.runner import EvalConfig, evaluate, load_items, perception_gate_runs
from stepkit.models.base import Prompt, SamplingParams
from stepkit.models.scripted import ScriptedBackend


def _cfg(world_split, **kw) -> EvalConfig:
    base = dict(benchmark="stepkit", data=str(world_split["qa"]), videos=str(world_split["videos"]),
                mode="mc-generate", frames=2, bootstrap=300)
    base.update(kw)
    return EvalConfig(**base)


def test_shuffle_is_seeded_and_never_shows_the_own_video(world_split) -> None:
    own = {it.id: it.video_path for it in load_items(_cfg(world_split))}
    a = load_items(_cfg(world_split, videos_from="shuffle", seed=0))
    b = load_items(_cfg(world_split, videos_from="shuffle", seed=0))
    assert len({p for p in own.values()}) == 3
    assert all(it.video_path != own[it.id] for it in a)
    assert all(it.video_path in set(own.values()) for it in a)
    assert [it.video_path for it in a] == [it.video_path for it in b]
    assert all(it.meta["frames_from"] != it.video for it in a)
    # per question, not per position: a shorter run shows each question the same other video
    c = load_items(_cfg(world_split, videos_from="shuffle", seed=0, limit=5))
    assert [it.video_path for it in c] == [it.video_path for it in a[:5]]
    seeds = {tuple(it.video_path for it in load_items(_cfg(world_split, videos_from="shuffle", seed=s)))
             for s in range(6)}
    assert len(seeds) > 1
    # both other videos are used
    assert len({it.video_path for it in a if own[it.id] == own[a[0].id]}) == 2


def test_shuffle_needs_frames_and_two_videos(world_split, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="frames"):
        load_items(_cfg(world_split, videos_from="shuffle", frames=0))
    with pytest.raises(ConfigError, match="own, shuffle"):
        load_items(_cfg(world_split, videos_from="elsewhere"))
    one = tmp_path / "one.jsonl"
    lines = [ln for ln in world_split["qa"].read_text().splitlines() if json.loads(ln)["video_id"].endswith("000")]
    one.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="at least 2 different videos"):
        load_items(_cfg(world_split, data=str(one), videos_from="shuffle"))


class LookingModel:
    """Answers from what the frames show: it knows the gold letter of each (clip, question) pair of
    the split by the clip's pixels, and says (A) to anything else."""

    model_id = "test/looking"

    def __init__(self, answers: dict[tuple[str, str], str]) -> None:
        self.answers = answers

    @staticmethod
    def fingerprint(frames: Sequence) -> str:
        return hashlib.sha1(b"".join(f[::8, ::8].tobytes() for f in frames)).hexdigest()

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        return [[f"({self.answers.get((self.fingerprint(p.video or []), p.text), 'A')})"] for p in prompts]

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        raise NotImplementedError


def _looking_model(world_split) -> LookingModel:
    from stepkit.evaluate.scoring import build_prompt, item_mode

    table = {}
    for it in load_items(_cfg(world_split)):
        it, mode = item_mode(it, "mc-generate")
        p = build_prompt(it, mode, 2)
        table[(LookingModel.fingerprint(p.video), p.text)] = LETTERS[it.answer_index]
    return LookingModel(table)


def test_gate_fails_a_model_that_ignores_frames_and_passes_one_that_looks(world_split, tmp_path: Path) -> None:
    blind = ScriptedBackend({"model_id": "scripted/blind", "rules": [], "default": "The answer is (A)."})
    runs = {}
    for name, model in (("blind", blind), ("looking", _looking_model(world_split))):
        for vf in ("own", "shuffle"):
            evaluate(_cfg(world_split, videos_from=vf), tmp_path / f"{name}-{vf}", model=model)
            runs[name, vf] = tmp_path / f"{name}-{vf}"
    m = json.loads((runs["looking", "shuffle"] / "metrics.json").read_text())
    assert m["videos_from"] == "shuffle"
    rows = [json.loads(x) for x in (runs["looking", "shuffle"] / "predictions.jsonl").read_text().splitlines()]
    assert all(r["frames_from"] != Path(r["video"]).name and r["frames_from"] != r["video"] for r in rows)

    g = perception_gate_runs(runs["blind", "own"], runs["blind", "shuffle"], steps=None, n_boot=300)
    assert g["passed"] is False and g["gap"] == 0.0 and g["changed"] == 0 and "under 10 points" in g["reason"]
    g = perception_gate_runs(runs["looking", "own"], runs["looking", "shuffle"], steps=None, n_boot=300,
                             out_dir=tmp_path / "gate")
    assert g["acc_frames"] == 1.0 and g["gap"] >= 0.3 and g["ci_low"] > 0 and g["passed"] is True
    assert json.loads((tmp_path / "gate" / "gate.json").read_text())["passed"] is True

    runner = CliRunner()
    res = runner.invoke(app, ["eval", "gate", str(runs["blind", "own"]), str(runs["blind", "shuffle"]), "--steps", "all",
                              "--bootstrap", "200"])
    assert res.exit_code == 1 and "fails" in res.output
    res = runner.invoke(app, ["eval", "gate", str(runs["looking", "own"]), str(runs["looking", "shuffle"]),
                              "--steps", "all", "--bootstrap", "200"])
    assert res.exit_code == 0 and "passes" in res.output, res.output
    # the runs must be the right way round
    res = runner.invoke(app, ["eval", "gate", str(runs["looking", "shuffle"]), str(runs["looking", "own"])])
    assert res.exit_code == 1 and "not a wrong-video run" in res.output


def _rows(correct: list[bool], steps: int = 1, prefix: str = "q") -> list[dict]:
    return [{"id": f"{prefix}{i}", "correct": c, "steps": steps} for i, c in enumerate(correct)]


def test_gate_thresholds() -> None:
    n = 200
    frames = _rows([i < 150 for i in range(n)])            # 75%
    wrong_close = _rows([i < 135 for i in range(n)])       # 67.5%: a 7.5-point gap
    wrong_far = _rows([i < 120 for i in range(n)])         # 60%: a 15-point gap
    assert perception_gate(frames, wrong_far, n_boot=500)["passed"] is True
    res = perception_gate(frames, wrong_close, n_boot=500)
    assert res["passed"] is False and res["ci_low"] > 0 and res["gap"] == pytest.approx(0.075)
    # a 10-point gap that is noise: 10 questions, the interval reaches zero
    small = perception_gate(_rows([True] * 6 + [False] * 4), _rows([True] * 5 + [False] * 5), min_gap=0.1, n_boot=500)
    assert small["gap"] == pytest.approx(0.1) and small["passed"] is False and "interval" in small["reason"]
    # only the asked steps bucket counts; errors are not scored
    mixed = frames + _rows([False] * 50, steps=3, prefix="m")
    mixed_wrong = wrong_far + _rows([True] * 50, steps=3, prefix="m")
    assert perception_gate(mixed, mixed_wrong, n_boot=300)["n"] == n
    assert perception_gate(mixed, mixed_wrong, steps=None, n_boot=300)["passed"] is False
    errs = [dict(r, error="boom") for r in frames]
    assert perception_gate(errs, wrong_far)["passed"] is False and perception_gate(errs, wrong_far)["n"] == 0
