"""The hf backend (through the tiny backend): generation, sampling, seeds, log-likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stepkit.errors import ModelError
from stepkit.models import Prompt, SamplingParams, VideoLLM, get_backend
from stepkit.models.families import FAMILIES


@pytest.fixture(scope="module")
def backend(tiny_dir):
    return get_backend("hf", model=str(tiny_dir("qwen2.5-vl")), batch_size=4)


def _prompts(frames):
    img = np.asarray(frames[0])[8:48, 8:48]
    return [Prompt("What moves to the right?", video=frames, video_fps=2.0),
            Prompt("Where is the red cube?", images=[img], system="Answer briefly."),
            Prompt("Say hello."),
            Prompt("What happened after the person opened the door?", video=frames[:2], video_fps=1.0),
            Prompt("Is this picture from the video?", images=[img], video=frames, video_fps=2.0)]


def test_backend_speaks_the_protocol(backend):
    assert isinstance(backend, VideoLLM)
    assert backend.model_id.startswith("hf:qwen2.5-vl@")
    info = backend.describe()
    assert info["family"] == "qwen2.5-vl" and info["dtype"] == "float32" and info["device"] == "cpu"


def test_greedy_generation_is_batch_independent(backend, frames):
    prompts = _prompts(frames)
    batched = backend.generate(prompts, SamplingParams(max_new_tokens=6))
    single = [backend.generate([p], SamplingParams(max_new_tokens=6))[0] for p in prompts]
    assert batched == single
    assert all(len(r) == 1 and isinstance(r[0], str) for r in batched)
    assert backend.generate(prompts[:1], SamplingParams(n=3, max_new_tokens=6)) == [batched[0] * 3]


def test_sampling_n_and_seed(backend, frames):
    p = _prompts(frames)[:2]
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=6, seed=7)
    a = backend.generate(p, params)
    b = backend.generate(p, params)
    c = backend.generate(p, SamplingParams(n=4, temperature=1.0, max_new_tokens=6, seed=8))
    assert a == b
    assert [len(x) for x in a] == [4, 4]
    assert len(set(a[0])) > 1  # a random model at temperature 1 does not repeat itself four times
    assert a != c
    # A prompt's samples do not depend on its neighbours in the batch.
    assert backend.generate(p[1:], params)[0] == a[1]
    # Batched sampling: n distinct samples per prompt, reproducible for the same batch.
    fast = get_backend("hf", model=backend.source, batch_size=4, sample_in_batches=True)
    same_layout = [p[0], Prompt("Which object moves?", video=frames, video_fps=2.0)]
    x = fast.generate(same_layout, params)
    assert x == fast.generate(same_layout, params) and [len(r) for r in x] == [4, 4]
    assert len(set(x[0])) > 1 and x[0] != x[1]
    # Sampling leaves the caller's global RNG alone.
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    backend.generate(p[:1], params)
    assert torch.equal(torch.rand(1), expected)


def test_loglikelihood_matches_an_independent_forward(backend, frames):
    prompt = _prompts(frames)[0]
    proc, model, tok = backend.processor, backend.model, backend.tokenizer
    text = proc.apply_chat_template(backend.messages(prompt), add_generation_prompt=True, tokenize=False)
    inputs = proc(text=[text], videos=[frames], return_tensors="pt",
                  video_metadata=[{"fps": 2.0, "total_num_frames": 4, "frames_indices": [0, 1, 2, 3]}])
    with torch.no_grad():
        logp = torch.log_softmax(model(**inputs).logits[0, -1].float(), dim=-1)
    # The most likely next token whose text tokenises back to itself.
    for tid in torch.argsort(logp, descending=True).tolist():
        s = tok.decode([tid])
        if s and tok(s, add_special_tokens=False)["input_ids"] == [tid]:
            break
    others = [tok.decode([t]) for t in range(300, 340) if t != tid]
    others = [o for o in others if len(tok(o, add_special_tokens=False)["input_ids"]) == 1]
    scores = backend.loglikelihood(prompt, [s] + others)
    assert scores[0] == pytest.approx(float(logp[tid]), abs=1e-4)
    assert all(scores[0] >= x - 1e-6 for x in scores[1:] if not math.isnan(x))


def test_loglikelihood_properties(backend, frames):
    prompt = _prompts(frames)[0]
    greedy = backend.generate([prompt], SamplingParams(max_new_tokens=4))[0][0]
    conts = [greedy, "qz xv kj wq", "the red cube", "", "the red cube moves to the right of the blue sphere"]
    scores = backend.loglikelihood(prompt, conts)
    assert all(math.isfinite(s) and s <= 0 for s in scores)
    assert scores[3] == 0.0
    assert scores[4] < scores[2]  # a longer continuation that extends another is less likely
    one = get_backend("hf", model=backend.source, batch_size=1)
    assert one.loglikelihood(prompt, conts) == pytest.approx(scores, abs=1e-4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_through_the_backend(family, tiny_dir, frames):
    b = get_backend("hf", model=str(tiny_dir(family)), batch_size=2)
    prompts = _prompts(frames)
    out = b.generate(prompts, SamplingParams(n=2, max_new_tokens=3))
    assert [len(o) for o in out] == [2] * len(prompts)
    ll = b.loglikelihood(prompts[1], ["on the table", "under the chair"])
    assert all(math.isfinite(x) and x < 0 for x in ll)


def test_tiny_backend_builds_and_names_itself(tmp_path):
    b = get_backend("tiny", family="smolvlm2", seed=2, cache_dir=tmp_path, size={"num_layers": 1})
    assert b.model_id.startswith("tiny:smolvlm2:s2:") and b.video_input == "frames"
    again = get_backend("tiny", family="smolvlm2", seed=2, cache_dir=tmp_path, size={"num_layers": 1})
    assert again.model_id == b.model_id and again.source == b.source


def test_load_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown model backend 'vllm'"):
        get_backend("vllm")
    with pytest.raises(ModelError, match="does not exist"):
        get_backend("hf", model=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        get_backend("hf", model=str(tmp_path / "empty"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    with pytest.raises(ModelError, match="cannot load model"):
        get_backend("hf", model=str(tmp_path / "broken"))
    with pytest.raises(ModelError, match="unknown dtype"):
        get_backend("tiny", family="qwen2-vl", cache_dir=tmp_path, dtype="fp8")


def test_open_model_picks_the_backend(tmp_path, tiny_dir, monkeypatch):
    from stepkit.models import open_model
    from stepkit.models.cache import CachedBackend

    monkeypatch.setenv("STEPKIT_CACHE", str(tmp_path / "cache"))
    tiny = open_model("tiny:qwen3-vl:1")
    assert tiny.model_id.startswith("tiny:qwen3-vl:s1:")
    assert (tmp_path / "cache" / "tiny").is_dir()
    local = open_model(str(tiny_dir("llava-onevision")), cache=str(tmp_path / "r.sqlite"))
    assert isinstance(local, CachedBackend) and local.inner.family.name == "llava-onevision"
    with pytest.raises(ModelError, match="tiny:FAMILY:SEED"):
        open_model("tiny:qwen3-vl:x")
    with pytest.raises(ModelError, match="no model given"):
        open_model(None)


def test_scripted_backend_is_registered():
    from stepkit.models import available_backends

    assert {"hf", "openai", "scripted", "tiny"} <= set(available_backends())
    b = get_backend("scripted", script={"rules": [{"contains": ["cup"], "answers": ["on the table"]}],
                                        "default": "no idea"})
    assert b.generate([Prompt("Where is the cup?"), Prompt("Why?")], SamplingParams(n=2)) == [
        ["on the table", "on the table"], ["no idea", "no idea"]]


def test_a_lora_adapter_folder_loads_merged(tiny_dir, tmp_path, frames):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from stepkit.models.families import get_family

    base_dir = tiny_dir("qwen2-vl")
    model = AutoModelForImageTextToText.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=get_family("qwen2-vl").lora_target_regex()))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a trained adapter, not the identity LoRA starts as
    peft_model.save_pretrained(tmp_path / "adapter")
    AutoProcessor.from_pretrained(base_dir).save_pretrained(tmp_path / "adapter")
    peft_model.merge_and_unload().save_pretrained(tmp_path / "merged")
    AutoProcessor.from_pretrained(base_dir).save_pretrained(tmp_path / "merged")

    prompt = Prompt("What moves?", video=frames, video_fps=2.0)
    conts = ["the red cube", "nothing"]
    adapter = get_backend("hf", model=str(tmp_path / "adapter"))
    merged = get_backend("hf", model=str(tmp_path / "merged"))
    base = get_backend("hf", model=str(base_dir))
    assert adapter.loglikelihood(prompt, conts) == pytest.approx(merged.loglikelihood(prompt, conts), abs=1e-4)
    assert adapter.loglikelihood(prompt, conts) != pytest.approx(base.loglikelihood(prompt, conts), abs=1e-3)
    assert adapter.model_id != base.model_id

    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / "adapter_config.json").write_text('{"base_model_name_or_path": "/nowhere/base"}')
    with pytest.raises(ModelError, match="base model /nowhere/base does not exist"):
        get_backend("hf", model=str(tmp_path / "orphan"))
