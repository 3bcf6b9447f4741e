"""LoRA: the adapter saves, reloads and merges; the merged model generates what the adapter model does."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from conftest import quick_config


@pytest.mark.slow
def test_lora_adapter_reload_merge_generate(qa_dir, tiny_models, tmp_path):
    from safetensors.torch import load_file

    from stepkit.data.record import load_records
    from stepkit.models.families import get_family
    from stepkit.train.collate import VideoChatEncoder
    from stepkit.train.trainer import load_trained, train

    out = tmp_path / "lora"
    base_dir = tiny_models("llava-onevision")
    res = train(quick_config(qa_dir, base_dir, out, lora=True, lora_r=4, max_steps=12, learning_rate=2e-2,
                             save_merged=True))
    assert res.finished
    adapter = load_file(str(out / "adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)
    assert not any(".vision_tower." in k or "multi_modal_projector" in k for k in adapter)  # LLM only
    assert max(float(v.abs().max()) for k, v in adapter.items() if "lora_B" in k) > 0  # it learned something
    assert not (out / "model.safetensors").exists()

    peft_model, processor = load_trained(out)
    merged_model, _ = load_trained(out, merged=True)
    saved_merged, _ = load_trained(out / "merged")
    import transformers

    base = transformers.AutoModelForImageTextToText.from_pretrained(base_dir).eval()
    enc = VideoChatEncoder(processor, get_family("llava-onevision"), num_frames=4, max_side=112, video_base=qa_dir)
    for rec in load_records(qa_dir)[:2]:
        for kind in ("answer", "rationale"):
            inputs = enc.prompt_inputs(rec, kind)
            with torch.no_grad():
                gens = [m.generate(**inputs, max_new_tokens=8, do_sample=False)
                        for m in (peft_model, merged_model, saved_merged, base)]
                logits = [m(**inputs).logits for m in (peft_model, saved_merged, base)]
            assert torch.equal(gens[0], gens[1]) and torch.equal(gens[0], gens[2])
            assert torch.allclose(logits[0], logits[1], atol=1e-5)
            assert not torch.allclose(logits[0], logits[2], atol=1e-3)  # the adapter changes the model


def test_lora_resume_with_dropout_is_exact(qa_dir, tiny_models, tmp_path):
    from safetensors.torch import load_file

    from stepkit.train.trainer import resume_config, train

    kw = dict(lora=True, lora_r=4, lora_dropout=0.1, max_steps=12, learning_rate=1e-2, lr_scheduler="cosine")
    model = tiny_models("qwen2.5-vl")
    train(quick_config(qa_dir, model, tmp_path / "full", **kw))
    first = train(quick_config(qa_dir, model, tmp_path / "split", stop_after_steps=6, **kw))
    assert not first.finished and first.global_step == 6
    cfg, ckpt = resume_config(tmp_path / "split")
    assert ckpt.name == "checkpoint-6" and cfg.stop_after_steps is None
    assert train(cfg, resume=True).finished
    a = load_file(str(tmp_path / "full" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "split" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


def test_gradient_checkpointing_and_bf16_train(qa_dir, tiny_models, tmp_path):
    """Activation checkpointing changes memory, not the math; bf16 runs and stores bf16 weights."""
    from safetensors.torch import load_file

    from stepkit.train.trainer import train

    model = tiny_models("qwen2-vl")
    losses = {}
    for name, kw in (("plain", {}), ("gc", dict(gradient_checkpointing=True)),
                     ("gc-lora", dict(gradient_checkpointing=True, lora=True, lora_r=4)),
                     ("bf16", dict(precision="bf16"))):
        res = train(quick_config(qa_dir, model, tmp_path / name, max_steps=3, freeze_vision=False, **kw))
        losses[name] = [h["loss"] for h in res.log_history if "loss" in h]
        assert res.finished and len(losses[name]) == 3
    assert losses["gc"] == pytest.approx(losses["plain"], abs=1e-5)
    assert losses["bf16"][0] == pytest.approx(losses["plain"][0], rel=0.02)
    assert {v.dtype for v in load_file(str(tmp_path / "bf16" / "model.safetensors")).values()} == {torch.bfloat16}
