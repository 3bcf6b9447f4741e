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


# --- peak memory of a training step: logits everywhere vs only where supervised ------------------

def _rss_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _memory_point(spec: dict[str, Any]) -> dict[str, Any]:
    """One (tokens, path) point, run in a fresh process: peak memory and time of a training step."""
    import torch

    from stepkit.train.loss import ANSWER, IGNORE_INDEX, IGNORE_KIND, RATIONALE, model_dual_loss
    from stepkit.train.trainer import _family  # noqa: F401 - the family registry is importable here

    torch.set_num_threads(int(spec.get("threads", 1)))
    torch.manual_seed(spec["seed"])
    cuda = spec["device"] == "cuda"
    dtype = getattr(torch, spec["dtype"])
    from transformers import AutoConfig

    from stepkit.models.families import get_family

    fam = get_family(spec["family"])
    import transformers

    model_cls = getattr(transformers, fam.model_class)
    model = model_cls.from_pretrained(spec["model"], dtype=dtype).to(spec["device"])
    model.train()
    vocab = AutoConfig.from_pretrained(spec["model"]).get_text_config().vocab_size
    t, b = int(spec["tokens"]), int(spec["batch_size"])
    g = torch.Generator().manual_seed(spec["seed"])
    ids = torch.randint(10, vocab, (b, t), generator=g)
    labels = torch.full((b, t), IGNORE_INDEX)
    kinds = torch.full((b, t), IGNORE_KIND)
    n_sup = max(2, int(t * spec["supervised_fraction"]))
    n_ans = max(1, n_sup // 5)
    # the end of each sample is supervised: a rationale, then the answer (as in STEP's targets)
    labels[:, t - n_sup:] = ids[:, t - n_sup:]
    kinds[:, t - n_sup: t - n_ans] = RATIONALE
    kinds[:, t - n_ans:] = ANSWER
    inputs = {"input_ids": ids.to(spec["device"]), "attention_mask": torch.ones_like(ids).to(spec["device"])}
    labels, kinds = labels.to(spec["device"]), kinds.to(spec["device"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    only = spec["path"] == "supervised"

    def step():
        d, out = model_dual_loss(model, dict(inputs), labels, kinds, 1.0, supervised_only=only)
        d.loss.backward()
        opt.step()
        model.zero_grad(set_to_none=True)
        shape = tuple(out.logits.shape)
        del out
        return d, shape

    # the first step allocates AdamW's state; the measured step is a steady-state one (same weights
    # as the other path: the first step's update is undone by reloading the weights)
    step()
    with torch.no_grad():
        fresh = model_cls.from_pretrained(spec["model"], dtype=dtype).to(spec["device"]).state_dict()
        model.load_state_dict(fresh)
        del fresh
    import gc

    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        if not _reset_peak_rss():
            raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs)")
        base = _rss_kb("VmRSS") * 1024
    t0 = time.perf_counter()
    d, shape = step()
    if cuda:
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda else _rss_kb("VmHWM") * 1024) - base
    return {"tokens": t, "path": spec["path"], "peak_bytes": int(peak), "step_s": secs, "logits_shape": list(shape),
            "loss": float(d.loss.detach()), "answer": float(d.answer), "rationale": float(d.rationale),
            "supervised_tokens": n_sup * b, "vocab_size": int(vocab)}


def bench_train_memory(*, family: str = "qwen2-vl", vocab_size: int = 151_936,
                       tokens: tuple[int, ...] = (1024, 2048, 4096, 8192), batch_size: int = 1,
                       supervised_fraction: float = 0.05, hidden_size: int = 64, num_layers: int = 2,
                       dtype: str = "bfloat16", full_max_tokens: int = 4096, seed: int = 0, threads: int = 1,
                       device: str | None = None) -> dict[str, Any]:
    """Peak memory and time of one training step (forward, dual loss, backward, AdamW) of a tiny
    ``family`` model with a ``vocab_size`` LM head, with logits at every position (today's path up to
    this change) and only at supervised positions, each point in a fresh process. The full path runs
    up to ``full_max_tokens`` tokens (its logits and their gradient take 2 x tokens x vocab values)."""
    import json
    import os
    import subprocess
    import sys

    import torch

    from stepkit.models.tiny import build_tiny_model

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="stepkit-bench-mem-") as tmp:
        mdir = build_tiny_model(family, Path(tmp) / "tiny", seed=seed, hidden_size=hidden_size, num_layers=num_layers,
                                intermediate_size=2 * hidden_size)
        big = Path(tmp) / "model"
        _resize_vocab(family, mdir, big, vocab_size)
        for t in tokens:
            for path in ("full", "supervised"):
                if path == "full" and t > full_max_tokens:
                    continue
                spec = {"family": family, "model": str(big), "tokens": t, "path": path, "batch_size": batch_size,
                        "supervised_fraction": supervised_fraction, "dtype": dtype, "seed": seed,
                        "threads": threads, "device": dev}
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                proc = subprocess.run([sys.executable, "-c", "import json, sys; from stepkit.train.bench import "
                                       "_memory_point; print(json.dumps(_memory_point(json.loads(sys.argv[1]))))",
                                       json.dumps(spec)], capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise RuntimeError(f"memory point {t} tokens / {path} failed: {proc.stderr[-2000:]}")
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"family": family, "vocab_size": vocab_size, "batch_size": batch_size, "hidden_size": hidden_size,
            "num_layers": num_layers, "dtype": dtype, "supervised_fraction": supervised_fraction, "device": dev,
            "threads": threads, "torch": torch.__version__, "rows": rows,
            "machine": platform.processor() or platform.machine()}


