"""lmms-eval 0.7.3 itself builds the exported task (its TaskManager loads utils.py its own way) and
scores documents: with a tiny Qwen2.5-VL through `--model stepkit`, and with a scripted model that
answers right, so the task's scoring is checked end to end."""

from __future__ import annotations

import json
import os

import pytest
from interop_cli import invoke

pytest.importorskip("lmms_eval", reason="lmms-eval is not installed: pip install --no-deps lmms-eval==0.7.3 "
                                        "plus the interop extra")


@pytest.fixture(scope="module")
def task_dir(world, tmp_path_factory):
    """The lmms-eval task, exported with a *relative* --videos root from another working directory."""
    out = tmp_path_factory.mktemp("lmms") / "task"
    cwd = os.getcwd()
    os.chdir(world["root"])
    try:
        invoke("eval", "export-lmms", world["qa"], "--out", out, "--task", "stepkit_interop", "--videos", "W/videos")
    finally:
        os.chdir(cwd)
    return out


def _evaluate(task_dir, backend=None, pretrained="tiny:qwen2.5-vl", limit=4):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from stepkit.evaluate.lmms_model import StepkitLMM

    tm = TaskManager(include_path=str(task_dir))
    assert "stepkit_interop" in tm.all_tasks
    lm = StepkitLMM(pretrained=pretrained, frames=2, backend=backend)
    return simple_evaluate(model=lm, tasks=["stepkit_interop"], limit=limit, task_manager=tm, log_samples=True)


def test_task_builds_and_scores_with_a_tiny_model(task_dir, one_torch_thread, monkeypatch, tmp_path):
    docs = [json.loads(x) for x in (task_dir / "stepkit_interop.jsonl").read_text().splitlines()]
    assert all(os.path.isabs(d["video"]) and os.path.isfile(d["video"]) for d in docs)
    monkeypatch.chdir(tmp_path)  # the task's video paths do not depend on the working directory
    res = _evaluate(task_dir, limit=2)
    r = res["results"]["stepkit_interop"]
    assert 0.0 <= r["accuracy,none"] <= 1.0
    samples = res["samples"]["stepkit_interop"]
    assert len(samples) == 2 and all(isinstance(s["resps"][0][0], str) for s in samples)


def test_scoring_through_lmms_eval_with_right_answers(task_dir, world):
    """A scripted model that answers each question's gold letter scores 1.0 in lmms-eval's own
    aggregation, and every prompt it got carried the video's frames."""
    from stepkit.data.record import load_records
    from stepkit.models.scripted import ScriptedBackend

    recs = load_records(world["qa"])
    rules = [{"contains": [r.question], "answers": [f"The answer is ({chr(65 + r.answer_index)})." if r.options
                                                    else f"{r.answer}."]} for r in recs]
    scripted = ScriptedBackend({"model_id": "scripted/gold", "rules": rules})
    seen = []

    class Recording:
        model_id = scripted.model_id

        def generate(self, prompts, params):
            seen.extend(prompts)
            return scripted.generate(prompts, params)

    res = _evaluate(task_dir, backend=Recording(), limit=len(rules))
    assert res["results"]["stepkit_interop"]["accuracy,none"] == 1.0
    assert len(seen) == len(rules) and all(len(p.video or []) == 2 and p.video[0].ndim == 3 for p in seen)


def test_stepkit_model_is_registered_with_lmms_eval():
    from lmms_eval.models import get_model

    from stepkit.evaluate.lmms_model import StepkitLMM

    assert get_model("stepkit") is StepkitLMM


def test_lmms_eval_cli_runs_the_task_with_model_stepkit(task_dir, tmp_path):
    """`python -m lmms_eval --model stepkit --include_path TASK --tasks NAME`: lmms-eval's own CLI."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "lmms_eval", "--model", "stepkit", "--model_args",
                           "pretrained=tiny:qwen2.5-vl,frames=2", "--include_path", str(task_dir), "--tasks",
                           "stepkit_interop", "--batch_size", "1", "--limit", "1", "--output_path", str(tmp_path / "res")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [result] = list((tmp_path / "res").rglob("*_results.json"))
    assert "accuracy,none" in json.loads(result.read_text())["results"]["stepkit_interop"]
