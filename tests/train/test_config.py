"""StepTrainConfig validation, presets, LoRA targets, and the train bench."""

from __future__ import annotations

import importlib.util
import json

import pytest

from stepkit.errors import ConfigError
from stepkit.train.config import StepTrainConfig
from stepkit.train.presets import (
    accelerate_config_path,
    load_preset,
    preset_names,
    preset_training_args,
)


def _cfg(**kw):
    return StepTrainConfig(**{"qa": "qa", "model": "m", "out": "o", **kw})


def test_every_field_has_help_and_round_trips(tmp_path):
    helps = StepTrainConfig.help()
    assert helps and all(len(h) > 10 for h in helps.values()), [k for k, h in helps.items() if len(h) <= 10]
    c = _cfg(lambda_rationale=0.5, lora=True, lora_target_modules=["q_proj"])
    p = tmp_path / "step_config.json"
    p.write_text(json.dumps(c.to_dict()))
    assert StepTrainConfig.load(tmp_path) == c
    assert c.lr() == 2e-4 and _cfg().lr() == 1e-5 and _cfg(learning_rate=0.1).lr() == 0.1


@pytest.mark.parametrize("bad,match", [
    (dict(samples="both"), "samples"), (dict(lambda_rationale=-1), "lambda_rationale"),
    (dict(num_frames=None), "num_frames"), (dict(max_steps=-1, epochs=0), "max_steps"),
    (dict(preset="zero9"), "zero9"), (dict(precision="fp8"), "precision"), (dict(per_device_batch_size=0), "batch"),
])
def test_validation_names_the_field(bad, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(**bad).validate()
    with pytest.raises(ConfigError, match="unknown field"):
        StepTrainConfig.from_dict({"qa": "x", "lamda": 1})


def test_presets_load():
    assert preset_names() == ["ddp", "zero2", "zero3", "fsdp"]
    for name in preset_names():
        spec = load_preset(name)
        assert spec["description"] and "training_args" in spec
        assert accelerate_config_path(name).is_file()
    assert preset_training_args("ddp") == {"ddp_find_unused_parameters": True}
    assert preset_training_args("fsdp")["fsdp"] == "full_shard auto_wrap"
    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(ConfigError, match="deepspeed"):
            preset_training_args("zero2")
    else:
        ds = json.loads(open(preset_training_args("zero3")["deepspeed"]).read())
        assert ds["zero_optimization"]["stage"] == 3


def test_training_arguments_from_config(tmp_path):
    pytest.importorskip("transformers")
    from stepkit.train.trainer import training_arguments

    args = training_arguments(_cfg(out=str(tmp_path), max_steps=7, preset="ddp", gradient_checkpointing=True),
                              n_samples=4)
    assert args.max_steps == 7 and args.ddp_find_unused_parameters is True and not args.remove_unused_columns
    assert getattr(args, "activation_checkpointing", getattr(args, "gradient_checkpointing", False))


def test_lora_regex_keeps_to_the_language_model():
    import re

    from stepkit.models.families import get_family
    from stepkit.train.trainer import lora_target_regex

    rx = re.compile(lora_target_regex(get_family("llava-onevision"), ["q_proj", "v_proj"]))
    assert rx.fullmatch("model.language_model.layers.0.self_attn.q_proj")
    assert not rx.fullmatch("model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj")
    assert not rx.fullmatch("model.language_model.layers.0.self_attn.k_proj")


def test_bench_train_runs():
    pytest.importorskip("transformers")
    from stepkit.train.bench import bench_train, format_bench

    r = bench_train(steps=2, batch_size=2, repeats=1, hidden_size=64, num_layers=1, image_size=56)
    assert r["samples_per_s"] > 0 and r["tokens_per_s"] > 0 and r["supervised_tokens_per_step"] > 0
    assert r["fwd_bwd_dual_s"] > 0 and r["fwd_bwd_plain_s"] > 0
    assert "overhead" in format_bench(r)
