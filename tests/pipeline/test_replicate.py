"""The replication study: equal-compute arms, the aggregation math, and one tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stepkit.errors import ConfigError
from stepkit.pipeline.replicate import (
    ARMS,
    ReplicateConfig,
    load_replicate_config,
    plan_replicate,
    results_markdown,
    results_page,
    run_replicate,
    summarize,
)


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_arms_have_equal_compute_and_the_right_data() -> None:
    cfg = ReplicateConfig(out="R", seeds=[0, 1])
    stages = {(s.round, s.name): s.argv for s in plan_replicate(cfg)}
    start = str(Path("R/start/model"))
    for seed in (0, 1):
        trains = {a: stages[(seed, f"train-{a}")] for a in ARMS}
        for opt in ("--max-steps", "--batch-size", "--lr", "--num-frames", "--model", "--seed", "--threads"):
            assert len({_opt(t, opt) for t in trains.values()}) == 1, opt
        assert _opt(trains["base"], "--model") == start and _opt(trains["step"], "--seed") == str(seed)
        assert _opt(trains["answer-only"], "--lambda-rationale") == "0.0"
        assert _opt(trains["step"], "--lambda-rationale") == "1.0"
        assert trains["answer-only"][1] == trains["step"][1] == str(Path("R/data/step"))
        assert trains["oracle"][1] == str(Path("R/data/oracle"))
        assert _opt(trains["base"], "--samples") == "answer" and trains["base"][1] == str(Path("R/data/base"))
    gen = {n: a for (r, n), a in stages.items() if n.endswith("-data")}
    assert _opt(gen["base-data"], "--steps") == "1:1"
    assert gen["oracle-data"][1] == str(Path("R/world/graphs")) and gen["step-data"][1] == str(Path("R/induced"))
    assert _opt(stages[(0, "questions")], "--seed") == str(cfg.heldout_seed) != str(cfg.train_seed)


def test_perception_stage_comes_first_from_its_own_videos() -> None:
    cfg = ReplicateConfig(out="R", seeds=[3], perception_steps=77)
    plan = plan_replicate(cfg)
    names = [s.name for s in plan]
    stages = {s.name: s.argv for s in plan if s.round in (0, -1)}
    pt = stages["perception-train"]
    assert pt[1] == str(Path("R/perception/data")) and _opt(pt, "--model") == str(Path("R/start/captions"))
    assert _opt(pt, "--max-steps") == "77" and _opt(pt, "--samples") == "answer" and "--freeze-vision" in pt
    # a tower that sees first (dense targets from the perception videos' graphs), then captions
    vp, ct, cd = stages["vision-pretrain"], stages["caption-train"], stages["caption-data"]
    assert vp[0] == "pretrain-vision" and vp[1] == str(Path("R/perception/world/graphs"))
    assert _opt(vp, "--model") == str(Path("R/start/init")) and _opt(vp, "--head") == "words"
    assert _opt(cd, "--mix") == "contents:1,colours:1" and _opt(ct, "--model") == str(Path("R/start/vision"))
    assert names.index("vision-pretrain") < names.index("caption-train") < names.index("perception-train")
    # without vision pretraining the perception stage starts from the random model, vision trained
    plain = {s.name: s.argv for s in plan_replicate(ReplicateConfig(out="R", seeds=[3], vision_steps=0,
                                                                    train_vision=True))}
    assert "vision-pretrain" not in plain and "caption-train" not in plain
    assert _opt(plain["perception-train"], "--model") == str(Path("R/start/init"))
    assert "--train-vision" in plain["perception-train"]
    pw = stages["perception-world"]
    assert _opt(pw, "--seed") == str(cfg.perception_seed) not in (str(cfg.heldout_seed), str(cfg.train_seed))
    pd = stages["perception-data"]
    assert pd[0] == "perception" and _opt(pd, "--mix-in") == str(Path("R/perception/questions/qa.jsonl"))
    # the captions go on into the perception stage (the decoder keeps reading the frames), so they come first
    assert pd[pd.index(str(Path("R/perception/captions/qa.jsonl"))) - 1] == "--mix-in"
    assert names.index("caption-data") < names.index("perception-data")
    off = {s.name: s.argv for s in plan_replicate(ReplicateConfig(out="R", seeds=[3], captions_in_perception=False))}
    assert str(Path("R/perception/captions/qa.jsonl")) not in off["perception-data"] and "caption-train" in off
    assert "caption-data" not in plain and str(Path("R/perception/captions/qa.jsonl")) not in plain["perception-data"]
    # the caption kinds are the config's, one record of each per video
    assert _opt(cd, "--mix") == "contents:1,colours:1" and _opt(cd, "--per-video") == "2"
    bound = {s.name: s.argv for s in plan_replicate(ReplicateConfig(out="R", seeds=[3],
                                                                    caption_mix="contents:1,object-colours:2,colours:0"))}
    assert _opt(bound["caption-data"], "--mix") == "contents:1,object-colours:2,colours:0"
    assert _opt(bound["caption-data"], "--per-video") == "2"
    # centring the tower's tokens is passed on to pretrain-vision only when asked for
    assert "--centre" not in vp
    centred = {s.name: s.argv for s in plan_replicate(ReplicateConfig(out="R", seeds=[3], vision_centre=True,
                                                                      vision_token_scale=4.0))}
    assert "--centre" in centred["vision-pretrain"] and _opt(centred["vision-pretrain"], "--token-scale") == "4.0"
    assert _opt(vp, "--window") == "1.0"
    vec = {s.name: s.argv for s in plan_replicate(ReplicateConfig(out="R", seeds=[3], vision_head="vectors",
                                                                  vision_window=10.0))}
    assert _opt(vec["vision-pretrain"], "--head") == "vectors" and _opt(vec["vision-pretrain"], "--window") == "10.0"
    # every arm starts after the perception stage, from its model
    assert names.index("perception-train") < min(i for i, n in enumerate(names) if n.startswith("train-"))


def test_every_model_gets_both_controls_on_the_same_questions() -> None:
    cfg = ReplicateConfig(out="R", seeds=[0, 1], shuffle_seed=4)
    evals = [s for s in plan_replicate(cfg) if s.name.startswith("eval-")]
    assert len(evals) == 3 * (1 + len(ARMS) * 2)
    by_model: dict[str, list[list[str]]] = {}
    for s in evals:
        by_model.setdefault(_opt(s.argv, "--model"), []).append(s.argv)
    assert len(by_model) == 1 + 2 * len(ARMS)
    for model, argvs in by_model.items():
        assert len({_opt(a, "--data") for a in argvs}) == 1 and len({_opt(a, "--out") for a in argvs}) == 3
        frames = sorted(_opt(a, "--frames") for a in argvs)
        assert frames == ["0", str(cfg.num_frames), str(cfg.num_frames)], model
        wrong = [a for a in argvs if "--videos-from" in a]
        assert len(wrong) == 1 and _opt(wrong[0], "--videos-from") == "shuffle" and _opt(wrong[0], "--seed") == "4"
        assert all(_opt(a, "--data") == str(Path("R/heldout/qa/qa.jsonl")) for a in argvs)


def test_config_validation(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump({"heldout_seed": 0, "train_seed": 0}))
    with pytest.raises(ConfigError, match="r.yaml: heldout_seed: must differ"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"seeds": [0, "one"]}))
    with pytest.raises(ConfigError, match="seeds: expected list"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"perception_seed": 5000}))
    with pytest.raises(ConfigError, match="perception_seed: must differ"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"heldout_videos": 1}))
    with pytest.raises(ConfigError, match="heldout_videos: the wrong-video control needs at least 2"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"perception_mix": "colors:1"}))
    with pytest.raises(ConfigError, match="perception_mix: .*unknown kind 'colors'"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"vision_head": "mlp"}))
    with pytest.raises(ConfigError, match="vision_head: linear, words, vectors, got 'mlp'"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"vision_window": 0}))
    with pytest.raises(ConfigError, match="vision_window: seconds > 0"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"vision_token_scale": 2.0}))
    with pytest.raises(ConfigError, match="vision_token_scale must be >= 0 and needs vision_centre"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"caption_mix": "contents:1,nope:1"}))
    with pytest.raises(ConfigError, match="caption_mix: .*unknown kind 'nope'"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"caption_steps": -1}))
    with pytest.raises(ConfigError, match="caption_steps must be >= 0"):
        load_replicate_config(p)
    p.write_text(yaml.safe_dump({"armsteps": 3}))
    with pytest.raises(ConfigError, match="armsteps: unknown field"):
        load_replicate_config(p)
    bundled = Path(__file__).resolve().parents[2] / "src" / "stepkit" / "pipeline" / "configs" / "replicate.yaml"
    assert load_replicate_config(bundled).seeds and len(plan_replicate(load_replicate_config(bundled))) > 10


def test_bundled_configs_are_found_by_name() -> None:
    from stepkit.pipeline.cli import CONFIGS, _bundled

    assert _bundled(Path("replicate-see")) == CONFIGS / "replicate-see.yaml"
    assert _bundled(Path("no-such-config")) == Path("no-such-config")  # left for the loader to name
    see = load_replicate_config(_bundled(Path("replicate-see")))
    assert see.perception_seed not in (see.heldout_seed, see.train_seed) and see.vision_steps > 0
    stages = {s.name: s.argv for s in plan_replicate(see)}
    assert "--hidden-size" in stages["model"] and "--mix-in" in stages["perception-data"]
    assert any(a.endswith(str(Path("perception/captions/qa.jsonl"))) for a in stages["perception-data"])


def _write(d: Path, rows: list[dict]) -> None:
    d.mkdir(parents=True)
    (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _fake_run(root: Path, seeds: list[int], correct: dict[str, list[list[int]]], steps: list[int],
              wrong: dict[str, list[list[int]]] | None = None) -> None:
    """Predictions of every model and control: ``correct`` with own frames; ``wrong`` with another
    video's (default: the same answers, a model that ignores the frames); no frames: all wrong."""
    wrong = wrong or correct
    start = correct.pop("start", [[0] * len(steps)])
    wstart = wrong.pop("start", start) if wrong is not correct else start
    for name, c in (("eval", start[0]), ("eval_wrong_video", wstart[0]), ("eval_blind", [0] * len(steps))):
        _write(root / "start" / name, [{"id": f"q{i}", "steps": s, "correct": bool(c[i])} for i, s in enumerate(steps)])
    for si, seed in enumerate(seeds):
        for arm in ARMS:
            for name, c in (("eval", correct[arm][si]), ("eval_wrong_video", wrong[arm][si]),
                            ("eval_blind", [0] * len(steps))):
                _write(root / f"seed_{seed}" / arm / name,
                       [{"id": f"q{i}", "steps": s, "correct": bool(c[i])} for i, s in enumerate(steps)])


