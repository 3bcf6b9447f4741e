"""`stepkit bench train`: training throughput of a tiny model and the dual loss's cost over plain CE."""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def _step_time(model, batches, loss_fn, optimizer=None) -> float:
    import torch

    t = time.perf_counter()
    for b in batches:
        inputs = {k: v for k, v in b.items() if k not in ("labels", "label_kinds", "sample_kind")}
        logits = model(**inputs).logits
        loss = loss_fn(logits, b)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        model.zero_grad(set_to_none=True)
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    return time.perf_counter() - t


def bench_train(*, family: str = "qwen2-vl", steps: int = 20, batch_size: int = 4, num_frames: int = 4,
                hidden_size: int = 256, num_layers: int = 4, image_size: int = 112, repeats: int = 5,
                seed: int = 0, threads: int | None = 1) -> dict[str, Any]:
    """Measure on CPU/GPU: train steps/s, samples/s, tokens/s (forward + dual loss + backward + AdamW),
    then the same batches with the dual loss and with plain token-averaged CE, interleaved ``repeats``
    times; returns the numbers as a dict. ``threads`` sets torch's intra-op threads (1 keeps timings
    stable on a shared machine; None leaves the default)."""
    import torch

    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _bench(family=family, steps=steps, batch_size=batch_size, num_frames=num_frames,
                      hidden_size=hidden_size, num_layers=num_layers, image_size=image_size, repeats=repeats,
                      seed=seed)
    finally:
        torch.set_num_threads(prev_threads)


def _bench(*, family: str, steps: int, batch_size: int, num_frames: int, hidden_size: int, num_layers: int,
           image_size: int, repeats: int, seed: int) -> dict[str, Any]:
    import torch

    from stepkit.data.record import load_records
    from stepkit.models.tiny import build_tiny_model
    from stepkit.train.collate import DataCollator, VideoChatEncoder, build_specs
    from stepkit.train.config import StepTrainConfig
    from stepkit.train.loss import dual_objective_loss, plain_loss
    from stepkit.train.synthetic import synthetic_records
    from stepkit.train.trainer import load_model

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="stepkit-bench-train-") as tmp:
        tmp_p = Path(tmp)
        mdir = build_tiny_model(family, tmp_p / "model", seed=seed, hidden_size=hidden_size, num_layers=num_layers,
                                image_size=image_size, num_frames=max(2, num_frames + num_frames % 2),
                                intermediate_size=2 * hidden_size)
        qa = synthetic_records(tmp_p / "qa", n_videos=4, per_video=2, seed=seed)
        cfg = StepTrainConfig(qa=str(qa), model=str(mdir), out=str(tmp_p / "out"), num_frames=num_frames,
                              max_side=image_size * 2, freeze_vision=False, progress=False)
        model, processor, fam = load_model(cfg)
        model.train()
        enc = VideoChatEncoder.from_config(processor, fam, cfg)
        specs = build_specs(load_records(qa), "dual")
        feats = [enc.encode(s) for s in specs]
        coll = DataCollator(processor.tokenizer.pad_token_id)
        batches = [coll([feats[(i * batch_size + j) % len(feats)] for j in range(batch_size)]) for i in range(steps)]
        n_tokens = sum(int(b["attention_mask"].sum()) for b in batches)
        n_sup = sum(int((b["labels"] != -100).sum()) for b in batches)
        n_params = sum(p.numel() for p in model.parameters())

        def dual(logits, b):
            return dual_objective_loss(logits, b["labels"], b["label_kinds"], 1.0).loss

        def plain(logits, b):
            return plain_loss(logits, b["labels"])

        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        _step_time(model, batches[:2], dual, opt)  # warm-up
        t_train = _step_time(model, batches, dual, opt)
        # dual vs plain on the same batches, no optimizer step (weights fixed): each batch runs with
        # both losses back to back (order alternating), timed in process CPU time, so drifts in machine
        # load hit both sides of a pair alike
        pairs: list[tuple[float, float]] = []
        for r in range(repeats):
            for i, b in enumerate(batches):
                first_dual = (r + i) % 2 == 0
                got = {}
                for fn in ((dual, plain) if first_dual else (plain, dual)):
                    t = time.process_time()
                    _step_time(model, [b], fn)
                    got[fn] = time.process_time() - t
                pairs.append((got[dual], got[plain]))
        t_dual = [d for d, _ in pairs]
        t_plain = [p for _, p in pairs]
        # the loss functions alone on fixed logits (forward + backward of the loss only)
        with torch.no_grad():
            logits_all = [model(**{k: v for k, v in b.items() if k not in ("labels", "label_kinds", "sample_kind")}
                                ).logits for b in batches]
        loss_only = {}
        for name, fn in (("dual", dual), ("plain", plain)):
            ts = []
            for _ in range(repeats):
                t = time.perf_counter()
                for lg, b in zip(logits_all, batches):
                    x = lg.detach().requires_grad_(True)
                    fn(x, b).backward()
                ts.append(time.perf_counter() - t)
            loss_only[name] = statistics.median(ts) / len(batches)
    med_d, med_p = statistics.median(t_dual), statistics.median(t_plain)
    ratio = statistics.median(d / p for d, p in pairs)
    return {
        "family": family, "parameters": n_params, "batch_size": batch_size, "steps": steps,
        "num_frames": num_frames, "image_size": image_size, "hidden_size": hidden_size, "num_layers": num_layers,
        "tokens_per_step": n_tokens / steps, "supervised_tokens_per_step": n_sup / steps,
        "train_step_s": t_train / steps, "samples_per_s": steps * batch_size / t_train, "tokens_per_s": n_tokens / t_train,
        "fwd_bwd_dual_s": med_d, "fwd_bwd_plain_s": med_p,
        "dual_overhead_pct": 100.0 * (ratio - 1.0),
        "dual_overhead_total_pct": 100.0 * (sum(t_dual) - sum(t_plain)) / sum(t_plain), "pairs": len(pairs),
        "loss_only_dual_ms": 1000 * loss_only["dual"], "loss_only_plain_ms": 1000 * loss_only["plain"],
        "repeats": repeats, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu", "machine": platform.processor() or platform.machine(),
    }


def format_bench(r: dict[str, Any]) -> str:
    """A short human-readable summary of :func:`bench_train`'s result."""
    return "\n".join([
        f"tiny {r['family']}: {r['parameters'] / 1e6:.2f}M params, batch {r['batch_size']}, "
        f"{r['tokens_per_step']:.0f} tokens/step ({r['supervised_tokens_per_step']:.0f} supervised), {r['device']}",
        f"train step {r['train_step_s'] * 1000:.1f} ms: {r['samples_per_s']:.1f} samples/s, {r['tokens_per_s']:.0f} tokens/s",
        f"forward+backward (CPU time, median of {r['pairs']} paired runs): dual loss {r['fwd_bwd_dual_s'] * 1000:.2f} ms "
        f"vs plain CE {r['fwd_bwd_plain_s'] * 1000:.2f} ms -> overhead {r['dual_overhead_pct']:+.2f}% "
        f"(median pair ratio; totals {r['dual_overhead_total_pct']:+.2f}%)",
        f"loss alone (fwd+bwd on fixed logits): dual {r['loss_only_dual_ms']:.3f} ms vs plain {r['loss_only_plain_ms']:.3f} ms",
    ])
