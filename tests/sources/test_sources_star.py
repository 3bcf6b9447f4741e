"""STAR situation graphs → STSG, and STAR's programs run by the stepkit executor."""

from __future__ import annotations

import json

import pytest

from stepkit.errors import DataError
from stepkit.graph.serialize import load_graph
from stepkit.graph.validate import graph_problems
from stepkit.sources.star import import_star, records_to_graph
from stepkit.sources.star_programs import answer_record, graph_verbs, translate
from stepkit.sources.vocab import star_actions

SAMPLE = "star/situation_graph_sample/sample_question_Interaction_T1_3772.json"


def _record(situations, **kw):
    rec = {"question_id": "Interaction_T1_0", "video_id": "WBS4I", "start": 0.0, "end": 1.0,
           "situations": situations}
    rec.update(kw)
    return rec


def _sit(pairs=(), labels=(), actions=(), boxes=(), box_labels=()):
    return {"rel_pairs": [list(p) for p in pairs], "rel_labels": list(labels), "actions": list(actions),
            "bbox": [list(b) for b in boxes], "bbox_labels": list(box_labels)}


def test_star_action_vocabulary():
    acts = star_actions()
    assert len(acts) == 111
    assert (acts["a086"].verb, acts["a086"].object) == ("close", "closet/cabinet")
    assert (acts["a001"].verb, acts["a009"].verb, acts["a045"].verb) == ("put down", "sit at", "sit on")
    assert acts["a000"].relation == "holding"
    assert graph_verbs("sit") == ["sit at", "sit on"] and graph_verbs("close") == ["close"]


def test_relations_merge_over_consecutive_keyframes():
    fps = 10.0
    sits = {  # holding the book on frames 10, 20 and 40 but not 30: two intervals
        "000010": _sit([("o000", "o017")], ["r009"], ["a020"], [(0, 0, 5, 5)], ["o017"]),
        "000020": _sit([("o000", "o017")], ["r009"], ["a020"]),
        "000030": _sit([("o000", "o017")], ["r023"]),
        "000040": _sit([("o000", "o017")], ["r009"]),
    }
    g = records_to_graph("VID01", [_record(sits, video_id="VID01", end=4.0)], fps=fps)
    assert graph_problems(g.to_dict()) == []
    held = sorted((r.t0, r.t1) for r in g.relations if r.predicate == "holding")
    assert held == [(1.0, 2.0), (4.0, 4.0)]
    near = [(r.t0, r.t1) for r in g.relations if r.predicate == "near"]
    assert near == [(3.0, 3.0)]
    assert [(a.verb, a.t0, a.t1) for a in g.actions] == [("hold", 1.0, 2.0)]
    book = next(o for o in g.objects if o.label == "book")
    assert [(b.t, b.frame, b.xyxy) for b in book.track] == [(1.0, 10, (0.0, 0.0, 5.0, 5.0))]


def test_malformed_situations_name_the_problem():
    with pytest.raises(DataError, match="unknown STAR relation class 'r999'"):
        records_to_graph("V", [_record({"000001": _sit([("o000", "o001")], ["r999"])})], fps=10)
    with pytest.raises(DataError, match="2 rel_pairs but 1 rel_labels"):
        records_to_graph("V", [_record({"000001": _sit([("o000", "o001")] * 2, ["r000"])})], fps=10)
    with pytest.raises(DataError, match="frame rate unknown"):
        records_to_graph("NOT_A_VIDEO", [_record({"000001": _sit()})])


def test_star_sample_imports_and_executor_answers_it(shared_data, tmp_path):
    summary = import_star(shared_data / SAMPLE, tmp_path / "g")
    assert summary["written"] == 1 and summary["n_failed"] == 0
    g = load_graph(tmp_path / "g" / "WBS4I.json")
    record = json.loads((shared_data / SAMPLE).read_text())
    assert len(g.meta["keyframes"]) == len(record["situations"]) == 7
    assert any(a.verb == "close" for a in g.actions)
    # the slash class is one natural noun in the graph, read back as STAR's class by the programs
    assert not any("/" in o.label for o in g.objects) and "cabinet" in {o.label for o in g.objects}
    assert g.meta["synonyms"]["cabinet"] == ["closet"]
    result = answer_record(record, g)
    assert result["answer"] == "closet/cabinet"
    assert record["choices"][result["pick"]]["choice"] == record["answer"] == "The closet/cabinet."
    assert result["choices"].count(True) == 1


def test_unsupported_star_function_is_named():
    with pytest.raises(DataError, match="'Filter_Weird'"):
        translate([{"function": "Situations", "value_input": []}, {"function": "Filter_Weird", "value_input": []}])


def test_cli_import_star_list_of_records(tmp_path):
    from typer.testing import CliRunner

    from stepkit.cli import app

    recs = [_record({"000010": _sit([("o000", "o017")], ["r009"], ["a020"])}, video_id="VID01", question_id="q1"),
            _record({"000020": _sit([("o000", "o017")], ["r009"])}, video_id="VID01", question_id="q2"),
            _record({"000010": _sit([("o000", "o999")], ["r009"])}, video_id="VID02", question_id="q3")]
    (tmp_path / "star.json").write_text(json.dumps(recs))
    res = CliRunner().invoke(app, ["import", "star", str(tmp_path / "star.json"), "--out", str(tmp_path / "g")])
    assert res.exit_code == 1 and "VID02" in res.output and "o999" in res.output
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert summary["written"] == 1 and list(summary["failed"]) == ["VID02"]
    assert summary["warnings"]["VID01"] == ["frame rate unknown (not in STAR's video_fps); assumed 30.0"]
    g = load_graph(tmp_path / "g" / "VID01.json")
    assert g.meta["keyframes"] == [10, 20]  # both records' keyframes, one graph
