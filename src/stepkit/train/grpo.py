"""GRPO with graph-verified rewards on the transformers ``Trainer`` (why not TRL's ``GRPOTrainer``:
docs/training.md, "GRPO").

Each micro-batch holds ``per_device_batch_size`` questions. For each question the policy samples
``num_generations`` completions on the record's clip (and, with ``temporal_contrast``, more on the
same frames shuffled); every completion is scored (:mod:`stepkit.train.rewards`): answer correctness
against the record, format, and faithfulness of its rationale against the video's scene graph. The
group-relative advantage of a completion is its reward minus its group's mean (divided by the
group's std), and the loss is the policy-gradient term plus ``beta`` times the per-token k3 estimate
of KL(policy ‖ reference), the reference being the starting model.

Rollouts are seeded from (seed, global step, micro-batch, question), never from the global RNG, so a
run resumed from a checkpoint samples exactly what the uninterrupted run sampled.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError, DataError
from stepkit.train.grpo_config import GRPO_CONFIG_FILE, GRPO_SESSION_FIELDS, StepGRPOConfig
from stepkit.train.rewards import TAGS_INSTRUCTION, CompletionReward, group_advantages, score_completion, temporal_bonus
from stepkit.train.trainer import (LOSS_LOG, MANIFEST_FILE, SUMMARY, TrainResult, append_loss_log,
                                   latest_checkpoint, qa_file)

REWARD_TERMS = ("answer", "format", "faithfulness", "temporal")
# What each log line reports (means over the completions, or groups, since the last log, all ranks).
STAT_KEYS = ("reward", *(f"reward_{t}" for t in REWARD_TERMS), "reward_std", "frac_reward_zero_std", "accuracy",
             "truncated", "completion_length", "kl", "shuffled_accuracy", "faithfulness_errors")
BUCKETS = ("1", "2", "3+")


# --- config and resume ------------------------------------------------------------------------

def resume_grpo_config(out: str | os.PathLike, overrides: dict[str, Any] | None = None
                       ) -> tuple[StepGRPOConfig, Path]:
    """The config of the GRPO run in ``out`` (from its latest checkpoint) and that checkpoint; only
    session fields may be overridden (ConfigError otherwise)."""
    ckpt = latest_checkpoint(out)
    if ckpt is None:
        raise ConfigError(f"{out}: nothing to resume (no checkpoint-N folder with a trainer_state.json)")
    src = ckpt / GRPO_CONFIG_FILE if (ckpt / GRPO_CONFIG_FILE).is_file() else Path(out) / GRPO_CONFIG_FILE
    cfg = StepGRPOConfig.load(src)
    d = cfg.to_dict()
    d["stop_after_steps"] = None  # a pause applies to the invocation that asked for it
    for k, v in (overrides or {}).items():
        if v is None or k == "out":
            continue
        if k in GRPO_SESSION_FIELDS:
            d[k] = v
        elif k in d and d[k] != v and not (k in ("qa", "model", "graphs", "videos_dir")
                                           and Path(str(v)).resolve() == Path(str(d[k])).resolve()):
            raise ConfigError(f"--resume: option {k}={v!r} differs from the run's {k}={d[k]!r} (from {src}); "
                              "only session options (max_steps, epochs, stop_after_steps, save/log cadence) may change")
    d["out"] = str(out)
    return StepGRPOConfig.from_dict(d).validate(), ckpt


def is_grpo_run(out: str | os.PathLike) -> bool:
    """Whether the run folder ``out`` holds a GRPO run (its config file says so)."""
    out = Path(out)
    ckpt = latest_checkpoint(out)
    return (out / GRPO_CONFIG_FILE).is_file() or (ckpt is not None and (ckpt / GRPO_CONFIG_FILE).is_file())


# --- graphs -----------------------------------------------------------------------------------

def graph_folder(cfg: StepGRPOConfig) -> Path:
    """Where the run's scene graphs are looked up: ``graphs``, else ``videos_dir``, else the Q/R/A folder."""
    if cfg.graphs:
        return Path(cfg.graphs)
    if cfg.videos_dir:
        return Path(cfg.videos_dir)
    qa = Path(cfg.qa)
    return qa if qa.is_dir() else qa.parent


