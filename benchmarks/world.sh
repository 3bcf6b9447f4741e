#!/usr/bin/env bash
# The synthetic world's done-when checks: render time, determinism, decode agreement, and the
# world perceiver's graph accuracy on seed 1. Numbers go to docs/benchmarks/world.md.
set -euo pipefail
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
/usr/bin/time -f "render seed 0: %e s wall" stepkit world --out "$T/a" --videos 20 --seed 0
stepkit world --out "$T/b" --videos 20 --seed 0 --workers 1
diff -r "$T/a/graphs" "$T/b/graphs" && echo "graphs byte-identical"
diff -r "$T/a/videos" "$T/b/videos" && echo "mp4s byte-identical"
stepkit graph validate "$T/a/graphs" | tail -1
python - "$T/a" <<'PY'
import sys, av
from pathlib import Path
from stepkit.graph import load_graph
bad = 0
for g in sorted(Path(sys.argv[1], "graphs").glob("*.json")):
    G = load_graph(g)
    with av.open(str(g.parent / G.video)) as c:
        n = sum(1 for _ in c.decode(video=0))
        bad += n != G.num_frames or abs(c.duration / 1e6 - G.duration) > 1e-3
print(f"decode: {bad} of 20 videos disagree with their graph (frames, duration)")
PY
stepkit world --out "$T/s1" --videos 20 --seed 1
/usr/bin/time -f "induce seed 1: %e s wall" stepkit induce "$T/s1/videos" --out "$T/p1" --backend world
stepkit graph score "$T/p1" "$T/s1/graphs" | tail -3
