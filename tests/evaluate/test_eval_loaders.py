"""Benchmark loaders on the shared reference data, and on malformed inputs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from stepkit.errors import DataError
from stepkit.evaluate.loaders import load_agqa, load_mvbench, load_nextqa, load_star, load_stepkit, star_steps
from stepkit.evaluate.tasks import TASKS, get_task


def test_star_sevila(shared_data: Path) -> None:
    items = load_star(shared_data / "star" / "val_dev.json")
    assert len(items) == 1471
    first = items[0]
    assert first.id == "Interaction_T1_111" and first.video == "8UCK1"
    assert first.options[first.answer_index] == first.answer == "The closet/cabinet."
    assert first.window == (8.7, 13.9) and first.type == "Interaction"
    assert set(Counter(it.type for it in items)) == {"Interaction", "Sequence", "Prediction", "Feasibility"}
    # every template has a step count (derived from its program when no table is published)
    assert all(it.steps is not None and it.steps >= 1 for it in items)
    by_template: dict[str, set[int]] = {}
    for it in items:
        by_template.setdefault(it.meta["template"], set()).add(it.steps)
    assert by_template["Interaction_T1"] == {1}
    assert min(by_template["Sequence_T1"]) >= 3


def test_star_official(shared_data: Path) -> None:
    [item] = load_star(shared_data / "star" / "situation_graph_sample" / "sample_question_Interaction_T1_3772.json")
    assert item.id == "Interaction_T1_3772" and item.video == "WBS4I"
    assert item.options[item.answer_index] == "The closet/cabinet."
    assert item.window == (8.9, 15.5) and item.steps == star_steps(item.question, item.id)
    assert item.meta["program"][0]["function"] == "Situations"


def test_agqa_sample_with_steps(shared_data: Path) -> None:
    items = load_agqa(shared_data / "agqa" / "test_balanced_example.json")  # has a stray trailing '}'
    assert [(it.id, it.steps) for it in items] == [("YSKX3-8", 3), ("YSKX3-9", 1), ("YSKX3-11", 3),
                                                    ("LSKA2-2205", 6)]
    assert items[0].answer == "no" and items[0].type == "verify" and items[0].options is None
    assert items[3].type == "compare" and items[0].meta["semantic"] == "object"


def test_nextqa_all_questions(shared_data: Path) -> None:
    items = load_nextqa(shared_data / "nextqa" / "val.csv")
    assert len(items) == 4996
    assert all(len(it.options) == 5 and it.options[it.answer_index] == it.answer for it in items)
    assert Counter(it.type for it in items).keys() == {"causal", "temporal", "descriptive"}
    assert items[0].meta["subtype"] == "CH" and items[0].video == "4010069381"
    assert len({it.id for it in items}) == 4996


def test_mvbench(tmp_path: Path) -> None:
    task = [{"video": "166583.webm", "question": "What is the action performed by the person in the video?",
             "candidates": ["Not sure", "Scattering something down", "Piling something up"],
             "answer": "Piling something up"},
            {"video": "a/b.mp4", "question": "Q?", "candidates": ["x", "y"], "answer": "x", "start": 1.0, "end": 3.5}]
    (tmp_path / "action_sequence.json").write_text(json.dumps(task))
    items = load_mvbench(tmp_path)
    assert [it.answer_index for it in items] == [2, 0]
    assert items[0].type == "action_sequence" and items[1].window == (1.0, 3.5)
    bad = tmp_path / "bad" / "t.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps([{"video": "v", "question": "q", "candidates": ["a"], "answer": "z"}]))
    with pytest.raises(DataError, match="not one of its candidates"):
        load_mvbench(bad)


def test_stepkit_split(world_split) -> None:
    items = load_stepkit(world_split["qa"])
    assert items and all(it.steps >= 1 and it.type for it in items)
    assert all(it.source == "stepkit" for it in items)
    mc = [it for it in items if it.options]
    assert mc and all(it.options[it.answer_index] == it.answer for it in mc)


def test_malformed_inputs(tmp_path: Path) -> None:
    p = tmp_path / "star.json"
    p.write_text(json.dumps([{"video": "v", "qid": "Interaction_T1_1", "question": "q", "a0": "x", "answer": 3}]))
    with pytest.raises(DataError, match="answer index 3"):
        load_star(p)
    p.write_text("{not json")
    with pytest.raises(DataError, match="invalid JSON"):
        load_agqa(p)
    csvp = tmp_path / "n.csv"
    csvp.write_text("video,question\n1,q\n")
    with pytest.raises(DataError, match="missing column"):
        load_nextqa(csvp)
    with pytest.raises(DataError, match="no such"):
        load_star(tmp_path / "absent.json")


def test_task_registry() -> None:
    assert set(TASKS) == {"star", "agqa", "nextqa", "mvbench", "stepkit"}
    assert get_task("agqa").default_mode == "open"
    from stepkit.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown benchmark"):
        get_task("nope")


def test_star_steps_table(shared_data: Path) -> None:
    from stepkit.evaluate.loaders import star_steps_table

    table = star_steps_table(shared_data / "star" / "val_dev.json")
    assert sum(r["questions"] for r in table.values()) == 1471
    assert all(len(r["steps"]) == 1 for r in table.values())  # one count per template