def test_summary_means_differences_and_relative_gain(tmp_path: Path) -> None:
    steps = [1, 1, 2, 2, 3, 3, 4, 4]
    correct = {
        "base": [[1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]],
        "answer-only": [[1, 1, 1, 0, 1, 0, 0, 0], [1, 1, 0, 0, 0, 1, 0, 0]],   # 3+: 1/4 and 1/4
        "step": [[1, 1, 1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]],          # 3+: 2/4 and 3/4
        "oracle": [[1] * 8, [1] * 8],
    }
    _fake_run(tmp_path, [0, 1], correct, steps)
    cfg = ReplicateConfig(out=str(tmp_path), seeds=[0, 1], bootstrap=300)
    res = summarize(cfg)
    assert res["questions"] == 8
    a = res["arms"]
    assert a["answer-only"]["3+"]["mean"] == pytest.approx(0.25) and a["step"]["3+"]["mean"] == pytest.approx(0.625)
    assert a["step"]["3+"]["per_seed"] == [0.5, 0.75] and a["oracle"]["all"]["mean"] == 1.0
    assert a["base"]["1"]["mean"] == 0.5 and a["base"]["3+"]["n"] == 4
    d = res["step_minus_answer_only"]["3+"]
    assert d["mean"] == pytest.approx(0.375) and d["ci_low"] <= d["mean"] <= d["ci_high"]
    assert res["relative_gain"]["3+"] == pytest.approx(1.5)
    assert res["controls"]["oracle"]["blind"]["all"]["mean"] == 0.0
    table = results_markdown(res)
    assert "| step | " in table and "+150.0%" in table and "≥3 steps (n=4)" in table
    page = results_page(res, "plot.png")
    assert "was reproduced" in page or "was not reproduced" in page
    assert "![accuracy by steps](plot.png)" in page and "+21.3% relative" in page


