"""The supported Video-LLM families: classes, LoRA targets, vision tower, video input path, chat template.

Everything here is plain data (class *names*, not classes) so importing it never imports torch or
transformers. :func:`get_family` picks an entry by name; :func:`family_of_config` recognises the
family of a saved checkpoint from its ``config.json`` ``model_type``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from stepkit.errors import ModelError

# --- chat templates ---------------------------------------------------------------------------
# Modelled on the templates the released checkpoints ship, extended so that (a) ``content`` may be
# a plain string or a list of typed parts and (b) assistant text sits inside
# ``{% generation %}`` so ``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks the
# tokens a trainer should supervise. Every template renders an assistant turn as exactly the
# generation prompt followed by the answer and the end-of-turn token, so training sequences and
# log-likelihood scoring see the same prefix as generation.

QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ message['content'] }}<|im_end|>{% endif %}{{ '\\n' }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ content['text'] }}{% endgeneration %}"
    "{% else %}{{ content['text'] }}{% endif %}"
    "{% endif %}{% endfor %}"
    "{% if message['role'] == 'assistant' %}{% generation %}<|im_end|>{% endgeneration %}{% else %}<|im_end|>{% endif %}{{ '\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen3-VL: no default system prompt; otherwise the same ChatML layout.
QWEN3_VL_TEMPLATE = QWEN2_VL_TEMPLATE.replace(
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}",
    "",
)

_LLAVA_PARTS = (
    "{% if message['content'] is string %}{% set parts = [{'type': 'text', 'text': message['content']}] %}"
    "{% else %}{% set parts = message['content'] %}{% endif %}"
)

LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}" + _LLAVA_PARTS
    + "{% if message['role'] != 'assistant' %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in parts | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in parts | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in parts | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{{ '<|im_end|>' }}"
    "{% else %}{{ '<|im_start|>assistant\n' }}{% generation %}"
    "{% for content in parts | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ '<|im_end|>' }}{% endgeneration %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAVA_NEXT_VIDEO_TEMPLATE = (
    "{% for message in messages %}" + _LLAVA_PARTS
    + "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in parts | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in parts | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in parts | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}{% generation %}"
    "{% for content in parts | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ '</s>' }}{% endgeneration %}{{ ' ' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

SMOLVLM2_TEMPLATE = (
    "<|im_start|>{% for message in messages %}" + _LLAVA_PARTS
    + "{{ message['role'] | capitalize }}"
    "{% if parts[0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{% for line in parts %}{% if line['type'] == 'text' %}{{ line['text'] }}{% endif %}{% endfor %}"
    "<end_of_utterance>{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{% for line in parts %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

_QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]


@dataclass(frozen=True)
class Family:
    """One Video-LLM family and everything stepkit needs to build, load, prompt and fine-tune it.

    ``video_input`` is ``"videos"`` when the processor takes ``videos=`` (a clip is one video) or
    ``"frames"`` when a clip is given as a sequence of images (SmolVLM here: its video path needs
    the ``num2words`` package and per-video metadata). ``vision_prefixes`` are module-name
    prefixes (as in ``model.named_parameters()``) of the vision tower and projector, for freezing.
    """

    name: str
    model_class: str
    processor_class: str
    config_class: str
    model_types: tuple[str, ...]
    lora_target_modules: tuple[str, ...]
    vision_prefixes: tuple[str, ...]
    video_input: str
    chat_template: str
    special_tokens: tuple[str, ...]
    eos_token: str
    pad_token: str
    bos_token: str | None = None
    unk_token: str | None = None
    language_prefix: str = "model.language_model."
    example_checkpoints: tuple[str, ...] = ()
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def lora_target_regex(self) -> str:
        """A peft ``target_modules`` regex for the LoRA targets inside the language model only
        (SigLIP / CLIP vision towers also have ``q_proj`` ... modules that plain names would hit)."""
        prefix = self.language_prefix.replace(".", r"\.")
        return rf"^{prefix}.*\.({'|'.join(self.lora_target_modules)})$"

    def summary(self) -> dict:
        """A JSON-friendly description (for ``stepkit models list``)."""
        return {"name": self.name, "model_class": self.model_class, "processor_class": self.processor_class,
                "video_input": self.video_input, "lora_target_modules": list(self.lora_target_modules),
                "vision_prefixes": list(self.vision_prefixes), "language_prefix": self.language_prefix,
                "example_checkpoints": list(self.example_checkpoints)}


_LORA_LLM = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

FAMILIES: dict[str, Family] = {
    "qwen2-vl": Family(
        name="qwen2-vl", model_class="Qwen2VLForConditionalGeneration", processor_class="Qwen2VLProcessor",
        config_class="Qwen2VLConfig", model_types=("qwen2_vl",), lora_target_modules=_LORA_LLM,
        vision_prefixes=("model.visual.",), video_input="videos", chat_template=QWEN2_VL_TEMPLATE,
        special_tokens=tuple(_QWEN_SPECIAL), eos_token="<|im_end|>", pad_token="<|endoftext|>",
        example_checkpoints=("Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-7B-Instruct"),
    ),
    "qwen2.5-vl": Family(
        name="qwen2.5-vl", model_class="Qwen2_5_VLForConditionalGeneration", processor_class="Qwen2_5_VLProcessor",
        config_class="Qwen2_5_VLConfig", model_types=("qwen2_5_vl",), lora_target_modules=_LORA_LLM,
        vision_prefixes=("model.visual.",), video_input="videos", chat_template=QWEN2_VL_TEMPLATE,
        special_tokens=tuple(_QWEN_SPECIAL), eos_token="<|im_end|>", pad_token="<|endoftext|>",
        example_checkpoints=("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ),
    "qwen3-vl": Family(
        name="qwen3-vl", model_class="Qwen3VLForConditionalGeneration", processor_class="Qwen3VLProcessor",
        config_class="Qwen3VLConfig", model_types=("qwen3_vl",), lora_target_modules=_LORA_LLM,
        vision_prefixes=("model.visual.",), video_input="videos", chat_template=QWEN3_VL_TEMPLATE,
        special_tokens=tuple(_QWEN_SPECIAL), eos_token="<|im_end|>", pad_token="<|endoftext|>",
        example_checkpoints=("Qwen/Qwen3-VL-2B-Instruct", "Qwen/Qwen3-VL-8B-Instruct"),
        notes="the processor writes a timestamp before each temporal patch of a video",
    ),
    "llava-onevision": Family(
        name="llava-onevision", model_class="LlavaOnevisionForConditionalGeneration",
        processor_class="LlavaOnevisionProcessor", config_class="LlavaOnevisionConfig",
        model_types=("llava_onevision",), lora_target_modules=_LORA_LLM,
        vision_prefixes=("model.vision_tower.", "model.multi_modal_projector."), video_input="videos",
        chat_template=LLAVA_ONEVISION_TEMPLATE,
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"),
        eos_token="<|im_end|>", pad_token="<|endoftext|>",
        example_checkpoints=("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "llava-hf/llava-onevision-qwen2-7b-ov-hf"),
    ),
    "llava-next-video": Family(
        name="llava-next-video", model_class="LlavaNextVideoForConditionalGeneration",
        processor_class="LlavaNextVideoProcessor", config_class="LlavaNextVideoConfig",
        model_types=("llava_next_video",), lora_target_modules=_LORA_LLM,
        vision_prefixes=("model.vision_tower.", "model.multi_modal_projector."),
        video_input="videos", chat_template=LLAVA_NEXT_VIDEO_TEMPLATE,
        special_tokens=("<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>"),
        eos_token="</s>", pad_token="<pad>", bos_token="<s>", unk_token="<unk>",
        example_checkpoints=("llava-hf/LLaVA-NeXT-Video-7B-hf",),
    ),
    "smolvlm2": Family(
        name="smolvlm2", model_class="SmolVLMForConditionalGeneration", processor_class="SmolVLMProcessor",
        config_class="SmolVLMConfig", model_types=("smolvlm", "idefics3"), lora_target_modules=_LORA_LLM,
        vision_prefixes=("model.vision_model.", "model.connector."), video_input="frames",
        language_prefix="model.text_model.",
        chat_template=SMOLVLM2_TEMPLATE,
        special_tokens=("<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<video>",
                        "<fake_token_around_image>", "<global-img>")
        + tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
        eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
        example_checkpoints=("HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "HuggingFaceTB/SmolVLM2-2.2B-Instruct"),
        notes="video clips go in as a sequence of images (one <image> per frame)",
    ),
}


def family_names() -> list[str]:
    """Names of the supported families."""
    return list(FAMILIES)


def get_family(name: str) -> Family:
    """The family called ``name``; ModelError listing the known ones otherwise."""
    key = name.strip().lower().replace("_", "-")
    aliases = {"qwen25-vl": "qwen2.5-vl", "qwen2_5-vl": "qwen2.5-vl", "smolvlm": "smolvlm2", "idefics3": "smolvlm2"}
    key = aliases.get(key, key)
    if key not in FAMILIES:
        raise ModelError(f"unknown model family {name!r}; known families: {', '.join(FAMILIES)}")
    return FAMILIES[key]


def family_of_model_type(model_type: str) -> Family | None:
    """The family whose checkpoints carry ``model_type`` in config.json, if any."""
    for fam in FAMILIES.values():
        if model_type in fam.model_types:
            return fam
    return None


def family_of_checkpoint(path: str | os.PathLike) -> Family | None:
    """The family of a local checkpoint directory (from its config.json), or None if unknown."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return None
    from stepkit.userfiles import load_json

    # A corrupt config.json is named as such, not reported as an unknown family.
    doc = load_json(cfg, what="model config (config.json)", error=ModelError, expect=dict)
    return family_of_model_type(str(doc.get("model_type", "")))
