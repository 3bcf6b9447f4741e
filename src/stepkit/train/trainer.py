"""STEP's dual-objective fine-tuning on the transformers ``Trainer``: loss terms, checkpoints, resume."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError, DataError, ModelError
from stepkit.train.config import (
    CONFIG_FILE,
    MANIFEST_FILE,
    SESSION_FIELDS,
    StepTrainConfig,
)

LOSS_LOG = "loss_log.jsonl"
SUMMARY = "summary.json"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


# --- data manifest ----------------------------------------------------------------------------

def qa_file(qa: str | os.PathLike) -> Path:
    """The ``qa.jsonl`` of a Q/R/A folder (or the file itself)."""
    p = Path(qa)
    p = p / "qa.jsonl" if p.is_dir() else p
    if not p.is_file():
        raise DataError(f"{qa}: no Q/R/A file (expected a folder holding qa.jsonl, or a .jsonl file)")
    return p


def data_manifest(qa: str | os.PathLike, records: list, specs: list) -> dict[str, Any]:
    """What a run trained on: the Q/R/A file, its SHA-256, record and sample counts."""
    from stepkit.io import sha256_file

    f = qa_file(qa)
    kinds: dict[str, int] = {}
    for s in specs:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    return {"qa_file": str(f.resolve()), "qa_sha256": sha256_file(f), "records": len(records),
            "samples": len(specs), "samples_by_kind": kinds,
            "records_without_rationale": sum(1 for r in records if not r.rationale_text.strip())}


# --- checkpoints ------------------------------------------------------------------------------

def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The highest-step ``checkpoint-N`` folder of ``out`` that holds a complete trainer state."""
    out = Path(out)
    if not out.is_dir():
        return None
    found = []
    for p in out.iterdir():
        m = _CKPT.match(p.name)
        # data_manifest.json is written last (on_save, after Trainer's files): without it the folder
        # is a checkpoint a kill cut short, which a rerun overwrites rather than resumes from.
        if m and p.is_dir() and (p / "trainer_state.json").is_file() and (p / MANIFEST_FILE).is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def append_loss_log(out: str | os.PathLike, state: Any, logs: dict[str, Any]) -> None:
    """One ``loss_log.jsonl`` line: step, epoch, a UTC timestamp and the logged figures."""
    from datetime import datetime, timezone

    row = {"step": state.global_step, "epoch": state.epoch,
           "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **logs}
    with open(Path(out) / LOSS_LOG, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")


def checkpoint_to_resume(out: Path, resume: bool) -> Path | None:
    """The checkpoint a run starts from: the latest with ``resume``; an error if there is none to
    resume, or if a fresh run would write over checkpoints."""
    ckpt = latest_checkpoint(out)
    if resume and ckpt is None:
        raise ConfigError(f"{out}: nothing to resume (no checkpoint-N folder with a trainer_state.json)")
    if not resume and ckpt is not None:
        raise ConfigError(f"{out} already holds checkpoints; pass --resume to continue, or pick a new folder")
    return ckpt if resume else None


def resume_config(out: str | os.PathLike, overrides: dict[str, Any] | None = None) -> tuple[StepTrainConfig, Path]:
    """The config of the run in ``out`` (read from its latest checkpoint) and that checkpoint.

    Only session fields (``stop_after_steps``, ``max_steps``, ``epochs``, save / log cadence) may be
    overridden; any other override that differs raises :class:`ConfigError`.
    """
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        raise ConfigError(f"{out}: nothing to resume (no checkpoint-N folder with a trainer_state.json)")
    src = ckpt / CONFIG_FILE if (ckpt / CONFIG_FILE).is_file() else Path(out) / CONFIG_FILE
    cfg = StepTrainConfig.load(src)
    d = cfg.to_dict()
    d["stop_after_steps"] = None  # a pause applies to the invocation that asked for it
    for k, v in (overrides or {}).items():
        if v is None or k in ("out",):
            continue
        if k in SESSION_FIELDS:
            d[k] = v
        elif k in d and d[k] != v and not (k in ("qa", "model") and Path(str(v)).resolve() == Path(str(d[k])).resolve()):
            raise ConfigError(f"--resume: option {k}={v!r} differs from the run's {k}={d[k]!r} (from {src}); "
                              "only session options (max_steps, epochs, stop_after_steps, save/log cadence) may change")
    d["out"] = str(out)
    return StepTrainConfig.from_dict(d).validate(), ckpt


# --- model loading ----------------------------------------------------------------------------

def _family(cfg: StepTrainConfig):
    from stepkit.models.families import family_of_checkpoint, get_family

    if cfg.family:
        return get_family(cfg.family)
    fam = family_of_checkpoint(cfg.model)
    if fam is None:
        raise ModelError(f"{cfg.model}: cannot tell the model family from config.json; pass --family")
    return fam


def _dtype(cfg: StepTrainConfig):
    import torch

    if cfg.precision == "bf16" or (cfg.precision == "auto" and torch.cuda.is_available()
                                   and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, "bf16"
    if cfg.precision == "fp16":
        return torch.float32, "fp16"  # weights in fp32, autocast to fp16
    return torch.float32, "fp32"


def lora_target_regex(family, modules: list[str] | tuple[str, ...]) -> str:
    """A peft ``target_modules`` regex: the given module names, outside the vision tower / projector."""
    names = "|".join(re.escape(m) for m in modules)
    if not family.vision_prefixes:
        return rf"^.*\.(?:{names})$"
    excl = "|".join(re.escape(p) for p in family.vision_prefixes)
    return rf"^(?!(?:{excl})).*\.(?:{names})$"


def load_model(cfg: StepTrainConfig):
    """(model ready for training, processor, family) per the config: dtype, freezing, LoRA."""
    import torch
    import transformers
    from transformers import AutoProcessor

    fam = _family(cfg)
    if not (Path(cfg.model).is_dir() or "/" in cfg.model):
        raise ModelError(f"{cfg.model}: not a model directory")
    dtype, _ = _dtype(cfg)
    kw: dict[str, Any] = {"dtype": dtype}
    if cfg.attn_implementation:
        kw["attn_implementation"] = cfg.attn_implementation
    try:
        processor = AutoProcessor.from_pretrained(cfg.model)
        model = getattr(transformers, fam.model_class).from_pretrained(cfg.model, **kw)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{cfg.model}: cannot load a {fam.name} model ({exc})") from None
    model.config.use_cache = False
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(cfg.seed)
        targets = cfg.lora_target_modules or list(fam.lora_target_modules)
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=lora_target_regex(fam, targets), bias="none")
        model = get_peft_model(model, lcfg)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
    elif cfg.freeze_vision:
        for name, p in model.named_parameters():
            if name.startswith(fam.vision_prefixes):
                p.requires_grad_(False)
    return model, processor, fam


def load_trained(path: str | os.PathLike, *, merged: bool = False):
    """(model, processor) of a finished run's output folder: full weights, or base + LoRA adapter.

    With ``merged`` an adapter is merged into the base weights.
    """
    import transformers
    from transformers import AutoProcessor

    path = Path(path)
    cfg_file = path / CONFIG_FILE
    cfg = StepTrainConfig.load(cfg_file) if cfg_file.is_file() else None
    processor = AutoProcessor.from_pretrained(path)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        if cfg is None:
            raise ConfigError(f"{path}: LoRA adapter without {CONFIG_FILE}; cannot find its base model")
        fam = _family(cfg)
        base = getattr(transformers, fam.model_class).from_pretrained(cfg.model)
        model = PeftModel.from_pretrained(base, path)
        if merged:
            model = model.merge_and_unload()
    else:
        from stepkit.models.families import family_of_checkpoint

        fam = family_of_checkpoint(path)
        if fam is None:
            raise ModelError(f"{path}: no trained model here (no config.json of a known family)")
        model = getattr(transformers, fam.model_class).from_pretrained(path)
    model.eval()
    return model, processor


# --- the trainer ------------------------------------------------------------------------------

def _trainer_classes():
    """Build the Trainer subclass and callbacks (imports transformers lazily)."""
    import torch
    from transformers import Trainer, TrainerCallback

    from stepkit.train.loss import model_dual_loss

    class StepTrainer(Trainer):
        """Trainer whose loss is L_answer + λ·L_rationale; logs both terms into the log history."""

        def __init__(self, *args: Any, lambda_rationale: float = 1.0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.lambda_rationale = float(lambda_rationale)
            self.model_accepts_loss_kwargs = False
            self.loss_is_scaled_for_ga = False  # a per-micro-batch mean: the Trainer divides by GA steps
            self._terms = torch.zeros(4, dtype=torch.float64)  # Σ answer, #batches, Σ rationale, #batches

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            kinds = inputs.pop("label_kinds")
            inputs.pop("sample_kind", None)
            # The LM head runs on supervised positions only (same loss, a fraction of the memory);
            # a caller that wants the outputs (evaluation) gets logits at every position.
            d, outputs = model_dual_loss(model, inputs, labels, kinds, self.lambda_rationale,
                                         supervised_only=not return_outputs)
            if model.training:
                if d.n_answer:
                    self._terms[0] += float(d.answer)
                    self._terms[1] += 1
                if d.n_rationale:
                    self._terms[2] += float(d.rationale)
                    self._terms[3] += 1
            return (d.loss, outputs) if return_outputs else d.loss

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            # Trainer loads model.safetensors with load_state_dict, but Video-LLMs save their weights
            # under converted names (e.g. ``visual.*`` for ``model.visual.*``) that only from_pretrained
            # maps back; load full checkpoints through from_pretrained so every weight is restored.
            target = model if model is not None else self.model
            ckpt = Path(resume_from_checkpoint)
            if (ckpt / "adapter_config.json").is_file() or not (ckpt / "config.json").is_file() \
                    or self.is_deepspeed_enabled or self.is_fsdp_enabled:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            unwrapped = self.accelerator.unwrap_model(target)
            dtype = next(unwrapped.parameters()).dtype
            fresh = type(unwrapped).from_pretrained(str(ckpt), dtype=dtype)
            missing, unexpected = unwrapped.load_state_dict(fresh.state_dict(), strict=False)
            if missing or unexpected:
                raise ModelError(f"{ckpt}: checkpoint weights do not match the model (missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]})")
            del fresh

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs:
                t = self._terms.to(self.args.device)
                if self.args.world_size > 1:
                    t = self.accelerator.reduce(t, reduction="sum")
                t = t.cpu()
                if t[1] > 0:
                    logs["loss_answer"] = round(float(t[0] / t[1]), 6)
                if t[3] > 0:
                    logs["loss_rationale"] = round(float(t[2] / t[3]), 6)
                # λ as applied: it weighted nothing in a window without rationale tokens
                logs["lambda_rationale"] = self.lambda_rationale if t[3] > 0 else 0.0
                self._terms.zero_()
            super().log(logs, start_time)

    class RunFilesCallback(TrainerCallback):
        """Puts the run config and data manifest in every checkpoint; appends to the loss log."""

        def __init__(self, cfg: StepTrainConfig, manifest: dict[str, Any]) -> None:
            self.cfg, self.manifest = cfg, manifest

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                from stepkit.io import atomic_write_json

                ck = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if ck.is_dir():
                    atomic_write_json(ck / CONFIG_FILE, self.cfg.to_dict())
                    atomic_write_json(ck / MANIFEST_FILE, self.manifest)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                append_loss_log(args.output_dir, state, logs)
            return control

    class StopAfterCallback(TrainerCallback):
        """Ends this invocation (with a checkpoint) once ``global_step`` reaches a step."""

        def __init__(self, step: int) -> None:
            self.step = step

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= self.step:
                control.should_save = True
                control.should_training_stop = True
            return control

    class ProgressCallback(TrainerCallback):
        """A rich progress bar with the latest loss terms (main process only)."""

        def __init__(self) -> None:
            self.bar = None
            self.task = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                from stepkit.cli_common import progress

                self.bar = progress()
                self.bar.start()
                self.task = self.bar.add_task("train", total=state.max_steps, completed=state.global_step)
            return control

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is not None and logs and "loss" in logs:
                desc = f"train loss {logs['loss']:.4f}"
                if "loss_answer" in logs:
                    desc += f" ans {logs['loss_answer']:.4f}"
                if "loss_rationale" in logs:
                    desc += f" rat {logs['loss_rationale']:.4f}"
                self.bar.update(self.task, description=desc)
            return control

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.stop()
                self.bar = None
            return control

    return StepTrainer, RunFilesCallback, StopAfterCallback, ProgressCallback


def training_arguments(cfg: StepTrainConfig, *, n_samples: int):
    """The transformers ``TrainingArguments`` of a run (preset overrides included)."""
    import torch
    from transformers import TrainingArguments

    from stepkit.train.presets import preset_training_args

    _, prec = _dtype(cfg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    kw: dict[str, Any] = dict(
        output_dir=cfg.out, per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, learning_rate=cfg.lr(),
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, lr_scheduler_type=cfg.lr_scheduler,
        max_grad_norm=cfg.max_grad_norm, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        logging_steps=cfg.logging_steps, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        remove_unused_columns=False, dataloader_num_workers=cfg.dataloader_num_workers, disable_tqdm=True,
        bf16=prec == "bf16", fp16=prec == "fp16", use_cpu=not torch.cuda.is_available(),
        label_names=["labels"],
    )
    ckpt_name = ("activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
                 else "gradient_checkpointing")  # renamed in transformers 5
    if cfg.gradient_checkpointing:
        kw[ckpt_name] = True
        kw[f"{ckpt_name}_kwargs"] = {"use_reentrant": False}
    if world > 1:
        kw["ddp_find_unused_parameters"] = True
        if not torch.cuda.is_available():
            kw["ddp_backend"] = "gloo"
    if cfg.preset:
        kw.update(preset_training_args(cfg.preset))
    return TrainingArguments(**kw)


@dataclass
class TrainResult:
    """What :func:`train` did."""

    out: Path
    global_step: int
    max_steps: int
    finished: bool
    seconds: float
    manifest: dict[str, Any] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)
    trainer: Any = None


def train(cfg: StepTrainConfig, *, resume: bool = False, extra_callbacks: list | None = None) -> TrainResult:
    """Fine-tune ``cfg.model`` on the Q/R/A records of ``cfg.qa`` with the dual objective.

    With ``resume`` the run continues from the latest checkpoint in ``cfg.out`` (call
    :func:`resume_config` first to get that run's config). Returns a :class:`TrainResult`; the model
    (or LoRA adapter), processor, config, manifest, loss log and summary land in ``cfg.out``.
    """
    import torch
    from transformers import set_seed

    from stepkit.data.record import load_records
    from stepkit.io import atomic_write_json
    from stepkit.train.collate import (
        DataCollator,
        QRADataset,
        VideoChatEncoder,
        build_specs,
    )

    cfg.validate()
    t_start = time.time()
    out = Path(cfg.out)
    ckpt = checkpoint_to_resume(out, resume)
    records = load_records(qa_file(cfg.qa))
    if not records:
        raise DataError(f"{cfg.qa}: no Q/R/A records")
    specs = build_specs(records, cfg.samples, cfg.rationale_with_answer)
    manifest = data_manifest(cfg.qa, records, specs)
    if ckpt is not None and (ckpt / MANIFEST_FILE).is_file():
        old = json.loads((ckpt / MANIFEST_FILE).read_text(encoding="utf-8"))
        if old.get("qa_sha256") != manifest["qa_sha256"]:
            raise DataError(f"{qa_file(cfg.qa)}: changed since {ckpt} was written (SHA-256 differs); "
                            "resume needs the same Q/R/A data")
    done_step = _reached_max_steps(ckpt, cfg)
    if done_step is not None and _finished_at(out, done_step):  # a finished run: resume is a no-op
        return TrainResult(out=out, global_step=done_step, max_steps=done_step, finished=True,
                           seconds=time.time() - t_start, manifest=manifest)
    set_seed(cfg.seed)
    model, processor, fam = load_model(cfg)
    encoder = VideoChatEncoder.from_config(processor, fam, cfg)
    dataset = QRADataset(specs, encoder)
    tok = getattr(processor, "tokenizer", processor)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    args = training_arguments(cfg, n_samples=len(specs))
    StepTrainer, RunFilesCallback, StopAfterCallback, ProgressCallback = _trainer_classes()
    callbacks: list = [RunFilesCallback(cfg, manifest)]
    if cfg.stop_after_steps:
        callbacks.append(StopAfterCallback(cfg.stop_after_steps))
    if cfg.progress:
        callbacks.append(ProgressCallback())
    callbacks += extra_callbacks or []
    trainer = StepTrainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollator(pad),
                          processing_class=processor, callbacks=callbacks, lambda_rationale=cfg.lambda_rationale)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the loss log and the progress bar report instead
    main = trainer.is_world_process_zero()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / CONFIG_FILE, cfg.to_dict())
        atomic_write_json(out / MANIFEST_FILE, manifest)
        _trim_loss_log(out, int(_CKPT.match(ckpt.name).group(1)) if ckpt is not None else 0)
    if done_step is not None:  # killed after its last checkpoint: finish from it, no extra step
        from transformers import TrainerState

        trainer._load_from_checkpoint(str(ckpt))
        trainer.state = TrainerState.load_from_json(str(ckpt / "trainer_state.json"))
    else:
        try:
            trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
        except Exception as exc:
            bad = _unloadable_checkpoint_file(exc) if ckpt is not None else None
            if bad is None:
                raise
            raise ModelError(f"{ckpt / bad}: not a plain PyTorch state (tensors and numbers); refused to "
                             "load it, since unpickling anything else can run code. Delete this checkpoint "
                             "folder to resume from an earlier one, or start a new run") from None
    state = trainer.state
    finished = state.global_step >= state.max_steps
    if finished:
        trainer.save_model(str(out))  # weights or adapter, plus the processor
        if main:
            trainer.save_state()  # out/trainer_state.json with the log history (answer / rationale terms)
            atomic_write_json(out / CONFIG_FILE, cfg.to_dict())
            if cfg.lora and cfg.save_merged:
                merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
                merged.save_pretrained(out / "merged")
                processor.save_pretrained(out / "merged")
    if main:
        atomic_write_json(out / SUMMARY, {
            "global_step": state.global_step, "max_steps": state.max_steps, "finished": finished,
            "seconds_this_session": round(time.time() - t_start, 3), "manifest": manifest,
            "final_loss": next((h.get("loss") for h in reversed(state.log_history) if "loss" in h), None),
            "final_loss_answer": next((h["loss_answer"] for h in reversed(state.log_history) if "loss_answer" in h),
                                      None),
            "final_loss_rationale": next((h["loss_rationale"] for h in reversed(state.log_history)
                                          if "loss_rationale" in h), None),
            "world_size": args.world_size, "device": str(args.device),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        })
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return TrainResult(out=out, global_step=state.global_step, max_steps=state.max_steps, finished=finished,
                       seconds=time.time() - t_start, manifest=manifest, log_history=list(state.log_history),
                       trainer=trainer)


def _reached_max_steps(ckpt: Path | None, cfg: StepTrainConfig) -> int | None:
    """The checkpoint's step when it already reached the run's last step (else None): Trainer would
    otherwise take one step more on resume."""
    if ckpt is None:
        return None
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        step, last = int(state["global_step"]), int(state.get("max_steps") or 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    target = cfg.max_steps if cfg.max_steps > 0 else last
    return step if target > 0 and step >= target else None


def _unloadable_checkpoint_file(exc: BaseException) -> str | None:
    """Which checkpoint file ``torch.load`` (weights only) refused while Trainer resumed, or None
    when ``exc`` did not come from loading one (a malicious or corrupt ``optimizer.pt``)."""
    names, loaded, tb = [], None, exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        names.append(code.co_name)
        if code.co_name == "load" and code.co_filename.endswith(os.path.join("torch", "serialization.py")):
            loaded = tb.tb_frame.f_locals.get("f")
        tb = tb.tb_next
    if not any(n in names for n in ("_load_optimizer_and_scheduler", "_load_rng_state")):
        return None
    if isinstance(loaded, (str, os.PathLike)):
        return Path(loaded).name
    return "rng_state.pth" if "_load_rng_state" in names else "optimizer.pt or scheduler.pt"


def _finished_at(out: Path, step: int) -> bool:
    """Whether ``out/summary.json`` (written last) records a finished run at ``step``."""
    try:
        s = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
        return bool(s.get("finished")) and int(s.get("global_step", -1)) == step
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def _trim_loss_log(out: Path, step: int) -> None:
    """Keep only loss-log lines up to ``step`` (a resumed run rewrites what came after)."""
    from stepkit.io import atomic_write_text

    p = out / LOSS_LOG
    if not p.is_file():
        return
    keep = [ln for ln in p.read_text(encoding="utf-8").splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(p, "".join(ln + "\n" for ln in keep))
