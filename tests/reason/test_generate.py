"""Generation end to end on hand-built and random household graphs: counts, step mix, verification,
rationale grounding, balance, determinism, CLI."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict

import pytest
from typer.testing import CliRunner

from stepkit.cli import app
from stepkit.data.record import iter_records
from stepkit.errors import ConfigError
from stepkit.graph.serialize import load_graph
from stepkit.reason.generate import GenerateConfig, answer_in_question, generate, parse_steps, parse_types
from stepkit.reason.ops import ExecError, GraphContext, execute, step_count
from stepkit.reason.sampler import MIN_STEPS, TYPES, Reject, Sampler
from stepkit.reason.verify import verify

STEPS = "1:0.2,2:0.3,3:0.3,4:0.2"


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """60 random graphs x 50 records (module-scoped: shared by the balance and content checks)."""
    from household import random_household
    from stepkit.graph.serialize import save_graph

    root = tmp_path_factory.mktemp("big")
    for i in range(60):
        save_graph(random_household(100 + i), root / "graphs" / f"rand{100 + i}.json")
    summary = generate(root / "graphs", root / "qa", GenerateConfig(per_video=50, steps=STEPS, seed=0))
    return root, summary


def test_every_type_and_step_count_samples_and_executes():
    """Every type at every step count up to 4 on a graph whose shared labels make references
    honest: the candidate executes from JSON, has exactly n steps, and none of them is a no-op."""
    from household import shared_labels

    from stepkit.reason.quality import noop_steps

    graph = shared_labels()
    ctx = GraphContext(graph, natural=True)
    sampler = Sampler(ctx, random.Random(1), label_pool=["laptop", "sofa"], verb_pool=[])
    for qtype in TYPES:
        for n in range(MIN_STEPS[qtype], 5):
            got = None
            for _ in range(300):
                try:
                    cand = sampler.sample(qtype, n)
                except (Reject, ExecError):
                    continue
                if not noop_steps(cand.builder.nodes, ctx, cand.builder.values):
                    got = cand
                    break
            assert got is not None, (qtype, n)
            program = json.loads(json.dumps(got.builder.nodes))
            assert step_count(program) == n
            assert execute(program, graph, natural=True).answer == got.answer


def test_big_run_counts_mix_and_verification(big_run):
    root, summary = big_run
    # honest steps: a graph gives only the questions whose every step narrows something; the
    # other slots are counted as unfilled
    assert summary["records"] >= 0.5 * 60 * 50 and summary["failed"] == []
    assert summary["records"] + summary["unfilled_slots"] == 60 * 50
    request = parse_steps(STEPS)
    for k, share in request.items():
        assert abs(summary["step_mix"][str(k)] - share) <= 0.05
    assert summary["drops"] and all(isinstance(v, int) and v > 0 for v in summary["drops"].values())
    report = verify(root / "qa", root / "graphs")
    assert report.checked == summary["records"] and report.ok, report.mismatches[:3]


def test_rationales_are_grounded_and_end_in_the_answer(big_run):
    root, _ = big_run
    graphs = {}
    for rec in iter_records(root / "qa"):
        if rec.video_id not in graphs:
            graphs = {rec.video_id: load_graph(root / "graphs" / f"{rec.video_id}.json")}
        g = graphs[rec.video_id]
        ids = {o.id for o in g.objects} | {e.id for e in g.iter_edges()}
        assert len(rec.rationale) >= rec.steps, rec.id
        for s in rec.rationale:
            assert s.grounding and set(s.grounding) <= ids, (rec.id, s)
        assert rec.answer.lower() in rec.rationale[-1].text.lower()
        assert rec.answer_instruction and rec.rationale_instruction and rec.answer_sentence
        assert rec.provenance["seed"] == 0 and len(rec.provenance["graph_sha256"]) == 64


def test_balance_in_buckets_and_positions(big_run):
    root, _ = big_run
    buckets: dict[tuple[str, int], Counter] = defaultdict(Counter)
    positions: Counter = Counter()
    n_mc = 0
    for rec in iter_records(root / "qa"):
        buckets[(rec.type, rec.steps)][rec.answer] += 1
        if rec.options and len(rec.options) == 4:
            positions[rec.answer_index] += 1
            n_mc += 1
            assert len(set(rec.options)) == 4 and rec.options[rec.answer_index] == rec.answer
    big = {b: c for b, c in buckets.items() if sum(c.values()) >= 50}
    assert len(big) >= 5 and any(set(c) <= {"yes", "no"} for c in big.values())
    for b, c in big.items():
        n = sum(c.values())
        if set(c) <= {"yes", "no"}:
            assert abs(c["yes"] / n - 0.5) <= 0.05, (b, c)
        else:
            assert max(c.values()) / n <= 0.35, (b, c.most_common(3))
    assert n_mc > 500
    for p in range(4):
        assert abs(positions[p] / n_mc - 0.25) <= 0.05


def test_same_seed_identical_other_seed_differs(random_graphs_dir, tmp_path):
    cfg = dict(per_video=10, steps=STEPS)
    generate(random_graphs_dir, tmp_path / "a", GenerateConfig(seed=3, **cfg))
    generate(random_graphs_dir, tmp_path / "b", GenerateConfig(seed=3, **cfg))
    generate(random_graphs_dir, tmp_path / "c", GenerateConfig(seed=4, **cfg))
    a = (tmp_path / "a" / "qa.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "qa.jsonl").read_bytes()
    assert a != (tmp_path / "c" / "qa.jsonl").read_bytes()


def test_verify_catches_tampering(random_graphs_dir, tmp_path):
    generate(random_graphs_dir, tmp_path / "qa", GenerateConfig(per_video=5))
    lines = (tmp_path / "qa" / "qa.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["answer"] = "definitely not it"
    lines[0] = json.dumps(rec)
    rec2 = json.loads(lines[1])
    rec2["steps"] += 1
    lines[1] = json.dumps(rec2)
    (tmp_path / "qa" / "qa.jsonl").write_text("\n".join(lines) + "\n")
    report = verify(tmp_path / "qa", random_graphs_dir)
    assert [m.record_id for m in report.mismatches] == [rec["id"], rec2["id"]]
    assert "record says 'definitely not it'" in report.mismatches[0].problem
    res = CliRunner().invoke(app, ["qa", "verify", str(tmp_path / "qa"), str(random_graphs_dir)])
    assert res.exit_code == 1 and "2 mismatches" in res.output


def test_cli_generate_verify_show(random_graphs_dir, tmp_path):
    out = tmp_path / "qa"
    runner = CliRunner()
    res = runner.invoke(app, ["generate", str(random_graphs_dir), "--out", str(out), "--per-video", "8",
                              "--steps", "1:0.5,5:0.5", "--types", "relation,existence,comparison", "--seed", "1"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["by_type"]) <= {"relation", "existence", "comparison"}
    assert set(summary["by_steps"]) <= {"1", "5"} and summary["records"] > 0
    assert summary["config"]["seed"] == 1 and summary["seconds"] > 0 and summary["records_per_second"] > 0
    res = runner.invoke(app, ["qa", "verify", str(out), str(random_graphs_dir)])
    assert res.exit_code == 0 and " 0 mismatches" in res.output
    res = runner.invoke(app, ["qa", "show", str(out), "--n", "2"])
    assert res.exit_code == 0 and res.output.count("Q: ") == 2 and "program:" in res.output
    res = runner.invoke(app, ["generate", str(random_graphs_dir), "--out", str(out), "--steps", "1:x"])
    assert res.exit_code == 1 and "--steps" in res.output


def test_bad_inputs_are_reported(tmp_path, random_graphs_dir):
    with pytest.raises(ConfigError, match="outside 1..8"):
        parse_steps("9:1")
    with pytest.raises(ConfigError, match="unknown question type 'colour'"):
        parse_types("colour")
    assert parse_steps("2") == {2: 1.0}
    bad = tmp_path / "graphs"
    bad.mkdir()
    (bad / "broken.json").write_text("{not json")
    import shutil

    shutil.copy(next(random_graphs_dir.glob("*.json")), bad / "ok.json")
    summary = generate(bad, tmp_path / "qa", GenerateConfig(per_video=3))
    assert summary["graphs"] == 1 and summary["records"] > 0
    assert "broken.json" in summary["failed"][0]["path"] and "invalid JSON" in summary["failed"][0]["error"]


def test_answer_in_question():
    assert answer_in_question("What is the person holding the cup on?", "cup")
    assert not answer_in_question("What is the person holding?", "cup")
    assert not answer_in_question("Is there a cup?", "yes")
    assert answer_in_question("What did the man do after he picked up the cup?", "picked up the cup")


def test_sparse_graphs_do_not_break_generation(tmp_path):
    """Graphs with no actions, no relations or nothing at all (as importers and inducers can emit)."""
    from household import kitchen

    from stepkit.graph.serialize import save_graph
    from stepkit.graph.types import STSG

    g1 = kitchen("noacts")
    g1.actions = []
    g2 = kitchen("norels")
    g2.relations = []
    g3 = STSG(video_id="empty", fps=10.0, duration=5.0)
    for g in (g1, g2, g3):
        save_graph(g, tmp_path / "g" / f"{g.video_id}.json")
    summary = generate(tmp_path / "g", tmp_path / "qa", GenerateConfig(per_video=20, steps="1,2,3,4,5"))
    assert summary["failed"] == [] and summary["graphs"] == 3
    assert summary["records"] > 0 and summary["unfilled_slots"] > 0
    assert verify(tmp_path / "qa", tmp_path / "g").ok
    vids = Counter(r.video_id for r in iter_records(tmp_path / "qa"))
    assert vids["empty"] == 0 and vids["noacts"] > 0 and vids["norels"] > 0


def test_identical_bytes_across_processes_and_hash_seeds(random_graphs_dir, tmp_path):
    import os
    import subprocess
    import sys

    outs = []
    for h in ("1", "2"):
        out = tmp_path / f"qa{h}"
        env = dict(os.environ, PYTHONHASHSEED=h)
        res = subprocess.run([sys.executable, "-m", "stepkit.cli", "generate", str(random_graphs_dir), "--out",
                              str(out), "--per-video", "10", "--seed", "7"], env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        outs.append((out / "qa.jsonl").read_bytes())
    assert outs[0] == outs[1] and outs[0]
