"""Tiny random Video-LLMs of every supported family, built offline in seconds.

:func:`build_tiny_model` writes a directory that loads with
``AutoModelForImageTextToText.from_pretrained(dir)`` and ``AutoProcessor.from_pretrained(dir)``,
the same code path as a released 7B checkpoint: random weights from a small config, a byte-level
BPE tokenizer trained on a built-in corpus of household / video-QA sentences (so questions about
the synthetic world tokenise into sensible pieces), the family's image / video processor and its
chat template. The same (family, seed, size) always gives the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from stepkit.errors import ModelError
from stepkit.models.families import Family, get_family

TINY_FORMAT_VERSION = 2
_MARKER = "stepkit_tiny.json"
_BUILDING = ".stepkit_tiny_building"


@dataclass(frozen=True)
class TinySize:
    """Size knobs of a tiny model. Defaults give roughly 0.25M parameters and 56 px frames.

    ``vocab_size`` is an upper bound: BPE on the built-in corpus stops near 930 tokens.
    """

    hidden_size: int = 64
    num_layers: int = 2
    intermediate_size: int = 128
    vision_hidden_size: int = 32
    vision_layers: int = 1
    image_size: int = 56
    num_frames: int = 4
    vocab_size: int = 1024

    def validate(self) -> None:
        """ModelError if the knobs cannot make a model."""
        if self.hidden_size % 16 or self.hidden_size < 32:
            raise ModelError(f"tiny model hidden_size must be a multiple of 16 and >= 32, got {self.hidden_size}")
        if self.vision_hidden_size % 16 or self.vision_hidden_size < 16:
            raise ModelError(f"tiny model vision_hidden_size must be a multiple of 16, got {self.vision_hidden_size}")
        if self.num_layers < 1 or self.vision_layers < 1:
            raise ModelError("tiny model needs at least one text layer and one vision layer")
        if self.image_size % 28 and self.image_size % 32:
            raise ModelError(f"tiny model image_size must be a multiple of 28 or 32, got {self.image_size}")
        if self.num_frames < 2 or self.num_frames % 2:
            raise ModelError(f"tiny model num_frames must be an even number >= 2, got {self.num_frames}")
        if self.vocab_size < 400:
            raise ModelError(f"tiny model vocab_size must be >= 400, got {self.vocab_size}")


# --- the tokenizer corpus ---------------------------------------------------------------------

_OBJECTS = ["cup", "book", "laptop", "phone", "towel", "blanket", "pillow", "sandwich", "broom", "box",
            "bag", "dish", "door", "window", "table", "chair", "sofa", "bed", "shelf", "refrigerator",
            "cabinet", "closet", "mirror", "picture", "paper", "notebook", "food", "medicine", "clothes",
            "shoe", "television", "vacuum", "light", "doorknob", "floor", "bottle", "plate", "ball", "cube",
            "sphere", "cylinder", "lamp", "desk", "basket", "remote", "glass"]
_COLOURS = ["red", "green", "blue", "yellow", "white", "black", "orange", "purple", "grey", "brown", "pink", "teal"]
_ATTRS = ["small", "large", "wood", "metal", "open", "closed", "static", "dynamic"]
_BASE_VERBS = ["walk to", "pick up", "put down", "put in", "give", "throw", "open", "close", "sit down", "lie down",
               "stand up", "drink from", "read", "use", "hold", "take", "look at", "sit on", "lie on"]
_VERBS = ["picked up", "put down", "opened", "closed", "took", "held", "threw", "washed", "tidied",
          "ate", "drank from", "sat on", "lay on", "looked at", "walked to", "moved", "pushed", "carried"]
_GERUNDS = ["picking up", "putting down", "opening", "closing", "taking", "holding", "throwing", "washing",
            "tidying", "eating", "drinking from", "sitting on", "lying on", "looking at", "walking to", "moving",
            "pushing", "carrying", "standing", "sitting", "walking", "running", "turning", "leaving", "entering",
            "approaching", "stopping"]
_RELS = ["on", "in", "inside", "sitting on", "lying on", "looking at", "next to", "behind", "in front of", "under",
         "above", "near", "holding", "touching",
         "left of", "right of", "on top of", "beside"]
_AGENTS = ["the person", "the man", "the woman", "someone", "the child", "the agent"]
_QUESTIONS = [
    "What did {a} {v} after {v2} the {o}?", "Which object was {a} {v} before {v2} the {o2}?",
    "What happened after {a} {v} the {o}?", "Is the {c} {o} {r} the {o2}?", "How many {o}s are {r} the {o2}?",
    "Which object did {a} {v} first?", "What was the {o} {r} at the end of the video?",
    "Did {a} {v} the {o} before the {o2}?", "What color is the {o} that {a} {v}?",
    "Where is the {o} when {a} {v} the {o2}?", "Why did {a} {v} the {o}?",
    "What was {a} doing while {g} the {o}?", "Which object was {a} {g} before {g2} the {o2}?",
    "What did {a} do after {g} the {o}?", "What is {a} {g} at the beginning of the video?",
    "Did {a} {b} the {o}?", "What did {a} {b} after they {v2} the {c} {o2}?", "Which {s} object did {a} {b}?",
]
_STATEMENTS = [
    "{A} {v} the {c} {o}.", "Then {a} {v} the {o2}.", "The {o} is {r} the {o2}.",
    "First, {a} {v} the {o}; then {a} {v2} the {o2}.", "At {t} seconds the {o} is {r} the {o2}.",
    "The answer is the {o}.", "Answer: the {c} {o}.", "Step 1: find the {o}. Step 2: find what happened next.",
    "The video shows a room with a {o}, a {o2} and a {c} {o3}.",
    "Objects: {o}, {o2}, {o3}. The {o} is static and the {o2} is dynamic.",
    "{A} is {r} the {o} from {t} to {t2} seconds.", "Yes.", "No.", "{A} is {g} the {o}.",
    "While {g} the {o}, {a} was {g2} the {o2}.", "The {s} {o} is made of {s2}.",
    "{A} will {b} the {o} and then {b2} the {o2}.",
    '{{"objects": ["{o}", "{o2}"], "relations": [["{o}", "{r}", "{o2}"]]}}',
    '{{"answer": "{o}", "confidence": 0.{d}}}',
]


def tiny_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Deterministic household / video-QA sentences used to train tiny tokenizers."""
    rng = random.Random(seed)
    out = []
    templates = _QUESTIONS + _STATEMENTS
    for i in range(n):
        t = templates[i % len(templates)]
        a = rng.choice(_AGENTS)
        fields = dict(a=a, A=a[0].upper() + a[1:], v=rng.choice(_VERBS), v2=rng.choice(_VERBS), g=rng.choice(_GERUNDS),
                      g2=rng.choice(_GERUNDS), b=rng.choice(_BASE_VERBS), b2=rng.choice(_BASE_VERBS),
                      s=rng.choice(_ATTRS), s2=rng.choice(_ATTRS), o=rng.choice(_OBJECTS),
                      o2=rng.choice(_OBJECTS), o3=rng.choice(_OBJECTS), c=rng.choice(_COLOURS), r=rng.choice(_RELS),
                      t=f"{rng.uniform(0, 30):.1f}", t2=f"{rng.uniform(0, 30):.1f}", d=rng.randint(1, 9))
        out.append(t.format(**fields))
    out += [" ".join(words) for words in (_OBJECTS, _COLOURS, _VERBS, _GERUNDS, _BASE_VERBS, _ATTRS, _RELS)]
    out.append("0123456789 .,:;!?()[]{}\"'")
    return out


