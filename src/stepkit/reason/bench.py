"""`stepkit bench generate`: verified records per second and peak memory at several graph counts.

Each size runs in a fresh child process so its peak RSS is its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError

_CHILD = r"""
import json, resource, sys, time
from stepkit.reason.generate import GenerateConfig, generate
from stepkit.reason.verify import verify
graphs, out, k, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# Warm-up on the first graph (imports, phrase tables) so the timed run measures steady throughput;
# the cold number is reported alongside.
import pathlib, shutil, tempfile
warm = pathlib.Path(tempfile.mkdtemp())
shutil.copy(sorted(pathlib.Path(graphs).glob("*.json"))[0], warm / "g.json")
w0 = time.perf_counter()
generate(warm, warm / "qa", GenerateConfig(per_video=k, seed=seed))
cold = time.perf_counter() - w0
shutil.rmtree(warm)
c0 = time.process_time()
s = generate(graphs, out, GenerateConfig(per_video=k, seed=seed))
cpu = time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
rep = verify(out, graphs)
import importlib.machinery
import stepkit.reason.sampler as sampler
compiled = sampler.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
print(json.dumps({"records": s["records"], "seconds": s["seconds"], "records_per_second": s["records_per_second"],
                  "peak_rss_mib": peak, "cpu_seconds": cpu, "warmup_seconds": cold, "mismatches": len(rep.mismatches),
                  "graphs": s["graphs"], "compiled": compiled}))
"""


def _world_graphs(n: int, dest: Path, seed: int) -> Path:
    """The graphs `stepkit world --videos n --seed seed` writes (simulated only: no video rendering)."""
    try:
        from stepkit.world.api import simulate, video_name, video_seed
    except ImportError:
        raise ConfigError("bench generate: the world simulator is not installed; pass --graphs DIR") from None
    from stepkit.graph.serialize import save_graph

    for i in range(n):
        name = video_name(seed, i)
        graph, _frames = simulate(video_seed(seed, i), video_id=name)
        graph.video = f"../videos/{name}.mp4"
        graph.meta["index"] = i
        save_graph(graph, dest / f"{name}.json")
    return dest


def run_bench(sizes: list[int], *, per_video: int = 50, graphs: Path | None = None, work: Path | None = None,
              seed: int = 0) -> list[dict[str, Any]]:
    """One row per size: records, seconds, verified records/s, peak RSS (MiB), verify mismatches, and
    whether the generator ran compiled (the mypyc wheel ``pip install .`` builds) or as pure Python."""
    if not sizes or min(sizes) < 1:
        raise ConfigError("bench generate: --videos needs positive counts")
    tmp = Path(tempfile.mkdtemp(prefix="stepkit-bench-")) if work is None else Path(work)
    rows = []
    try:
        for n in sizes:
            gdir = tmp / f"graphs-{n}"
            if graphs is not None:
                from stepkit.graph.serialize import iter_graph_files

                files = list(iter_graph_files(graphs))
                if len(files) < n:
                    raise ConfigError(f"bench generate: {graphs} holds {len(files)} graphs, fewer than {n}")
                gdir.mkdir(parents=True, exist_ok=True)
                for f in files[:n]:
                    shutil.copy(f, gdir / f.name)
            elif not any(gdir.glob("**/*.json")):
                gdir = _world_graphs(n, gdir, seed)
            else:
                gdir = gdir / "graphs" if (gdir / "graphs").is_dir() else gdir
            out = tmp / f"qa-{n}"
            res = subprocess.run([sys.executable, "-c", _CHILD, str(gdir), str(out), str(per_video), str(seed)],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise ConfigError(f"bench generate: run on {n} videos failed: {res.stderr.strip()[-400:]}")
            row = json.loads(res.stdout.strip().splitlines()[-1])
            row["videos"] = n
            rows.append(row)
    finally:
        if work is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def compiled_site(checkout: Path, work: Path) -> Path:
    """Build a source checkout as the wheel ``pip install .`` makes with ``STEPKIT_COMPILE=1``
    (the generator compiled by mypyc) and unpack it under ``work``: a folder to put on PYTHONPATH.
    Needs mypy (mypyc), setuptools and a C compiler in this environment (no build isolation)."""
    import os
    import zipfile

    tree = work / "compiled-src"
    tree.mkdir(parents=True)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(checkout / name, tree / name)
    for name in ("_build", "src"):
        shutil.copytree(checkout / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                          str(work / "dist"), str(tree)], capture_output=True, text=True,
                         env={**os.environ, "STEPKIT_COMPILE": "1"})
    if res.returncode != 0:
        raise ConfigError(f"building the compiled wheel of {checkout} failed:\n{(res.stdout + res.stderr)[-3000:]}")
    site = work / "compiled-site"
    zipfile.ZipFile(next((work / "dist").glob("stepkit-*.whl"))).extractall(site)
    return site

