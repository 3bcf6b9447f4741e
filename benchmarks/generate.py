"""Benchmark of `stepkit generate`: verified records per second and peak memory at 20 and 200 world
graphs (each size in a fresh process). Same as `stepkit bench generate`; this script also saves JSON.

    python benchmarks/generate.py [--videos 20,200] [--per-video 50] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform


def main() -> None:
    from stepkit.reason.bench import run_bench

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="20,200")
    ap.add_argument("--per-video", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    a = ap.parse_args()
    rows = run_bench([int(v) for v in a.videos.split(",")], per_video=a.per_video, seed=a.seed)
    for r in rows:
        print(f"{r['videos']:>4} videos: {r['records']} records, {r['seconds']:.2f} s wall "
              f"({r['records_per_second']:.0f}/s), {r['cpu_seconds']:.2f} s CPU "
              f"({r['records'] / r['cpu_seconds']:.0f}/CPU-s), peak RSS {r['peak_rss_mib']:.1f} MiB, "
              f"{r['mismatches']} verify mismatches")
    if len(rows) > 1:
        print(f"memory growth: {rows[-1]['peak_rss_mib'] / rows[0]['peak_rss_mib']:.2f}x")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            json.dump({"machine": platform.platform(), "rows": rows}, fh, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
