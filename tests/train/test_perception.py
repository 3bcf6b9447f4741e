"""The perception stage's records: answers from the graph, no text shortcut, deterministic, bad input named."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from stepkit.errors import ConfigError
from stepkit.graph.serialize import save_graph
from stepkit.train.perception import DEFAULT_MIX, KINDS, PerceptionGenerator, generate_perception, object_phrase, parse_mix


def _graphs(n: int = 8, seed: int = 40):
    from stepkit.world.api import simulate

    return [simulate(seed + i, duration=10.0, video_id=f"v{i}")[0] for i in range(n)]


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("graphs")
    for g in _graphs():
        g.video = f"{g.video_id}.mp4"
        save_graph(g, d / f"{g.video_id}.json")
    return d


def test_records_answer_from_the_graph(graph_dir: Path, tmp_path: Path) -> None:
    s = generate_perception(graph_dir, tmp_path / "p", per_video=30, seed=3)
    rows = [json.loads(line) for line in (tmp_path / "p" / "qa.jsonl").read_text().splitlines()]
    assert s["records"] == len(rows) > 8 * 20 and not s["failed"]
    assert {r["type"] for r in rows} == {f"perception-{k}" for k in DEFAULT_MIX}
    graphs = {g.video_id: g for g in _graphs()}
    for r in rows:
        g = graphs[r["video_id"]]
        assert r["steps"] == 1 and r["video"] == str(graph_dir / f"{r['video_id']}.mp4")
        t0, t1 = r["window"]
        assert 0 <= t0 < t1 <= g.duration
        if r["options"]:
            assert r["options"][r["answer_index"]] == r["answer"] and len(set(r["options"])) == len(r["options"])
        if r["type"] == "perception-describe":
            assert r["answer"] in {c.description for c in g.clips}
        if r["type"] == "perception-exists":
            present = {o.label for o in g.objects}
            label = r["question"].removeprefix("Is there a ").removesuffix(" in the video?")
            assert (label in present) == (r["answer"] == "yes")
        if r["type"] == "perception-colour":
            colours = {a.value for o in g.objects for a in o.attributes if a.name == "color"}
            assert r["answer"] in colours
        if r["type"] == "perception-objects":
            names = {object_phrase(o) for o in g.objects}
            assert all(n.strip(".") in names for n in r["answer"].split(", "))


def test_existence_is_balanced_per_label(graph_dir: Path, tmp_path: Path) -> None:
    generate_perception(graph_dir, tmp_path / "p", per_video=40, mix=parse_mix("exists:1"), seed=0)
    by_label: dict[str, Counter] = defaultdict(Counter)
    for line in (tmp_path / "p" / "qa.jsonl").read_text().splitlines():
        r = json.loads(line)
        by_label[r["question"]][r["answer"]] += 1
    # per label exactly as many "no" as "yes": the wording alone never tells the answer
    assert len(by_label) >= 5
    for q, c in by_label.items():
        assert c["yes"] == c["no"] >= 1, (q, c)


def test_same_seed_same_bytes_and_mix_in(graph_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.jsonl"
    first = (graph_dir / "v0.json")
    rec = {"id": "x1", "video_id": "v0", "question": "Q?", "answer": "a", "steps": 1, "type": "attribute",
           "video": "v0.mp4", "schema_version": "1.0"}
    extra.write_text(json.dumps(rec) + "\n")
    a = generate_perception(graph_dir, tmp_path / "a", per_video=10, seed=5, mix_in=[extra])
    generate_perception(graph_dir, tmp_path / "b", per_video=10, seed=5, mix_in=[extra])
    assert (tmp_path / "a" / "qa.jsonl").read_bytes() == (tmp_path / "b" / "qa.jsonl").read_bytes()
    last = json.loads((tmp_path / "a" / "qa.jsonl").read_text().splitlines()[-1])
    assert a["mixed_in"] == 1 and last["id"] == "x1" and last["video"] == str(tmp_path / "v0.mp4")
    generate_perception(graph_dir, tmp_path / "c", per_video=10, seed=6)
    assert (tmp_path / "a" / "qa.jsonl").read_bytes() != (tmp_path / "c" / "qa.jsonl").read_bytes()
    assert first.is_file()


def test_mixing_in_another_perception_file_keeps_ids_unique(graph_dir: Path, tmp_path: Path) -> None:
    generate_perception(graph_dir, tmp_path / "caps", per_video=2, mix=parse_mix("contents:1,colours:1"), seed=0)
    s = generate_perception(graph_dir, tmp_path / "all", per_video=4, mix=parse_mix("colour:1,exists:1"), seed=0,
                            mix_in=[tmp_path / "caps" / "qa.jsonl"])
    rows = [json.loads(line) for line in (tmp_path / "all" / "qa.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids) and s["renamed_ids"] > 0
    assert all(i.endswith("-m0") for i, r in zip(ids, rows) if r["type"] == "perception-contents" and i.count("-m"))


def test_bad_input_is_named(graph_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown kind 'colour-names'"):
        parse_mix("colour-names:1")
    with pytest.raises(ConfigError, match="weight > 0"):
        parse_mix("describe:0")
    with pytest.raises(ConfigError, match="no graph files"):
        generate_perception(tmp_path, tmp_path / "o")
    with pytest.raises(ConfigError, match="--mix-in .*no such Q/R/A file"):
        generate_perception(graph_dir, tmp_path / "o", mix_in=[tmp_path / "nope.jsonl"])
    with pytest.raises(ConfigError, match="--per-video"):
        PerceptionGenerator([], per_video=0)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.json").write_text("{not json")
    for g in _graphs(1):
        save_graph(g, bad / "ok.json")
    s = generate_perception(bad, tmp_path / "o2", per_video=5)
    assert s["records"] == 5 and len(s["failed"]) == 1 and "broken.json" in s["failed"][0]["path"]


def test_cli_writes_the_records(graph_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from stepkit.cli import app

    res = CliRunner().invoke(app, ["perception", str(graph_dir), "--out", str(tmp_path / "p"), "--per-video", "6",
                                   "--mix", "colour:1,exists:1"])
    assert res.exit_code == 0, res.output
    kinds = {json.loads(line)["type"] for line in (tmp_path / "p" / "qa.jsonl").read_text().splitlines()}
    assert kinds == {"perception-colour", "perception-exists"}
    res = CliRunner().invoke(app, ["perception", str(graph_dir), "--out", str(tmp_path / "q"), "--mix", "nope"])
    assert res.exit_code != 0 and "unknown kind 'nope'" in res.output


def test_captions_list_what_the_whole_video_shows(graph_dir: Path, tmp_path: Path) -> None:
    s = generate_perception(graph_dir, tmp_path / "c", per_video=5, mix=parse_mix("contents:1,colours:1"), seed=0)
    rows = [json.loads(line) for line in (tmp_path / "c" / "qa.jsonl").read_text().splitlines()]
    assert s["by_type"] == {"perception-colours": 8, "perception-contents": 8}  # one of each per video
    graphs = {g.video_id: g for g in _graphs()}
    for r in rows:
        g = graphs[r["video_id"]]
        assert r["window"] == [0.0, g.duration] and r["options"] is None
        if r["type"] == "perception-contents":
            want = sorted({o.label for o in g.objects if o.label != "person"})
        else:
            want = sorted({o.attribute("color") for o in g.objects if o.attribute("color")})
        assert r["answer"] == ", ".join(want) + "."
    assert set(KINDS) >= {"contents", "colours"}


def test_object_colours_name_each_label_before_its_colours(graph_dir: Path, tmp_path: Path) -> None:
    s = generate_perception(graph_dir, tmp_path / "b", per_video=3, mix=parse_mix("object-colours:1"), seed=0)
    rows = [json.loads(line) for line in (tmp_path / "b" / "qa.jsonl").read_text().splitlines()]
    assert s["by_type"] == {"perception-object-colours": 8}  # one per video: the caption has one form
    graphs = {g.video_id: g for g in _graphs()}
    for r in rows:
        g = graphs[r["video_id"]]
        colours: dict[str, set[str]] = {}
        for o in g.objects:
            if o.label != "person" and o.attribute("color"):
                colours.setdefault(o.label, set()).add(o.attribute("color"))
        want = " ".join(f"{lab}: {' and '.join(sorted(cs))}." for lab, cs in sorted(colours.items()))
        assert r["answer"] == want and r["window"] == [0.0, g.duration]
        first = sorted(colours)[0]
        assert r["answer"].startswith(f"{first}: ")  # the label comes first, its colour after it


def test_actions_caption_lists_every_action_in_time_order(graph_dir: Path, tmp_path: Path) -> None:
    from stepkit.reason.ops import GraphContext

    generate_perception(graph_dir, tmp_path / "a", per_video=2, mix=parse_mix("actions:1"), seed=0)
    rows = [json.loads(line) for line in (tmp_path / "a" / "qa.jsonl").read_text().splitlines()]
    graphs = {g.video_id: g for g in _graphs()}
    assert rows and all(r["type"] == "perception-actions" for r in rows)
    for r in rows:
        g = graphs[r["video_id"]]
        ctx = GraphContext(g, natural=True)
        first = min(g.actions, key=lambda a: a.t0)
        assert r["answer"].startswith(ctx.action_phrase(first.id))
        assert r["answer"].count(",") == len(g.actions) - 1


def test_relation_records_hold_at_their_moment_and_no_distractor_does(graph_dir: Path, tmp_path: Path) -> None:
    s = generate_perception(graph_dir, tmp_path / "r", per_video=6, mix=parse_mix("relation:1"), seed=0)
    rows = [json.loads(line) for line in (tmp_path / "r" / "qa.jsonl").read_text().splitlines()]
    assert s["by_type"] == {"perception-relation": len(rows)} and len(rows) >= 8
    graphs = {g.video_id: g for g in _graphs()}
    forms = Counter()
    for r in rows:
        g = graphs[r["video_id"]]
        label = {o.id: o.label for o in g.objects}
        t0, t1 = r["window"]
        # the relations holding somewhere in the window, as (subject label, predicate, object label)
        held = {(label[x.subject], x.predicate, label[x.object]) for x in g.relations if x.t0 <= t1 and x.t1 >= t0}
        # ... and those holding all through it (so also at the record's moment, which is inside it)
        always = {(label[x.subject], x.predicate, label[x.object]) for x in g.relations if x.t0 <= t0 and x.t1 >= t1}
        q = r["question"]
        if q.startswith("What is the relation between the "):
            subj, obj = q.removeprefix("What is the relation between the ").removesuffix("?").split(" and the ")
            truth = {p for s_, p, o_ in held if (s_, o_) == (subj, obj)}
            wrong = {p for s_, p, o_ in always if (s_, o_) == (subj, obj)}
            forms["predicate"] += 1
        elif q.startswith("Which object is "):
            pred, obj = q.removeprefix("Which object is ").removesuffix("?").rsplit(" the ", 1)
            truth = {s_ for s_, p, o_ in held if (p, o_) == (pred, obj)}
            wrong = {s_ for s_, p, o_ in always if (p, o_) == (pred, obj)}
            forms["subject"] += 1
        else:
            subj, pred = q.removeprefix("What is the ").removesuffix("?").split(" ", 1)
            truth = {o_ for s_, p, o_ in held if (s_, p) == (subj, pred)}
            wrong = {o_ for s_, p, o_ in always if (s_, p) == (subj, pred)}
            forms["object"] += 1
        assert r["answer"] in truth, r
        assert len(r["options"]) >= 2 and r["options"][r["answer_index"]] == r["answer"]
        assert len(set(r["options"])) == len(r["options"])
        assert not wrong & (set(r["options"]) - {r["answer"]}), r  # no distractor is true as well
    assert len(forms) == 3
