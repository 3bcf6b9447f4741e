"""A/B speed of `stepkit generate` between a git revision and the working tree, interleaved.

On a shared VM whose speed drifts by tens of percent from minute to minute, two benchmark runs a
few minutes apart cannot tell a 20% change from noise. This script alternates the two versions
(one fresh process each, same graphs, same settings) and reports the best CPU time of each, so
both see the same machine states; it also checks that both write the same records.

    python benchmarks/generate_ab.py BASE_REV [--videos 20] [--per-video 50] [--rounds 6] [--repeats 5] [--compiled]

``--compiled`` runs the working tree as the wheel ``pip install .`` builds (setup.py compiles the
generator's modules with mypyc) against the base revision's pure Python.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs in a child process with PYTHONPATH set to one version's src/.
_CHILD = r"""
import json, sys, time
from stepkit.reason.generate import GenerateConfig, generate
graphs, out, k, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
generate(graphs, out, GenerateConfig(per_video=k))  # warm-up: imports, phrase tables
best = float("inf")
for _ in range(repeats):
    c = time.process_time()
    s = generate(graphs, out, GenerateConfig(per_video=k))
    best = min(best, time.process_time() - c)
print(json.dumps({"records": s["records"], "best_cpu_s": best}))
"""


def _run(src: Path, graphs: Path, out: Path, per_video: int, repeats: int) -> dict:
    res = subprocess.run([sys.executable, "-c", _CHILD, str(graphs), str(out), str(per_video), str(repeats)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)})
    if res.returncode != 0:
        raise SystemExit(f"run with {src} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _records(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="git revision to compare against (e.g. HEAD~1)")
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--per-video", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=6, help="alternations of base and working tree")
    ap.add_argument("--repeats", type=int, default=5, help="timed generations per process (best is kept)")
    ap.add_argument("--compiled", action="store_true", help="the working tree as its compiled wheel (mypyc)")
    a = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="stepkit-ab-") as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(base), a.base],
                       check=True, capture_output=True)
        try:
            from stepkit.reason.bench import _world_graphs, compiled_site

            graphs = _world_graphs(a.videos, tmp / "graphs", 0)
            tree_src = compiled_site(repo, tmp / "compiled") if a.compiled else repo / "src"
            times: dict[str, list[float]] = {"base": [], "tree": []}
            records: dict[str, int] = {}
            for _ in range(a.rounds):
                for name, src in (("base", base / "src"), ("tree", tree_src)):
                    row = _run(src, graphs, tmp / f"qa-{name}", a.per_video, a.repeats)
                    times[name].append(row["best_cpu_s"])
                    records[name] = row["records"]
            same = _records(tmp / "qa-base" / "qa.jsonl") == _records(tmp / "qa-tree" / "qa.jsonl")
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(base)], capture_output=True)
    rate = {name: records[name] / min(ts) for name, ts in times.items()}
    for name, ts in times.items():
        print(f"{name}: best {min(ts) * 1000:.0f} ms CPU for {records[name]} records ({rate[name]:.0f} records/CPU-s); "
              f"all: {' '.join(f'{t * 1000:.0f}' for t in ts)}")
    # Two versions that keep different numbers of records (a stricter generator gives up on more
    # slots) differ in throughput by more than in time: both are printed.
    print(f"speed-up: {min(times['base']) / min(times['tree']):.2f}x in time, "
          f"{rate['tree'] / rate['base']:.2f}x in records/CPU-s; same records: {same}")


if __name__ == "__main__":
    main()