def test_a_model_that_ignores_the_frames_fails_the_gate(tmp_path: Path) -> None:
    steps = [1] * 40 + [3] * 8
    sees = [1] * 30 + [0] * 10 + [1] * 8          # 75% on 1-step questions with its own frames
    blind_to_video = {a: [sees, sees] for a in ARMS}  # ... and exactly the same with another video's
    _fake_run(tmp_path / "a", [0, 1], {**blind_to_video, "start": [sees]}, steps)
    res = summarize(ReplicateConfig(out=str(tmp_path / "a"), seeds=[0, 1], bootstrap=200))
    assert not any(g["passed"] for g in res["gates"].values())
    assert res["gates"]["start"]["acc_frames"] == pytest.approx(0.75) and res["gates"]["start"]["mean"] == 0.0
    page = results_page(res, "p.png")
    assert "**fails** the perception gate" in page and "**not meaningful**" in page
    # a model whose answers fall to 40% with another video's frames passes (gap 35 points)
    wrong = [1] * 16 + [0] * 24 + [1] * 8
    _fake_run(tmp_path / "b", [0, 1], {**{a: [sees, sees] for a in ARMS}, "start": [sees]}, steps,
              wrong={**{a: [wrong, wrong] for a in ARMS}, "start": [wrong]})
    res = summarize(ReplicateConfig(out=str(tmp_path / "b"), seeds=[0, 1], bootstrap=200))
    g = res["gates"]["start"]
    assert g["passed"] and g["mean"] == pytest.approx(0.35) and g["ci_low"] > 0
    assert all(res["gates"][a]["passed"] for a in ARMS)
    assert "**passes** the perception gate" in results_page(res, "p.png")
    # a gap under the threshold fails even with its interval above zero
    res = summarize(ReplicateConfig(out=str(tmp_path / "b"), seeds=[0, 1], bootstrap=200, gate_min_gap=40))
    assert not res["gates"]["start"]["passed"] and res["gates"]["start"]["ci_low"] > 0