def load_record_graphs(cfg: StepGRPOConfig, records: list) -> tuple[dict[str, Any], str]:
    """video_id -> STSG for every record (DataError naming the missing ones) and a SHA-256 over the
    graph files used (so a resume can refuse changed graphs)."""
    from stepkit.errors import GraphError
    from stepkit.graph.serialize import iter_graph_files, load_graph
    from stepkit.io import sha256_file

    folder = graph_folder(cfg)
    want = {r.video_id for r in records}
    found: dict[str, Any] = {}
    digests: dict[str, str] = {}
    try:
        files = list(iter_graph_files(folder))
    except GraphError as exc:
        raise DataError(f"faithfulness reward: {exc} (set graphs= to the folder of the videos' graphs)") from None
    by_name = {p.stem: p for p in files}
    # graph files are usually named after their video: read those first, scan the rest only if needed
    files = [by_name[v] for v in sorted(want) if v in by_name] + [p for p in files if p.stem not in want]
    for p in files:
        if want <= set(found):
            break
        try:
            g = load_graph(p, validate=False)
        except (GraphError, ValueError, KeyError, TypeError):
            continue  # not a scene graph (another JSON file in the folder)
        if g.video_id in want and g.video_id not in found:
            found[g.video_id] = g
            digests[g.video_id] = sha256_file(p)
    missing = sorted(want - set(found))
    if missing:
        raise DataError(f"{folder}: no scene graph for video(s) {', '.join(missing[:5])}"
                        f"{' …' if len(missing) > 5 else ''} (the faithfulness reward needs each record's graph; "
                        "set graphs= or weight_faithfulness=0)")
    h = hashlib.sha256("".join(f"{k}:{digests[k]}\n" for k in sorted(digests)).encode()).hexdigest()
    return found, h


# --- rollouts ---------------------------------------------------------------------------------

def _stable_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") & (2**63 - 1)


def steps_bucket(steps: int) -> str:
    """The evaluator's reasoning-steps bucket of a record: '1', '2' or '3+'."""
    return "3+" if steps >= 3 else str(max(1, int(steps)))


@dataclass
class Rollout:
    """One question's group: completion token ids, whether each stopped at the end token, texts, rewards."""

    ids: list[list[int]]
    finished: list[bool]
    texts: list[str]
    rewards: list[CompletionReward] = field(default_factory=list)


class PromptBuilder:
    """Processor inputs of a record's GRPO prompt (the clip, the question, the format's instruction),
    optionally on its frames shuffled."""

    def __init__(self, encoder: Any, cfg: StepGRPOConfig) -> None:
        self.encoder = encoder
        self.cfg = cfg

    def instruction(self, record: Any) -> str:
        if self.cfg.instruction is not None:
            return self.cfg.instruction
        return TAGS_INSTRUCTION if self.cfg.completion_format == "tags" else record.rationale_instruction

    def text_and_clip(self, record: Any, shuffle_seed: int | None = None) -> tuple[str, Any]:
        """The rendered prompt text (template placeholders unexpanded) and the clip (frames shuffled
        with ``shuffle_seed``)."""
        import dataclasses

        import numpy as np

        from stepkit.train.collate import user_text

        enc = self.encoder
        clip = enc.clip(record)
        if clip is not None and shuffle_seed is not None and len(clip.frames) > 1:
            rng = np.random.default_rng(shuffle_seed)
            perm = rng.permutation(len(clip.frames))
            while np.array_equal(perm, np.arange(len(perm))):  # a shuffle that changes nothing contrasts nothing
                perm = rng.permutation(len(clip.frames))
            clip = dataclasses.replace(clip, frames=clip.frames[perm])
        text = enc._render([enc._user_message(user_text(record, self.instruction(record)), clip)], True)
        return text, clip

    def inputs(self, record: Any, shuffle_seed: int | None = None) -> tuple[dict[str, Any], str, Any]:
        """(processor inputs (batch of one), prompt text, clip)."""
        text, clip = self.text_and_clip(record, shuffle_seed)
        out = dict(self.encoder.processor(text=[text], return_tensors="pt", **self.encoder._visual_kwargs(clip)))
        n = int(out["input_ids"].shape[1])
        if n > self.cfg.max_length:
            raise DataError(f"Q/R/A record {record.id!r}: the GRPO prompt has {n} tokens > max_length "
                            f"{self.cfg.max_length}; use fewer or smaller frames or a larger max_length")
        return out, text, clip


def repeat_inputs(inputs: dict[str, Any], n: int) -> dict[str, Any]:
    """A batch of ``n`` copies of one prompt's processor inputs (vision tensors concatenated, as the
    SFT collator batches samples)."""
    import torch

    out: dict[str, Any] = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            out[k] = torch.cat([v] * n, dim=0)
        elif isinstance(v, list):
            out[k] = v * n
        else:
            out[k] = v
    return out


