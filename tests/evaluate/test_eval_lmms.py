"""The lmms-eval export: the task YAML parses, and utils.py runs on exported records."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import yaml
from typer.testing import CliRunner

from stepkit.cli import app


def _load_utils(folder: Path):
    """Load utils.py as lmms-eval's loader does: executed without a sys.modules entry."""
    spec = importlib.util.spec_from_file_location("stepkit_lmms_utils_test", folder / "utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load_yaml(path: Path, utils) -> dict:
    """Parse the task YAML the way lmms-eval does, resolving ``!function utils.NAME``."""
    class Loader(yaml.SafeLoader):
        pass

    def function(loader, node):
        module, _, name = loader.construct_scalar(node).rpartition(".")
        assert module == "utils"
        return getattr(utils, name)

    Loader.add_constructor("!function", function)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)


def test_export_lmms(world_split, tmp_path: Path) -> None:
    out = tmp_path / "task"
    res = CliRunner().invoke(app, ["eval", "export-lmms", str(world_split["qa"]), "--out", str(out),
                                   "--task", "stepkit_world", "--videos", str(world_split["videos"])])
    assert res.exit_code == 0, res.output
    utils = _load_utils(out)
    cfg = _load_yaml(out / "stepkit_world.yaml", utils)
    assert cfg["task"] == "stepkit_world" and cfg["output_type"] == "generate_until"
    assert cfg["dataset_path"] == "json" and Path(cfg["dataset_kwargs"]["data_files"]["test"]).is_file()
    assert cfg["test_split"] == "test"
    for key in ("doc_to_visual", "doc_to_text", "doc_to_target", "process_results"):
        assert callable(cfg[key])
    aggs = {m["metric"]: m["aggregation"] for m in cfg["metric_list"]}
    assert aggs["accuracy"] == "mean" and callable(aggs["acc_steps_3plus"])

    docs = [json.loads(line) for line in (out / "stepkit_world.jsonl").read_text().splitlines()]
    src = [json.loads(line) for line in world_split["qa"].read_text().splitlines()]
    assert len(docs) == len(src)
    results = []
    kwargs = cfg["lmms_eval_specific_kwargs"]["default"]
    for doc in docs:
        [video] = cfg["doc_to_visual"](doc)
        assert os.path.isfile(video)
        text = cfg["doc_to_text"](doc, kwargs)
        assert doc["question"] in text
        target = cfg["doc_to_target"](doc)
        if doc["options"]:
            assert "(A)" in text and target in "ABCDEFGHIJ"
            answer = f"The answer is ({target})."
        else:
            assert target == doc["answer"]
            answer = f"{target}."
        results.append(cfg["process_results"](doc, [answer]))
        assert cfg["process_results"](doc, ["\ufffd garbage"])["accuracy"] == 0.0
    assert all(r["accuracy"] == 1.0 for r in results)
    for name in ("acc_steps_1", "acc_steps_2", "acc_steps_3plus"):
        value = aggs[name]([r[name] for r in results])
        assert value == 1.0 or math.isnan(value)


def test_export_utils_is_standalone(world_split, tmp_path: Path) -> None:
    """utils.py imports nothing from stepkit (lmms-eval users need not install it)."""
    from stepkit.evaluate.lmms import export_lmms

    s = export_lmms(world_split["qa"], tmp_path / "t")
    text = (tmp_path / "t" / "utils.py").read_text()
    assert "stepkit." not in text.replace("stepkit eval", "") and s["records"] > 0
    compile(text, "utils.py", "exec")
