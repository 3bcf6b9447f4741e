"""The compiled generator (a wheel built by setup.py with mypyc) writes the very records pure Python does.

mypyc enforces annotations at run time, so an annotation that Python ignores can fail there (a
variable reused with another type, an attribute typed narrower than what it holds): the type check
keeps the compiled modules buildable, the wheel test keeps them equal to the sources.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_CHARADES = REPO.parent / "shared" / "data" / "charades" / "Charades_v1_train.csv"

_CHILD = r"""
import json, sys
from stepkit.reason.generate import GenerateConfig, generate
import stepkit.reason.sampler as sampler
for graphs, out in zip(sys.argv[1::2], sys.argv[2::2]):
    generate(graphs, out, GenerateConfig(per_video=int(__import__("os").environ["PER_VIDEO"])))
print(json.dumps({"sampler": sampler.__file__}))
"""


def _compiled_modules() -> list[str]:
    """setup.py's ``COMPILED`` list (read, not imported: importing setup.py would run setup())."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    return next(ast.literal_eval(n.value) for n in tree.body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "COMPILED")


def test_compiled_modules_type_check(tmp_path):
    """mypy (the checker mypyc compiles through) accepts every module setup.py compiles."""
    pytest.importorskip("mypy")
    files = [str(REPO / "src" / "stepkit" / "reason" / f"{m}.py") for m in _compiled_modules()]
    res = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
                          "--cache-dir", str(tmp_path / "mypy-cache"), *files], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def _graph_sets(tmp: Path) -> list[Path]:
    from household import random_household

    from stepkit.graph.serialize import save_graph
    from stepkit.reason.bench import _world_graphs

    sets = [_world_graphs(8, tmp / "world0", 0), _world_graphs(6, tmp / "world9", 9)]
    house = tmp / "household"
    for i in range(8):
        save_graph(random_household(i), house / f"rand{i}.json")
    sets.append(house)
    if SHARED_CHARADES.is_file():
        from stepkit.sources.charades import import_charades

        rows = SHARED_CHARADES.read_text(encoding="utf-8").splitlines()[:41]
        csv = tmp / "charades.csv"
        csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
        import_charades(csv, tmp / "charades", workers=1)
        sets.append(tmp / "charades")
    return sets


@pytest.mark.slow
def test_compiled_wheel_writes_the_same_records(tmp_path):
    pytest.importorskip("mypyc")
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) to build the compiled wheel with")
    from stepkit.reason.bench import compiled_site

    site = compiled_site(REPO, tmp_path / "build")  # the wheel a user's `pip install .` builds
    assert {p.name.split(".")[0] for p in (site / "stepkit" / "reason").glob("*.so")} == set(_compiled_modules())

    sets = _graph_sets(tmp_path)
    outs = {}
    for name, path in (("compiled", site), ("pure", REPO / "src")):
        argv = [a for i, g in enumerate(sets) for a in (str(g), str(tmp_path / name / str(i)))]
        res = subprocess.run([sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(path), "PER_VIDEO": "30", "OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stderr[-3000:]
        loaded = res.stdout.strip().splitlines()[-1]
        assert (".so" in loaded) == (name == "compiled"), loaded
        outs[name] = [(tmp_path / name / str(i) / "qa.jsonl").read_bytes() for i in range(len(sets))]
    for i, (c, p) in enumerate(zip(outs["compiled"], outs["pure"])):
        assert p.count(b"\n") > 20, f"graph set {sets[i]}: too few records to compare"
        assert c == p, f"graph set {sets[i]}: compiled and pure Python records differ"