def _resize_vocab(family: str, src: Path, dst: Path, vocab_size: int) -> None:
    """Save the tiny model at ``src`` with its embeddings and LM head grown to ``vocab_size`` rows."""
    import shutil

    import transformers

    from stepkit.models.families import get_family

    cls = getattr(transformers, get_family(family).model_class)
    model = cls.from_pretrained(str(src))
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    model.save_pretrained(str(dst))
    for f in Path(src).iterdir():  # tokenizer and processor files
        if not (dst / f.name).exists() and f.is_file():
            shutil.copy(f, dst / f.name)


def format_memory(r: dict[str, Any]) -> str:
    """The memory comparison as a Markdown table."""
    lines = [f"tiny {r['family']} (hidden {r['hidden_size']}, {r['num_layers']} layers), vocabulary {r['vocab_size']:,}, "
             f"batch {r['batch_size']}, {r['dtype']}, {r['supervised_fraction']:.0%} of tokens supervised, {r['device']}, "
             f"{r['threads']} thread(s), torch {r['torch']}",
             "",
             "| tokens | logits | peak step memory MiB | step s | loss | L_answer | L_rationale | memory saved |",
             "|---|---|---|---|---|---|---|---|"]
    by = {(x["tokens"], x["path"]): x for x in r["rows"]}
    for (t, path), x in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] != "full")):
        full = by.get((t, "full"))
        saved = f"{full['peak_bytes'] / x['peak_bytes']:.1f}x" if path == "supervised" and full and x["peak_bytes"] > 0 else ""
        lines.append(f"| {t} | {'every position' if path == 'full' else 'supervised only'} {tuple(x['logits_shape'])} | "
                     f"{x['peak_bytes'] / 2**20:.0f} | {x['step_s']:.2f} | {x['loss']:.6f} | {x['answer']:.6f} | "
                     f"{x['rationale']:.6f} | {saved} |")
    diffs = [max(abs(x[k] - by[(t, "full")][k]) for k in ("loss", "answer", "rationale"))
             for (t, path), x in by.items() if path == "supervised" and (t, "full") in by]
    if diffs:
        lines += ["", f"loss terms of the two paths differ by at most {max(diffs):.1e} (same batches, same weights)"]
    return "\n".join(lines) + "\n"