def _to_device(inputs: dict[str, Any], device: Any) -> dict[str, Any]:
    import torch

    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


def suppressed_tokens(tokenizer: Any, model_config: Any, eos_id: int) -> list[int]:
    """Token ids a rollout must never sample: every special token but the end token, and the model's
    image / video placeholders (a sampled placeholder would not match the vision features in the
    loss's forward pass)."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for cfg in (model_config, getattr(model_config, "text_config", None)):
        for name in ("image_token_id", "video_token_id", "image_token_index", "video_token_index",
                     "vision_start_token_id", "vision_end_token_id"):
            v = getattr(cfg, name, None) if cfg is not None else None
            if isinstance(v, int) and v >= 0:
                ids.add(v)
    ids.discard(eos_id)
    return sorted(ids)


class HFRollouts:
    """Samples completions with the policy's own ``generate``."""

    def __init__(self, cfg: StepGRPOConfig, eos_id: int, pad_id: int, suppress: list[int] | None = None) -> None:
        self.cfg, self.eos_id, self.pad_id = cfg, eos_id, pad_id
        self.suppress = list(suppress or [])

    def sample(self, model: Any, prompt_inputs: dict[str, Any], n: int, seed: int, prompt_text: str = "",
               clip: Any = None) -> tuple[list[list[int]], list[bool]]:
        import torch

        batch = _to_device(repeat_inputs(prompt_inputs, n), model.device)
        plen = batch["input_ids"].shape[1]
        kw: dict[str, Any] = dict(do_sample=True, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                  top_k=self.cfg.top_k, max_new_tokens=self.cfg.max_completion_length,
                                  eos_token_id=self.eos_id, pad_token_id=self.pad_id, use_cache=True)
        if self.suppress:
            kw["suppress_tokens"] = self.suppress
        was_training = model.training
        model.eval()
        devices = [model.device.index or 0] if model.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(seed)
                out = model.generate(**batch, **kw)
        finally:
            model.train(was_training)
        return _cut(out[:, plen:].tolist(), self.eos_id)


def _cut(rows: list[list[int]], eos_id: int) -> tuple[list[list[int]], list[bool]]:
    """Completion ids through the first end token (kept: the policy learns to stop), and whether each stopped."""
    ids, finished = [], []
    for row in rows:
        if eos_id in row:
            ids.append(row[:row.index(eos_id) + 1])
            finished.append(True)
        else:
            ids.append(row)
            finished.append(False)
    return ids, finished


class VLLMRollouts:
    """Samples completions with a colocated vLLM engine that is given the policy's weights before the
    rollouts of every optimizer step (as TRL's colocate mode does). Needs a GPU and ``vllm``."""

    def __init__(self, cfg: StepGRPOConfig, eos_id: int, pad_id: int, family: Any) -> None:
        try:
            from vllm import LLM  # noqa: F401
        except ImportError:
            raise ConfigError("rollout=vllm needs the vllm package (pip install vllm) and a CUDA GPU; "
                              "use rollout=hf on this machine") from None
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("rollout=vllm needs a CUDA GPU; use rollout=hf on this machine")
        from vllm import LLM

        self.cfg, self.eos_id, self.pad_id, self.family = cfg, eos_id, pad_id, family
        # "external_launcher" keeps the engine in this process (one engine per training rank), so the
        # policy's weights can be loaded into it directly; it reads the torch.distributed variables.
        for k, v in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1")):
            os.environ.setdefault(k, v)
        if "MASTER_PORT" not in os.environ:
            import socket

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                os.environ["MASTER_PORT"] = str(sock.getsockname()[1])
        self.llm = LLM(model=cfg.model, gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                       max_model_len=cfg.vllm_max_model_length, seed=cfg.seed + int(os.environ["RANK"]),
                       distributed_executor_backend="external_launcher", enable_prefix_caching=True,
                       max_num_batched_tokens=4096)
        self._synced_step = -1

    def sync(self, model: Any, step: int) -> None:
        """Load the policy's current weights into the engine (once per optimizer step)."""
        if step == self._synced_step:
            return
        engine_model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        peft = hasattr(model, "merge_adapter")
        if peft:
            model.merge_adapter()
        try:
            for name, p in model.named_parameters():
                if peft:
                    name = name.removeprefix("base_model.model.").replace(".base_layer", "")
                    if "lora_" in name:
                        continue
                engine_model.load_weights([(name, p.data)])
        finally:
            if peft:
                model.unmerge_adapter()
        self.llm.reset_prefix_cache()
        self._synced_step = step

    def sample(self, model: Any, prompt_inputs: dict[str, Any], n: int, seed: int, prompt_text: str = "",
               clip: Any = None) -> tuple[list[list[int]], list[bool]]:
        from vllm import SamplingParams

        mm: dict[str, Any] = {}
        if clip is not None:
            if self.family.video_input == "videos":
                mm["video"] = clip.frames
            else:
                from PIL import Image

                mm["image"] = [Image.fromarray(f) for f in clip.frames]
        sp = SamplingParams(n=n, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                            top_k=self.cfg.top_k or -1, max_tokens=self.cfg.max_completion_length, seed=seed,
                            stop_token_ids=[self.eos_id])
        req: dict[str, Any] = {"prompt": prompt_text}
        if mm:
            req["multi_modal_data"] = mm
        out = self.llm.generate([req], sp, use_tqdm=False)[0]
        ids, finished = [], []
        for o in out.outputs:
            row = list(o.token_ids)
            done = o.finish_reason == "stop"
            if done and row[-1:] != [self.eos_id]:
                row.append(self.eos_id)  # the policy is trained to emit the end token it stopped at
            ids.append(row)
            finished.append(done)
        return ids, finished