def build_tokenizer(family: Family, vocab_size: int = 1024, seed: int = 0):
    """A fast byte-level BPE tokenizer with the family's special tokens (``PreTrainedTokenizerFast``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(family.special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(tiny_corpus(seed=seed), trainer=trainer)
    kwargs: dict[str, Any] = {"eos_token": family.eos_token, "pad_token": family.pad_token}
    if family.bos_token:
        kwargs["bos_token"] = family.bos_token
    if family.unk_token:
        kwargs["unk_token"] = family.unk_token
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    fast.add_special_tokens({"additional_special_tokens": [t for t in family.special_tokens
                                                           if t not in kwargs.values()]})
    fast.model_max_length = 32768
    fast.padding_side = "left"
    return fast


# --- configs ------------------------------------------------------------------------------------

def _ids(tok, *names: str) -> list[int]:
    ids = tok.convert_tokens_to_ids(list(names))
    if any(i is None or i == tok.unk_token_id and n != tok.unk_token for i, n in zip(ids, names)):
        raise ModelError(f"tiny tokenizer lacks one of {names}")
    return ids


def _text_common(size: TinySize, vocab: int, tok, family: Family) -> dict[str, Any]:
    heads = size.hidden_size // 16
    return dict(vocab_size=vocab, hidden_size=size.hidden_size, intermediate_size=size.intermediate_size,
                num_hidden_layers=size.num_layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.convert_tokens_to_ids(family.eos_token),
                bos_token_id=tok.bos_token_id if tok.bos_token_id is not None else tok.pad_token_id)


def _qwen_config(family: Family, size: TinySize, vocab: int, tok):
    import transformers

    img, vid, vs, ve = _ids(tok, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    text = _text_common(size, vocab, tok, family)
    vh = size.vision_hidden_size
    if family.name == "qwen2-vl":
        text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
        vision = dict(depth=size.vision_layers, embed_dim=vh, hidden_size=size.hidden_size, num_heads=vh // 16,
                      mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    elif family.name == "qwen2.5-vl":
        text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
        vision = dict(depth=size.vision_layers, hidden_size=vh, intermediate_size=2 * vh, num_heads=vh // 16,
                      out_hidden_size=size.hidden_size, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2, window_size=56, fullatt_block_indexes=[size.vision_layers - 1])
    else:  # qwen3-vl
        text["head_dim"] = 16
        text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True,
                                   "rope_theta": 10000.0}
        grid = size.image_size // 16
        vision = dict(depth=size.vision_layers, hidden_size=vh, intermediate_size=2 * vh, num_heads=vh // 16,
                      out_hidden_size=size.hidden_size, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                      num_position_embeddings=grid * grid, deepstack_visual_indexes=[0])
    cls = getattr(transformers, family.config_class)
    return cls(text_config=text, vision_config=vision, image_token_id=img, video_token_id=vid,
               vision_start_token_id=vs, vision_end_token_id=ve, tie_word_embeddings=False)


def _llava_config(family: Family, size: TinySize, vocab: int, tok):
    import transformers

    img, vid = _ids(tok, "<image>", "<video>")
    text = _text_common(size, vocab, tok, family)
    vh = size.vision_hidden_size
    vision = dict(hidden_size=vh, intermediate_size=2 * vh, num_hidden_layers=size.vision_layers,
                  num_attention_heads=vh // 16, image_size=size.image_size, patch_size=14)
    if family.name == "llava-onevision":
        text["model_type"] = "qwen2"
        vision["model_type"] = "siglip_vision_model"
        s = size.image_size
        return transformers.LlavaOnevisionConfig(
            text_config=text, vision_config=vision, image_token_index=img, video_token_index=vid,
            vision_feature_layer=-1, vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9",
            image_grid_pinpoints=[[s, s]], tie_word_embeddings=False)
    text["model_type"] = "llama"
    vision["model_type"] = "clip_vision_model"
    vision["projection_dim"] = vh
    s = size.image_size
    return transformers.LlavaNextVideoConfig(
        text_config=text, vision_config=vision, image_token_index=img, video_token_index=vid,
        vision_feature_layer=-1, vision_feature_select_strategy="default", image_grid_pinpoints=[[s, s]],
        spatial_pool_stride=2, spatial_pool_mode="average", tie_word_embeddings=False)


def _smolvlm_config(family: Family, size: TinySize, vocab: int, tok):
    import transformers

    (img,) = _ids(tok, "<image>")
    text = _text_common(size, vocab, tok, family)
    text["model_type"] = "llama"
    vh = size.vision_hidden_size
    vision = dict(hidden_size=vh, intermediate_size=2 * vh, num_hidden_layers=size.vision_layers,
                  num_attention_heads=vh // 16, image_size=size.image_size, patch_size=14)
    return transformers.SmolVLMConfig(text_config=text, vision_config=vision, image_token_id=img, scale_factor=2,
                                      tie_word_embeddings=False, pad_token_id=tok.pad_token_id)


# --- processors ---------------------------------------------------------------------------------

def _qwen_processor(family: Family, size: TinySize, tok):
    import transformers

    s = size.image_size
    patch = 16 if family.name == "qwen3-vl" else 14
    if family.name == "qwen3-vl":
        from transformers import Qwen2VLImageProcessor, Qwen3VLVideoProcessor

        image = Qwen2VLImageProcessor(size={"shortest_edge": s * s, "longest_edge": s * s}, patch_size=patch,
                                      temporal_patch_size=2, merge_size=2,
                                      image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
        video = Qwen3VLVideoProcessor(size={"shortest_edge": s * s, "longest_edge": s * s * size.num_frames},
                                      patch_size=patch, temporal_patch_size=2, merge_size=2,
                                      image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
                                      do_sample_frames=False, fps=2, min_frames=2, max_frames=size.num_frames,
                                      cap_pixels_per_frame=False)
    else:
        from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        image = Qwen2VLImageProcessor(min_pixels=s * s, max_pixels=s * s, patch_size=patch, temporal_patch_size=2,
                                      merge_size=2)
        video = Qwen2VLVideoProcessor(min_pixels=s * s, max_pixels=s * s, patch_size=patch, temporal_patch_size=2,
                                      merge_size=2, do_sample_frames=False,
                                      cap_pixels_per_frame=False)
    cls = getattr(transformers, family.processor_class)
    return cls(image_processor=image, video_processor=video, tokenizer=tok, chat_template=family.chat_template)


def _llava_processor(family: Family, size: TinySize, tok, config):
    s = size.image_size
    if family.name == "llava-onevision":
        from transformers import (LlavaOnevisionImageProcessor, LlavaOnevisionProcessor,
                                  LlavaOnevisionVideoProcessor)

        image = LlavaOnevisionImageProcessor(size={"height": s, "width": s}, image_grid_pinpoints=[[s, s]],
                                             do_pad=True)
        video = LlavaOnevisionVideoProcessor(size={"height": s, "width": s}, do_sample_frames=False)
        n_patches = (s // 14) ** 2
        return LlavaOnevisionProcessor(image_processor=image, video_processor=video, tokenizer=tok,
                                       chat_template=family.chat_template, num_image_tokens=n_patches,
                                       vision_feature_select_strategy="full", vision_aspect_ratio="anyres_max_9")
    from transformers import LlavaNextImageProcessor, LlavaNextVideoProcessor, LlavaNextVideoVideoProcessor

    image = LlavaNextImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s},
                                    image_grid_pinpoints=[[s, s]])
    video = LlavaNextVideoVideoProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s},
                                         do_sample_frames=False)
    return LlavaNextVideoProcessor(image_processor=image, video_processor=video, tokenizer=tok,
                                   chat_template=family.chat_template, patch_size=14,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1)


def _smolvlm_processor(family: Family, size: TinySize, tok, config):
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    s = size.image_size
    image = SmolVLMImageProcessor(do_resize=True, size={"longest_edge": s}, do_image_splitting=False,
                                  max_image_size={"longest_edge": s}, image_mean=[0.5, 0.5, 0.5],
                                  image_std=[0.5, 0.5, 0.5])
    video = SmolVLMVideoProcessor(size={"longest_edge": s}, max_image_size={"longest_edge": s},
                                  do_sample_frames=False, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    seq_len = ((s // 14) ** 2) // (config.scale_factor ** 2)
    return SmolVLMProcessor(image_processor=image, video_processor=video, tokenizer=tok,
                            chat_template=family.chat_template, image_seq_len=seq_len)


# --- public API -----------------------------------------------------------------------------------

def _size_from(size: TinySize | None, overrides: dict[str, Any]) -> TinySize:
    base = asdict(size or TinySize())
    unknown = set(overrides) - set(base)
    if unknown:
        raise ModelError(f"unknown tiny model size option(s) {sorted(unknown)}; known: {sorted(base)}")
    base.update({k: v for k, v in overrides.items() if v is not None})
    out = TinySize(**base)
    out.validate()
    return out


def _default_image_size(family: Family, size: TinySize) -> TinySize:
    # Qwen3-VL patches are 16 px (merged to 32 px); the others use 14 px patches (28 px merged).
    if family.name == "qwen3-vl" and size.image_size % 32:
        return TinySize(**{**asdict(size), "image_size": max(32, 32 * round(size.image_size / 32))})
    if family.name != "qwen3-vl" and size.image_size % 28:
        return TinySize(**{**asdict(size), "image_size": max(28, 28 * round(size.image_size / 28))})
    return size


def tiny_size(family: str, size: TinySize | None = None, **overrides: Any) -> TinySize:
    """The validated size a tiny model of ``family`` gets (image size rounded to the family's grid)."""
    return _default_image_size(get_family(family), _size_from(size, overrides))


def build_tiny_model(family: str, out_dir: str | os.PathLike, *, seed: int = 0, size: TinySize | None = None,
                     overwrite: bool = False, **size_overrides: Any) -> Path:
    """Write a tiny random model of ``family`` (weights, config, tokenizer, processor) to ``out_dir``.

    Size knobs (``hidden_size``, ``num_layers``, ``image_size``, ``num_frames``, ...) come from
    ``size`` and/or keyword overrides (see :class:`TinySize`). If ``out_dir`` already holds the
    same tiny model it is reused unless ``overwrite``. Returns ``out_dir``.
    """
    import torch

    fam = get_family(family)
    sz = tiny_size(fam.name, size, **size_overrides)
    out = Path(out_dir)
    spec = {"format": TINY_FORMAT_VERSION, "family": fam.name, "seed": seed, "size": asdict(sz)}
    marker = out / _MARKER
    if marker.is_file() and not overwrite:
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == spec:
                return out
        except ValueError:
            pass
    building = out / _BUILDING
    ours = marker.is_file() or building.is_file()  # a finished or an interrupted tiny build
    if out.exists() and any(p.name != ".stepkit.lock" for p in out.iterdir()) and not ours and not overwrite:
        raise ModelError(f"{out} exists and is not a stepkit tiny model; pick an empty folder or pass overwrite=True")

    tok = build_tokenizer(fam, vocab_size=sz.vocab_size, seed=0)
    vocab = len(tok)
    builders = {"qwen2-vl": _qwen_config, "qwen2.5-vl": _qwen_config, "qwen3-vl": _qwen_config,
                "llava-onevision": _llava_config, "llava-next-video": _llava_config, "smolvlm2": _smolvlm_config}
    config = builders[fam.name](fam, sz, vocab, tok)
    if fam.name.startswith("qwen"):
        processor = _qwen_processor(fam, sz, tok)
    elif fam.name.startswith("llava"):
        processor = _llava_processor(fam, sz, tok, config)
    else:
        processor = _smolvlm_processor(fam, sz, tok, config)

    import transformers

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = getattr(transformers, fam.model_class)(config)
    finally:
        torch.random.set_rng_state(state)
    model.eval()
    gen = model.generation_config
    gen.eos_token_id = tok.convert_tokens_to_ids(fam.eos_token)
    gen.pad_token_id = tok.pad_token_id
    gen.bos_token_id = config.get_text_config().bos_token_id
    gen.do_sample = False
    gen.temperature = None
    gen.top_p = None
    gen.top_k = None

    if ours:  # a different or unfinished tiny model: start clean so no stale file survives
        import shutil

        for old in out.iterdir():  # all but the lock this run holds on the folder (stepkit.locks)
            if old.name != ".stepkit.lock":
                shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    out.mkdir(parents=True, exist_ok=True)
    building.write_text("a stepkit tiny model is being written here\n", encoding="utf-8")
    marker.unlink(missing_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    from stepkit.io import atomic_write_json

    atomic_write_json(marker, spec)  # written last: its presence means the folder is complete
    building.unlink()
    return out


def tiny_cache_dir() -> Path:
    """Where cached tiny models live: ``$STEPKIT_CACHE/tiny`` or ``~/.cache/stepkit/tiny``."""
    root = os.environ.get("STEPKIT_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                           os.path.expanduser("~/.cache"), "stepkit")
    return Path(root) / "tiny"


def tiny_model_path(family: str, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
                    size: TinySize | None = None, **size_overrides: Any) -> Path:
    """Build (once) and return the cached tiny model for (family, seed, size)."""
    fam = get_family(family)
    sz = tiny_size(fam.name, size, **size_overrides)
    key = hashlib.sha256(json.dumps({"v": TINY_FORMAT_VERSION, "size": asdict(sz)}, sort_keys=True).encode())
    root = Path(cache_dir) if cache_dir is not None else tiny_cache_dir()
    target = root / f"{fam.name}-s{seed}-{key.hexdigest()[:10]}"
    if (target / _MARKER).is_file():
        return target
    # Build beside the target and rename, so concurrent builders never see a half-written folder.
    import shutil
    import tempfile

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        build_tiny_model(fam.name, tmp, seed=seed, size=sz)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race
            if not (target / _MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
