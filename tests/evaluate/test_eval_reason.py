"""``stepkit eval --mode reason``: the model explains, then answers; the answer is scored as in the
other modes and the rationale's faithfulness against the scene graphs is reported by steps."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.data.record import load_records
from stepkit.errors import ConfigError
from stepkit.evaluate.runner import EvalConfig, evaluate
from stepkit.evaluate.scoring import question_text, rationale_of, split_reasoning
from stepkit.models.scripted import ScriptedBackend


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]


def _graphs(world_split) -> Path:
    return world_split["root"] / "world" / "graphs"


def _own_rationales(world_split, corrupt: str | None = None) -> ScriptedBackend:
    """A model that answers each question with stepkit's own rationale (optionally corrupted)."""
    from stepkit.graph.serialize import load_graph
    from stepkit.reason.faithfulness import corrupt_rationale

    rng = random.Random(0)
    rules = []
    for rec in load_records(world_split["qa"]):
        text = rec.rationale_text
        if corrupt:
            g = load_graph(_graphs(world_split) / f"{rec.video_id}.json")
            text = corrupt_rationale(text, g, corrupt, rng) or text
        rules.append({"contains": [rec.question], "answers": [text + " " + rec.answer_sentence]})
    return ScriptedBackend({"model_id": f"scripted/rationales-{corrupt or 'own'}", "rules": rules,
                            "default": "I cannot tell."})


def test_split_reasoning() -> None:
    assert split_reasoning("The man took the cup. So the answer is (B).") == ("The man took the cup.", "(B).")
    assert split_reasoning("We see it.\nAnswer: yes") == ("We see it.", "yes")
    assert split_reasoning("no cue here. just text") == ("no cue here. just text", "just text")
    assert rationale_of("A took B. So the answer is (B). The man took the book.") == "A took B. So the answer is (B)."
    assert rationale_of("A took B from 1.5 s to 2.0 s. The answer is 2") == "A took B from 1.5 s to 2.0 s. The answer is 2"


def test_reason_prompt_is_the_training_rationale_turn(world_split) -> None:
    from stepkit.evaluate.loaders import load_stepkit
    from stepkit.train.collate import user_text

    recs = {r.id: r for r in load_records(world_split["qa"])}
    for it in load_stepkit(world_split["qa"]):
        assert question_text(it, "reason") == user_text(recs[it.id], recs[it.id].rationale_instruction)


def test_reason_mode_scores_answers_and_faithfulness(world_split, tmp_path: Path) -> None:
    base = dict(benchmark="stepkit", data=str(world_split["qa"]), videos=str(world_split["videos"]), mode="reason",
                frames=2, bootstrap=200, graphs=str(_graphs(world_split)))
    m = evaluate(EvalConfig(**base), tmp_path / "own", model=_own_rationales(world_split))
    rows = _rows(tmp_path / "own")
    n = len(rows)
    assert m["mode"] == "reason" and m["overall"]["accuracy"] == 1.0 and m["parse_failures"] == 0
    assert all(r["reasoning"] and r["reasoning"] in r["raw"] for r in rows)
    # stepkit's own rationales are faithful (a rare one the renderer words loosely may not be)
    assert sum(r["faithfulness"]["score"] >= 0.99 for r in rows) >= 0.9 * n
    f = m["faithfulness"]
    assert f["overall"]["n"] == n and f["overall"]["mean"] >= 0.95 and f["overall"]["reaches_answer"] >= 0.9
    assert set(f["by_steps_bucket"]) == set(m["by_steps_bucket"])
    assert f["overall"]["coverage"] >= 0.6
    assert sum(g["n"] for g in f["by_steps_bucket"].values()) == n
    cfg = json.loads((tmp_path / "own" / "config.json").read_text())
    assert cfg["max_new_tokens"] == 256 and cfg["mode"] == "reason"
    assert "Rationale faithfulness" in (tmp_path / "own" / "report.md").read_text()

    # wrong objects: the answers are the same, the rationales are not faithful
    bad = evaluate(EvalConfig(**base), tmp_path / "bad", model=_own_rationales(world_split, "wrong_object"))
    assert bad["overall"]["accuracy"] == 1.0
    assert bad["faithfulness"]["overall"]["mean"] < f["overall"]["mean"] - 0.2
    assert bad["faithfulness"]["overall"]["ci_high"] < f["overall"]["ci_low"]

    # without graphs: answers scored, faithfulness not
    nog = evaluate(EvalConfig(**{**base, "graphs": None}), tmp_path / "nog", model=_own_rationales(world_split))
    assert nog["faithfulness"] is None and nog["overall"]["accuracy"] == 1.0
    with pytest.raises(ConfigError, match="--mode reason"):
        evaluate(EvalConfig(**{**base, "mode": "mc-generate"}), tmp_path / "x", model=_own_rationales(world_split))


def test_tiny_model_reasons_on_the_cli(world_split, tiny_model, tmp_path: Path, one_torch_thread) -> None:
    res = CliRunner().invoke(app, [
        "eval", "--backend", "tiny", "--model", str(tiny_model), "--benchmark", "stepkit", "--data",
        str(world_split["qa"]), "--videos", str(world_split["videos"]), "--mode", "reason", "--frames", "2",
        "--max-new-tokens", "24", "--limit", "8", "--bootstrap", "100", "--graphs", str(_graphs(world_split)),
        "--threads", "1", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "rationale faithfulness" in res.output and "by steps" in res.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["overall"]["n"] == 8 and m["faithfulness"]["overall"]["n"] == 8
    for g in m["faithfulness"]["by_steps_bucket"].values():
        assert 0.0 <= g["mean"] <= 1.0 and 0.0 <= g["grounded_fraction"] <= 1.0
    rows = _rows(tmp_path / "run")
    assert all(isinstance(r["raw"], str) and "reasoning" in r for r in rows)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["threads"] == 1
    import torch

    assert torch.get_num_threads() == 1


def test_threads_must_be_positive(world_split, tmp_path: Path) -> None:
    cfg = EvalConfig(benchmark="stepkit", data=str(world_split["qa"]), frames=0, mode="mc-generate", threads=0)
    with pytest.raises(ConfigError, match="--threads"):
        evaluate(cfg, tmp_path / "x", model=ScriptedBackend({"rules": [], "default": "A"}))