# --- the loss ---------------------------------------------------------------------------------

def completion_logps(model: Any, groups: list[tuple[dict[str, Any], list[list[int]]]], pad_id: int):
    """Per-token log-probabilities (N, T) of every completion after its prompt, and the mask (N, T),
    in one forward pass over all (prompt, completions) ``groups`` of a micro-batch (rows in order)."""
    import torch

    from stepkit.train.collate import PER_TOKEN_KEYS, DataCollator

    feats, starts, comps = [], [], []
    for prompt, comp_ids in groups:
        ids = prompt["input_ids"][0]
        extra = {k: v for k, v in prompt.items() if k not in PER_TOKEN_KEYS and isinstance(v, torch.Tensor)}
        for c in comp_ids:
            ct = torch.tensor(c, dtype=torch.long)
            f: dict[str, Any] = {"input_ids": torch.cat([ids, ct]),
                                 "attention_mask": torch.ones(len(ids) + len(c), dtype=torch.long),
                                 "sample_kind": torch.tensor(0)}
            for k in PER_TOKEN_KEYS[2:]:
                if k in prompt:
                    f[k] = torch.cat([prompt[k][0], torch.zeros(len(c), dtype=prompt[k].dtype)])
            f.update(extra)
            feats.append(f)
            starts.append(len(ids))
            comps.append(c)
    batch = DataCollator(pad_id)(feats)  # right-padded rows, vision tensors concatenated (as SFT batches)
    batch.pop("sample_kind")
    n, t = len(comps), max(len(c) for c in comps)
    target = torch.full((n, t), pad_id, dtype=torch.long)
    mask = torch.zeros((n, t), dtype=torch.long)
    for i, c in enumerate(comps):
        target[i, :len(c)] = torch.tensor(c, dtype=torch.long)
        mask[i, :len(c)] = 1
    device = next(model.parameters()).device
    batch = _to_device(batch, device)
    logits = model(**batch, use_cache=False).logits
    # the logits at position p predict token p + 1: completion token j of row i sits at starts[i] + j
    pos = (torch.tensor(starts)[:, None] - 1 + torch.arange(t)[None, :]).clamp(max=logits.shape[1] - 1)
    sel = logits[torch.arange(n)[:, None], pos.to(device)]
    sel = sel if sel.dtype in (torch.float32, torch.float64) else sel.float()
    target = target.to(device)
    logp = torch.gather(sel, 2, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(sel, dim=-1)
    return logp, mask.to(device)


def grpo_loss(logp, ref_logp, advantages, mask, *, beta: float, loss_type: str = "grpo",
              max_completion_length: int = 1):
    """(loss, per-token KL or None) of a micro-batch of completions.

    ``logp`` (N, T) are the policy's per-token log-probabilities (with gradient), ``ref_logp`` the
    reference's (None when ``beta`` is 0), ``advantages`` (N,), ``mask`` (N, T) 1 on completion
    tokens. Per token: −exp(logp − sg(logp))·A + β·(exp(ref − logp) − (ref − logp) − 1), whose value
    at the sampling policy is β·KL and whose gradient is −A·∇logp + β·∇KL; then aggregated by
    ``loss_type`` (grpo: per completion, then over completions; bnpo: over all tokens; dr_grpo:
    sum / (N · max_completion_length)).
    """
    import torch

    per_token = -torch.exp(logp - logp.detach()) * advantages[:, None]
    kl = None
    if beta > 0 and ref_logp is not None:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1.0
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (len(per_token) * max_completion_length)
    else:
        raise ConfigError(f"loss_type={loss_type!r}: choose grpo, bnpo or dr_grpo")
    return loss, kl


# --- the trainer ------------------------------------------------------------------------------

def _grpo_trainer_class():
    """The GRPO Trainer subclass (imports transformers lazily)."""
    import torch
    from transformers import Trainer

    from stepkit.train.trainer import _trainer_classes

    StepTrainer = _trainer_classes()[0]

    class GRPOTrainer(StepTrainer):
        """Rollouts, graph rewards, group-relative advantages and the KL-regularised policy loss."""

        def __init__(self, *args: Any, grpo: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            g = grpo
            self.gcfg: StepGRPOConfig = g["cfg"]
            self.records, self.graphs, self.prompts = g["records"], g["graphs"], g["prompts"]
            self.ref_model, self.rollouts, self.pad_id = g["ref_model"], g["rollouts"], g["pad_id"]
            self._micro = (-1, 0)  # (global step, micro-batch index within it)
            self._stats: dict[str, float] = {}
            self._by_steps: dict[str, list[float]] = {}
            self.first_error: str | None = None

        # one micro-batch
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            from stepkit.train.rewards import answer_correct, parse_completion

            cfg = self.gcfg
            step = self.state.global_step
            micro = self._micro[1] + 1 if self._micro[0] == step else 0
            self._micro = (step, micro)
            policy = self.accelerator.unwrap_model(model)  # generate() lives on the model, not its DDP wrapper
            if isinstance(self.rollouts, VLLMRollouts):
                self.rollouts.sync(policy, step)
            tok = getattr(self.processing_class, "tokenizer", self.processing_class)

            def decode(ids):
                return tok.batch_decode([[t for t in c if t != self.rollouts.eos_id] for c in ids],
                                        skip_special_tokens=True)

            groups = []
            for qi in inputs["record_idx"].tolist():
                rec = self.records[qi]
                prompt, text, clip = self.prompts.inputs(rec)
                ids, finished = self.rollouts.sample(policy, prompt, cfg.num_generations,
                                                     _stable_seed(cfg.seed, step, micro, qi), text, clip)
                texts = decode(ids)
                graph = self.graphs.get(rec.video_id)
                rewards = [score_completion(tx, rec, graph, cfg.weights(), cfg.completion_format, finished=f)
                           for tx, f in zip(texts, finished)]
                if cfg.temporal_contrast:
                    sh_seed = _stable_seed(cfg.seed, step, micro, qi, "shuffle")
                    sh_prompt, sh_text, sh_clip = self.prompts.inputs(rec, shuffle_seed=sh_seed)
                    sh_ids, sh_fin = self.rollouts.sample(policy, sh_prompt, cfg.shuffled_generations(), sh_seed + 1,
                                                          sh_text, sh_clip)
                    sh_ok = [answer_correct(parse_completion(tx, cfg.completion_format, finished=f), tx, rec)
                             for tx, f in zip(decode(sh_ids), sh_fin)]
                    bonus = temporal_bonus([r.correct for r in rewards], sh_ok, alpha=cfg.temporal_alpha,
                                           margin=cfg.temporal_margin)
                    for r, b in zip(rewards, bonus):
                        r.temporal = b
                        r.total += b
                    self._add("shuffled_accuracy", sum(sh_ok) / len(sh_ok))
                groups.append((rec, prompt, Rollout(ids, finished, texts, rewards)))
            totals = [r.total for _, _, ro in groups for r in ro.rewards]
            batch_std = float(torch.tensor(totals, dtype=torch.float64).std()) if len(totals) > 1 else 0.0
            device = next(policy.parameters()).device
            adv = torch.tensor([a for _, _, ro in groups
                                for a in group_advantages([r.total for r in ro.rewards], cfg.scale_rewards,
                                                          batch_std=batch_std)], dtype=torch.float32, device=device)
            finished = torch.tensor([float(f) for _, _, ro in groups for f in ro.finished], device=device)
            pairs = [(prompt, ro.ids) for _, prompt, ro in groups]
            logp, mask = completion_logps(model, pairs, self.pad_id)  # one forward: one DDP reduction
            maskf = mask.float()
            if cfg.mask_truncated_completions:
                maskf = maskf * finished[:, None]
            ref_logp = None
            if cfg.beta > 0:
                with torch.no_grad():
                    if self.ref_model is None:  # LoRA: the reference is the base with the adapter off
                        with policy.disable_adapter():
                            ref_logp, _ = completion_logps(policy, pairs, self.pad_id)
                    else:
                        ref_logp, _ = completion_logps(self.ref_model, pairs, self.pad_id)
            loss, kl = grpo_loss(logp, ref_logp, adv, maskf, beta=cfg.beta, loss_type=cfg.loss_type,
                                 max_completion_length=cfg.max_completion_length)
            row = 0
            for rec, _, ro in groups:
                g = len(ro.ids)
                self._record(rec, ro, None if kl is None else kl[row:row + g], mask[row:row + g])
                row += g
            return (loss, None) if return_outputs else loss

        def _add(self, key: str, value: float, n: float = 1.0) -> None:
            self._stats[key] = self._stats.get(key, 0.0) + value * n
            self._stats[key + "#n"] = self._stats.get(key + "#n", 0.0) + n

        def _record(self, rec, ro: Rollout, kl, mask) -> None:
            import statistics

            rs = ro.rewards
            g = len(rs)
            for term in REWARD_TERMS:
                self._add(f"reward_{term}", sum(getattr(r, term) for r in rs) / g, g)
            tot = [r.total for r in rs]
            self._add("reward", sum(tot) / g, g)
            self._add("reward_std", statistics.stdev(tot) if g > 1 else 0.0)
            self._add("frac_reward_zero_std", 1.0 if max(tot) - min(tot) < 1e-9 else 0.0)
            self._add("accuracy", sum(r.correct for r in rs) / g, g)
            errors = [r.faithfulness_report["error"] for r in rs if "error" in r.faithfulness_report]
            if self.gcfg.weight_faithfulness > 0:
                self._add("faithfulness_errors", len(errors) / g, g)
            if errors and self.first_error is None:
                import sys

                self.first_error = f"record {rec.id!r}: {errors[0]}"
                print(f"warning: the faithfulness scorer failed on a completion ({self.first_error}); scored 0, "
                      "counted in faithfulness_errors", file=sys.stderr)
            self._add("truncated", sum(not f for f in ro.finished) / g, g)
            lens = mask.sum(1).float()
            self._add("completion_length", float(lens.mean()), g)
            if kl is not None:
                per_seq = (kl.detach() * mask).sum(1) / mask.sum(1).clamp(min=1)
                self._add("kl", float(per_seq.mean()), g)
            b = self._by_steps.setdefault(steps_bucket(rec.steps), [0.0, 0.0, 0.0, 0.0])
            b[0] += g
            b[1] += sum(r.correct for r in rs)
            b[2] += sum(r.faithfulness for r in rs)
            b[3] += sum(tot)

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs:
                # sums and counts of every rank, in a fixed layout so all ranks reduce the same tensor
                flat = [self._stats.get(k, 0.0) for key in STAT_KEYS for k in (key, key + "#n")]
                flat += [v for b in BUCKETS for v in self._by_steps.get(b, [0.0] * 4)]
                t = torch.tensor(flat, dtype=torch.float64, device=self.args.device)
                if self.args.world_size > 1:
                    t = self.accelerator.reduce(t, reduction="sum")
                t = t.cpu().tolist()
                for i, key in enumerate(STAT_KEYS):
                    if t[2 * i + 1] > 0:
                        logs[key] = round(t[2 * i] / t[2 * i + 1], 6)
                logs["beta"] = self.gcfg.beta
                off = 2 * len(STAT_KEYS)
                by = {b: t[off + 4 * j: off + 4 * j + 4] for j, b in enumerate(BUCKETS)}
                logs["by_steps"] = {k: {"n": int(v[0]), "accuracy": round(v[1] / v[0], 6),
                                        "faithfulness": round(v[2] / v[0], 6), "reward": round(v[3] / v[0], 6)}
                                    for k, v in by.items() if v[0]}
                self._stats, self._by_steps = {}, {}
            Trainer.log(self, logs, start_time)

    return GRPOTrainer


def _run_files_callback(cfg: StepGRPOConfig, manifest: dict[str, Any]):
    from transformers import TrainerCallback

    class GRPOFilesCallback(TrainerCallback):
        """The run config and manifest in every checkpoint; one reward-log line per log."""

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                from stepkit.io import atomic_write_json

                ck = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if ck.is_dir():
                    atomic_write_json(ck / GRPO_CONFIG_FILE, cfg.to_dict())
                    atomic_write_json(ck / MANIFEST_FILE, manifest)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                append_loss_log(args.output_dir, state, logs)
            return control

    return GRPOFilesCallback()


class _QuestionSet:
    """Record indices as a dataset (rollouts need the record, not a pre-encoded sample)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"record_idx": i}


def _collate(features: list[dict[str, int]]) -> dict[str, Any]:
    import torch

    return {"record_idx": torch.tensor([f["record_idx"] for f in features], dtype=torch.long)}


def _reference_model(cfg: StepGRPOConfig, family: Any, device: Any):
    """The frozen starting model (None for LoRA, whose base with the adapter off is the reference)."""
    if cfg.beta <= 0 or cfg.lora:
        return None
    import transformers

    from stepkit.train.trainer import _dtype

    dtype, _ = _dtype(cfg)  # type: ignore[arg-type]
    kw: dict[str, Any] = {"dtype": dtype}
    if cfg.attn_implementation:
        kw["attn_implementation"] = cfg.attn_implementation
    ref = getattr(transformers, family.model_class).from_pretrained(cfg.model, **kw)
    ref.config.use_cache = False
    ref.requires_grad_(False)
    ref.eval()
    return ref.to(device)


def summarize_log(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Run-level reward figures from reward-log rows: the first and last logged means, and accuracy,
    faithfulness and reward by steps bucket over the whole run and over its last quarter."""
    keys = ["reward", *(f"reward_{t}" for t in REWARD_TERMS), "accuracy", "kl", "completion_length"]
    rows = [r for r in rows if "reward" in r]
    out: dict[str, Any] = {"logged_steps": len(rows)}
    if not rows:
        return out
    out["first"] = {k: rows[0][k] for k in keys if k in rows[0]}
    out["last"] = {k: rows[-1][k] for k in keys if k in rows[-1]}
    q = max(1, len(rows) // 4)
    for name, part in (("first_quarter", rows[:q]), ("last_quarter", rows[-q:])):
        out[name] = {k: round(sum(r[k] for r in part if k in r) / max(1, sum(1 for r in part if k in r)), 6)
                     for k in keys if any(k in r for r in part)}

    def by_steps(part: list[dict[str, Any]]) -> dict[str, Any]:
        acc: dict[str, list[float]] = {}
        for r in part:
            for b, v in (r.get("by_steps") or {}).items():
                a = acc.setdefault(b, [0.0, 0.0, 0.0, 0.0])
                a[0] += v["n"]
                a[1] += v["accuracy"] * v["n"]
                a[2] += v["faithfulness"] * v["n"]
                a[3] += v["reward"] * v["n"]
        return {b: {"n": int(a[0]), "accuracy": round(a[1] / a[0], 6), "faithfulness": round(a[2] / a[0], 6),
                    "reward": round(a[3] / a[0], 6)} for b, a in sorted(acc.items()) if a[0]}

    out["by_steps"] = by_steps(rows)
    out["by_steps_last_quarter"] = by_steps(rows[-q:])
    return out


def read_loss_log(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``OUT/loss_log.jsonl`` (empty when absent)."""
    p = Path(out) / LOSS_LOG
    if not p.is_file():
        return []
    return [json.loads(ln) for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]


def train_grpo(cfg: StepGRPOConfig, *, resume: bool = False, extra_callbacks: list | None = None) -> TrainResult:
    """GRPO-train ``cfg.model`` on the questions of ``cfg.qa`` with graph-verified rewards.

    With ``resume`` the run continues from the latest checkpoint in ``cfg.out`` (get its config with
    :func:`resume_grpo_config`). The model (or adapter), processor, config, manifest, reward log
    (``loss_log.jsonl``) and summary land in ``cfg.out``.
    """
    import torch
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback

    from stepkit.data.record import load_records
    from stepkit.io import atomic_write_json, sha256_file
    from stepkit.train.collate import VideoChatEncoder
    from stepkit.train.trainer import (
        _finished_at,
        _reached_max_steps,
        _trainer_classes,
        _trim_loss_log,
        checkpoint_to_resume,
        load_model,
        training_arguments,
    )

    cfg.validate()
    t_start = time.time()
    out = Path(cfg.out)
    ckpt = checkpoint_to_resume(out, resume)
    qf = qa_file(cfg.qa)
    records = load_records(qf)
    if not records:
        raise DataError(f"{cfg.qa}: no Q/R/A records")
    graphs, graphs_sha = load_record_graphs(cfg, records) if cfg.weight_faithfulness > 0 else ({}, None)
    manifest = {"qa_file": str(qf.resolve()), "qa_sha256": sha256_file(qf), "records": len(records),
                "graphs": str(graph_folder(cfg).resolve()) if graphs else None, "graphs_sha256": graphs_sha,
                "method": "grpo"}
    if ckpt is not None and (ckpt / MANIFEST_FILE).is_file():
        old = json.loads((ckpt / MANIFEST_FILE).read_text(encoding="utf-8"))
        for key, what in (("qa_sha256", str(qf)), ("graphs_sha256", "the scene graphs")):
            if old.get(key) != manifest[key]:
                raise DataError(f"{what}: changed since {ckpt} was written (SHA-256 differs); resume needs the same "
                                "data")
    done_step = _reached_max_steps(ckpt, cfg)  # type: ignore[arg-type]
    if done_step is not None and _finished_at(out, done_step):  # a finished run: resume is a no-op
        return TrainResult(out=out, global_step=done_step, max_steps=done_step, finished=True,
                           seconds=time.time() - t_start, manifest=manifest)
    set_seed(cfg.seed)
    model, processor, fam = load_model(cfg)  # type: ignore[arg-type]
    encoder = VideoChatEncoder.from_config(processor, fam, cfg)  # type: ignore[arg-type]
    tok = getattr(processor, "tokenizer", processor)
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    args = training_arguments(cfg, n_samples=len(records))  # type: ignore[arg-type]
    ref = _reference_model(cfg, fam, args.device)
    rollouts = VLLMRollouts(cfg, eos, pad, fam) if cfg.rollout == "vllm" else HFRollouts(cfg, eos, pad, suppressed_tokens(tok, model.config, eos))
    _, _, StopAfterCallback, ProgressCallback = _trainer_classes()
    callbacks: list = [_run_files_callback(cfg, manifest)]
    if cfg.stop_after_steps:
        callbacks.append(StopAfterCallback(cfg.stop_after_steps))
    if cfg.progress:
        callbacks.append(ProgressCallback())
    callbacks += extra_callbacks or []
    GRPOTrainer = _grpo_trainer_class()
    trainer = GRPOTrainer(model=model, args=args, train_dataset=_QuestionSet(len(records)), data_collator=_collate,
                          processing_class=processor, callbacks=callbacks, lambda_rationale=0.0,
                          grpo={"cfg": cfg, "records": records, "graphs": graphs,
                                "prompts": PromptBuilder(encoder, cfg), "ref_model": ref, "rollouts": rollouts,
                                "pad_id": pad})
    trainer.remove_callback(PrinterCallback)
    main = trainer.is_world_process_zero()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / GRPO_CONFIG_FILE, cfg.to_dict())
        atomic_write_json(out / MANIFEST_FILE, manifest)
        _trim_loss_log(out, int(ckpt.name.split("-")[1]) if ckpt is not None else 0)
    if done_step is not None:  # killed after its last checkpoint: finish from it, no extra step
        from transformers import TrainerState

        trainer._load_from_checkpoint(str(ckpt))
        trainer.state = TrainerState.load_from_json(str(ckpt / "trainer_state.json"))
    else:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt is not None else None)
    state = trainer.state
    finished = state.global_step >= state.max_steps
    if finished:
        trainer.save_model(str(out))
        if main:
            trainer.save_state()
            atomic_write_json(out / GRPO_CONFIG_FILE, cfg.to_dict())
            if cfg.lora and cfg.save_merged:
                merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
                merged.save_pretrained(out / "merged")
                processor.save_pretrained(out / "merged")
    if main:
        rows = read_loss_log(out)
        atomic_write_json(out / SUMMARY, {
            "method": "grpo", "global_step": state.global_step, "max_steps": state.max_steps, "finished": finished,
            "seconds_this_session": round(time.time() - t_start, 3), "manifest": manifest,
            "final_loss": next((h.get("loss") for h in reversed(state.log_history) if "loss" in h), None),
            "rewards": summarize_log(rows), "first_faithfulness_error": trainer.first_error,
            "world_size": args.world_size, "device": str(args.device),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        })
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return TrainResult(out=out, global_step=state.global_step, max_steps=state.max_steps, finished=finished,
                       seconds=time.time() - t_start, manifest=manifest, log_history=list(state.log_history),
                       trainer=trainer)
