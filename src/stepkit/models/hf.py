"""The ``hf`` backend: any local transformers Video-LLM through AutoModelForImageTextToText + AutoProcessor.

Prompts go through the model's own chat template and processor, so a tiny random model and a
released 7B checkpoint take exactly the same path. ``tiny`` is the same backend over a tiny model
built (or reused) locally.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from stepkit.errors import ModelError
from stepkit.models.base import Prompt, SamplingParams
from stepkit.models.families import Family, family_of_model_type, get_family

_DTYPES = ("auto", "float32", "bfloat16", "float16")
_FINGERPRINT_CHUNK = 1 << 20


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """A cheap content fingerprint of a local checkpoint: config, tokenizer and weight files
    (name, size, and SHA-256 of their first and last MiB). Changes when the weights change."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.iterdir() if p.is_file()):
        if f.suffix not in (".json", ".safetensors", ".bin", ".jinja", ".model", ".txt"):
            continue
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(_FINGERPRINT_CHUNK))
            if size > 2 * _FINGERPRINT_CHUNK:
                fh.seek(size - _FINGERPRINT_CHUNK)
                h.update(fh.read(_FINGERPRINT_CHUNK))
    return h.hexdigest()[:16]


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is usable, else ``cpu``; anything else is passed through."""
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str):
    """``auto`` → bfloat16 on a CUDA device that supports it, float16 on older CUDA, float32 elsewhere."""
    import torch

    if dtype not in _DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; choose one of {', '.join(_DTYPES)}")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, dtype)


_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")


def _adapter_base(folder: Path) -> str:
    """The base model a peft LoRA adapter folder was trained from (its ``base_model_name_or_path``)."""
    try:
        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}/adapter_config.json is unreadable: {exc}") from exc
    if not base:
        raise ModelError(f"{folder}/adapter_config.json names no base_model_name_or_path; cannot load the adapter")
    if base.startswith((".", "/", "~")) and not Path(base).expanduser().exists():
        raise ModelError(f"LoRA adapter {folder}: its base model {base} does not exist")
    return base


def _to_pil(frame: np.ndarray):
    from PIL import Image

    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ModelError(f"a prompt frame must be HxWx3 uint8, got shape {arr.shape}")
    return Image.fromarray(arr.astype(np.uint8, copy=False))


class HFBackend:
    """A transformers Video-LLM from a local folder (or a hub id where a network exists).

    ``dtype``: auto | float32 | bfloat16 | float16; ``device``: auto | cpu | cuda | cuda:N | mps;
    ``device_map`` (for example ``"auto"``) shards a large model over several GPUs instead;
    ``batch_size`` prompts (or continuations) per forward pass; ``sample_in_batches`` batches
    sampled generations too (faster; a prompt's samples then depend on its batch). A folder holding
    a peft LoRA adapter (``adapter_config.json``) loads its base model and merges the adapter.
    """

    def __init__(self, model: str | os.PathLike, *, dtype: str = "auto", device: str = "auto",
                 device_map: str | None = None, batch_size: int = 4, attn_implementation: str | None = None,
                 family: str | None = None, model_id: str | None = None, default_video_fps: float = 1.0,
                 sample_in_batches: bool = False, trust_remote_code: bool = False) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if batch_size < 1:
            raise ModelError(f"batch_size must be >= 1, got {batch_size}")
        self.source = str(model)
        local = Path(self.source).expanduser()
        adapter_base: str | None = None
        if local.exists():
            if (local / "adapter_config.json").is_file() and not (local / "config.json").is_file():
                adapter_base = _adapter_base(local)
            elif not (local / "config.json").is_file():
                raise ModelError(f"model folder {local} has no config.json (nor adapter_config.json); "
                                 "is it a transformers checkpoint?")
            self.source = str(local.resolve())
        elif self.source.startswith((".", "/", "~")) or self.source.count("/") > 1 or "\\" in self.source:
            raise ModelError(f"model path {self.source!r} does not exist (a hub id looks like 'org/name')")
        self.device = resolve_device(device) if device_map is None else None
        self.dtype = resolve_dtype(dtype, self.device or "cuda")
        self.batch_size = batch_size
        self.default_video_fps = default_video_fps
        self.sample_in_batches = sample_in_batches
        kwargs: dict[str, Any] = {"dtype": self.dtype, "trust_remote_code": trust_remote_code}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        if device_map:
            kwargs["device_map"] = device_map
        try:
            proc_src = self.source
            if adapter_base is not None and not any((local / f).is_file() for f in _PROCESSOR_FILES):
                proc_src = adapter_base
            self.processor = AutoProcessor.from_pretrained(proc_src, trust_remote_code=trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(adapter_base or self.source, **kwargs)
            if adapter_base is not None:
                from peft import PeftModel

                # Merged once at load: inference then costs what the base model costs.
                self.model = PeftModel.from_pretrained(self.model, self.source).merge_and_unload()
        except Exception as exc:  # noqa: BLE001 - any failure to load a user's checkpoint is a ModelError
            hint = "" if local.exists() else " (not a local folder: as a hub id it needs network access)"
            raise ModelError(f"cannot load model {self.source!r}{hint}: {type(exc).__name__}: {exc}") from exc
        if self.device is not None:
            self.model.to(self.device)
        self.model.eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ModelError(f"model {self.source!r}: its processor has no tokenizer")
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.family: Family | None = get_family(family) if family else family_of_model_type(
            getattr(self.model.config, "model_type", ""))
        if self.family is not None:
            self.video_input = self.family.video_input
        else:
            self.video_input = "videos" if getattr(self.processor, "video_processor", None) is not None else "frames"
        if model_id is None:
            name = Path(self.source).name if local.exists() else self.source
            fp = checkpoint_fingerprint(self.source) if local.exists() else "hub"
            if adapter_base is not None:  # an adapter's answers also depend on its base weights
                base_fp = checkpoint_fingerprint(adapter_base) if Path(adapter_base).is_dir() else adapter_base
                fp = hashlib.sha256(f"{fp}+{base_fp}".encode()).hexdigest()[:16]
            model_id = f"hf:{name}@{fp}"
        self.model_id = model_id
        self._torch = torch

    # --- prompt assembly ----------------------------------------------------------------------

    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        """The chat messages of a prompt (images first, then the video, then the text)."""
        msgs: list[dict[str, Any]] = []
        if prompt.system:
            msgs.append({"role": "system", "content": [{"type": "text", "text": prompt.system}]})
        content: list[dict[str, Any]] = [{"type": "image"} for _ in prompt.images]
        if prompt.video:
            if self.video_input == "videos":
                content.append({"type": "video"})
            else:
                content += [{"type": "image"} for _ in prompt.video]
        content.append({"type": "text", "text": prompt.text})
        msgs.append({"role": "user", "content": content})
        return msgs

    def prompt_text(self, prompt: Prompt) -> str:
        """The chat-templated prompt text, ending with the generation prompt."""
        return self.processor.apply_chat_template(self.messages(prompt), add_generation_prompt=True, tokenize=False)

    def _encode(self, prompts: Sequence[Prompt]):
        """Processor inputs for prompts that share one media layout (same counts of images/frames)."""
        texts = [self.prompt_text(p) for p in prompts]
        images: list[list[Any]] = []
        videos: list[list[Any]] = []
        metadata: list[dict[str, Any]] = []
        for p in prompts:
            imgs = [_to_pil(f) for f in p.images]
            if p.video:
                if self.video_input == "videos":
                    videos.append([np.asarray(f, dtype=np.uint8) for f in p.video])
                    fps = float(p.video_fps or self.default_video_fps)
                    metadata.append({"total_num_frames": len(p.video), "fps": fps,
                                     "frames_indices": list(range(len(p.video))),
                                     "duration": len(p.video) / fps})
                else:
                    imgs += [_to_pil(f) for f in p.video]
            images.append(imgs)
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(images):
            kwargs["images"] = images
            if self.video_input == "frames" and any(p.video for p in prompts) and self.family is not None \
                    and self.family.name == "smolvlm2":
                kwargs["do_image_splitting"] = False  # a clip's frames are not tiled (as in SmolVLM's video path)
        if videos:
            kwargs["videos"] = videos
            kwargs["video_metadata"] = metadata
            kwargs["do_sample_frames"] = False
        try:
            inputs = self.processor(**kwargs)
        except TypeError:
            if "video_metadata" not in kwargs:
                raise
            kwargs.pop("video_metadata")  # older processors without metadata support
            inputs = self.processor(**kwargs)
        device = self.model.device
        return inputs.to(device)

    @staticmethod
    def _layout(p: Prompt) -> tuple[int, int]:
        return (len(p.images), len(p.video or []))

    # --- the protocol -------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[str]]:
        """``params.n`` completions per prompt. Greedy (temperature 0) decodes in batches and repeats
        the answer n times; sampling decodes one prompt at a time under ``params.seed`` so a prompt's
        samples do not depend on what else is in the batch (``sample_in_batches=True`` trades that
        for throughput: one seed per batch)."""
        if params.n < 1 or params.max_new_tokens < 1:
            raise ModelError(f"sampling needs n >= 1 and max_new_tokens >= 1, got {params}")
        results: list[list[str] | None] = [None] * len(prompts)
        greedy = params.temperature <= 0
        if greedy or self.sample_in_batches:
            groups: dict[tuple[int, int], list[int]] = {}
            for i, p in enumerate(prompts):
                groups.setdefault(self._layout(p), []).append(i)
            per = 1 if greedy else params.n
            for idx in groups.values():
                for s in range(0, len(idx), self.batch_size):
                    chunk = idx[s:s + self.batch_size]
                    texts = self._run_generate([prompts[i] for i in chunk], params, per)
                    for row, i in enumerate(chunk):
                        results[i] = [texts[row]] * params.n if greedy else texts[row * per:(row + 1) * per]
        else:
            for i, p in enumerate(prompts):
                results[i] = self._run_generate([p], params, params.n)
        return [r or [] for r in results]

    def _run_generate(self, prompts: Sequence[Prompt], params: SamplingParams, n: int) -> list[str]:
        torch = self._torch
        inputs = self._encode(prompts)
        gen_kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens,
                                      "pad_token_id": self.tokenizer.pad_token_id}
        if params.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0,
                              num_return_sequences=n)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        devices = [self.model.device.index or 0] if self.model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(params.seed)
            out = self.model.generate(**inputs, **gen_kwargs)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def loglikelihood(self, prompt: Prompt, continuations: Sequence[str]) -> list[float]:
        """Sum of the log-probabilities of each continuation's tokens after the templated prompt
        (continuations are tokenised on their own, without special tokens)."""
        torch = self._torch
        conts = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        scores: list[float] = [0.0] * len(conts)
        todo = [i for i, c in enumerate(conts) if c]
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s:s + self.batch_size]
            k = len(chunk)
            inputs = self._encode([prompt] * k)
            ids = inputs["input_ids"]
            length = ids.shape[1]
            width = max(len(conts[i]) for i in chunk)
            cont = torch.full((k, width), self.tokenizer.pad_token_id, dtype=ids.dtype, device=ids.device)
            mask = torch.zeros((k, width), dtype=ids.dtype, device=ids.device)
            for row, i in enumerate(chunk):
                cont[row, :len(conts[i])] = torch.tensor(conts[i], dtype=ids.dtype)
                mask[row, :len(conts[i])] = 1
            batch = dict(inputs)
            for key, val in inputs.items():
                if torch.is_tensor(val) and val.dim() == 2 and tuple(val.shape) == tuple(ids.shape):
                    extra = cont if key == "input_ids" else mask if key == "attention_mask" else torch.zeros_like(cont)
                    batch[key] = torch.cat([val, extra.to(val.dtype)], dim=1)
            with torch.inference_mode():
                logits = self.model(**batch).logits[:, length - 1:length - 1 + width].float()
            logp = torch.log_softmax(logits, dim=-1).gather(-1, cont.unsqueeze(-1)).squeeze(-1)
            sums = (logp * mask).sum(dim=1)
            for row, i in enumerate(chunk):
                scores[i] = float(sums[row])
        return scores

    def describe(self) -> dict[str, Any]:
        """Model id, family, dtype, device (for summaries)."""
        return {"backend": "hf", "model_id": self.model_id, "source": self.source,
                "family": self.family.name if self.family else None, "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.model.device), "video_input": self.video_input}


def tiny_backend(family: str | None = None, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                 path: str | os.PathLike | None = None, size: dict[str, Any] | None = None,
                 model: str | None = None, **hf_options: Any) -> HFBackend:
    """An :class:`HFBackend` over a tiny random model of ``family`` (default qwen2.5-vl): built into
    ``path`` if given, else reused from (or built into) the tiny-model cache. ``size`` holds TinySize
    overrides. ``model`` (as a CLI's ``--model`` passes it) may name the family instead: ``FAMILY``,
    ``tiny:FAMILY`` or ``tiny:FAMILY:SEED``."""
    from stepkit.models.tiny import build_tiny_model, tiny_model_path

    if model is not None:
        parts = str(model).split(":")
        if parts[0] == "tiny":
            parts = parts[1:]
        if len(parts) not in (1, 2) or (len(parts) == 2 and not parts[1].isdigit()):
            raise ModelError(f"tiny model spec {model!r} must look like FAMILY, tiny:FAMILY or tiny:FAMILY:SEED")
        if family is not None and family != parts[0]:
            raise ModelError(f"tiny backend: model {model!r} and family {family!r} disagree")
        family = parts[0]
        seed = int(parts[1]) if len(parts) == 2 else seed
    fam = get_family(family or "qwen2.5-vl")
    size = dict(size or {})
    if path is not None:
        folder = build_tiny_model(fam.name, path, seed=seed, **size)
    else:
        folder = tiny_model_path(fam.name, seed=seed, cache_dir=cache_dir, **size)
    # Named by content, so a change to how tiny models are built never reuses stale cached answers.
    hf_options.setdefault("model_id", f"tiny:{fam.name}:s{seed}:{checkpoint_fingerprint(folder)[:10]}")
    hf_options.setdefault("family", fam.name)
    return HFBackend(folder, **hf_options)