def test_summary_of_an_unfinished_study_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="predictions.jsonl: missing; the study has not finished"):
        summarize(ReplicateConfig(out=str(tmp_path), seeds=[0]))


@pytest.mark.slow
def test_tiny_study_end_to_end(tmp_path: Path) -> None:
    cfg = ReplicateConfig(out=str(tmp_path / "run"), seeds=[0], train_videos=2, heldout_videos=2, duration="6",
                          perception_videos=2, perception_per_video=6, perception_questions_per_video=4,
                          perception_steps=2, base_per_video=6, step_per_video=8, heldout_per_video=9, arm_steps=2,
                          vision_steps=2, caption_steps=2, batch_size=2, num_frames=2, bootstrap=50, eval_bootstrap=20)
    table = run_replicate(cfg, env={"OMP_NUM_THREADS": "1"}, results=tmp_path / "docs" / "results.md")
    assert table.count("\n") == 2 + 1 + len(ARMS) + 2
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(res["arms"]) == set(ARMS) and res["graph_accuracy"]["object_recall"] > 0.5
    assert set(res["gates"]) == {"start", *ARMS} and res["visual_tokens"] == 15  # 112 px, 2 frames
    assert (tmp_path / "docs" / "results_accuracy_by_steps.png").read_bytes()[:4] == b"\x89PNG"
    assert "stepkit experiment replicate" in (tmp_path / "docs" / "results.md").read_text()
    # rerun: every stage is skipped and the same table comes back
    assert run_replicate(cfg, env={"OMP_NUM_THREADS": "1"}) == table
