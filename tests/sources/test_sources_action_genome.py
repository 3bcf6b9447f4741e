"""Action Genome pkl → STSG through the restricted unpickler."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from stepkit.errors import DataError
from stepkit.graph.serialize import load_graph
from stepkit.sources.action_genome import import_action_genome, parse_key, safe_load_pickle
from stepkit.sources.vocab import ag_label, ag_objects, ag_relations


def _obj(cls, bbox, att=(), spa=(), con=(), visible=True):
    return {"class": cls, "bbox": bbox, "attention_relationship": list(att), "spatial_relationship": list(spa),
            "contacting_relationship": list(con), "visible": visible, "metadata": {"tag": "x", "set": "train"}}


def _write_ag(folder):
    ann = {  # 30 fps video (not in STAR's fps table): frames 30, 60, 90
        "ZZZZ1.mp4/000030.png": [_obj("cup/glass/bottle", (10.0, 20.0, 30.0, 40.0), ["looking_at"], ["in_front_of"],
                                      ["holding"])],
        "ZZZZ1.mp4/000060.png": [_obj("cupglassbottle", np.array([11.0, 21.0, 30.0, 40.0], dtype=np.float32),
                                      ["not_looking_at"], ["in_front_of"], ["holding"]),
                                 _obj("table", None, [], ["beneath"], [], visible=False)],
        "ZZZZ1.mp4/000090.png": [_obj("cup/glass/bottle", (12.0, 22.0, 30.0, 40.0), ["looking_at"], [], ["holding"])],
    }
    persons = {"ZZZZ1.mp4/000030.png": {"bbox": np.array([[1, 2, 3, 4]], dtype=np.float32), "bbox_size": (480, 270),
                                        "bbox_mode": "xyxy", "bbox_score": np.array([0.9], dtype=np.float32)}}
    with open(folder / "object_bbox_and_relationship.pkl", "wb") as fh:
        pickle.dump(ann, fh, protocol=pickle.HIGHEST_PROTOCOL)
    with open(folder / "person_bbox.pkl", "wb") as fh:
        pickle.dump(persons, fh, protocol=2)


def test_vocab_spelling():
    assert len(ag_objects()) == 36 and "closet/cabinet" in ag_objects()
    assert len(ag_relations()) == 26 and "looking_at" in ag_relations() and "on_the_side_of" in ag_relations()
    assert ag_label("closetcabinet") == ag_label("closet/cabinet") == "closet/cabinet"


def test_parse_key():
    assert parse_key("50N4E.mp4/000682.png") == ("50N4E", 682)
    with pytest.raises(DataError):
        parse_key("no-frame-here")


def test_import_written_pkl(tmp_path):
    _write_ag(tmp_path)
    summary = import_action_genome(tmp_path, tmp_path / "g")
    assert summary["written"] == 1 and summary["n_failed"] == 0
    g = load_graph(tmp_path / "g" / "ZZZZ1.json")
    assert (g.width, g.height) == (480, 270)
    labels = {o.id: o.label for o in g.objects}
    rels = sorted((r.predicate, labels[r.object], r.t0, r.t1) for r in g.relations)
    assert rels == [
        ("beneath", "table", 2.0, 2.0),
        ("holding", "cup", 1.0, 3.0),  # the slash class is named by one natural noun
        ("in_front_of", "cup", 1.0, 2.0),
        ("looking_at", "cup", 1.0, 1.0),  # frame 60 says not_looking_at: a gap
        ("looking_at", "cup", 3.0, 3.0),
    ]
    assert g.meta["synonyms"] == {"cup": ["glass", "bottle"]}
    cup = next(o for o in g.objects if o.label == "cup")
    assert [b.xyxy for b in cup.track][0] == (10.0, 20.0, 40.0, 60.0)
    assert next(o for o in g.objects if o.label == "table").track == []  # not visible
    person = next(o for o in g.objects if o.id == "person")
    assert [b.xyxy for b in person.track] == [(1.0, 2.0, 3.0, 4.0)]


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "object_bbox_and_relationship.pkl"
    with open(bad, "wb") as fh:
        pickle.dump({"V.mp4/000001.png": [_Exploit(marker)]}, fh)
    with pytest.raises(DataError, match="refusing to load .*system"):
        safe_load_pickle(bad)
    with pytest.raises(DataError, match="refusing"):
        import_action_genome(tmp_path, tmp_path / "g")
    assert not marker.exists()


def test_other_globals_and_garbage_are_refused(tmp_path):
    p = tmp_path / "x.pkl"
    with open(p, "wb") as fh:
        pickle.dump({"f": print}, fh)
    with pytest.raises(DataError, match="builtins.print"):
        safe_load_pickle(p)
    p.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="not a readable pickle"):
        safe_load_pickle(p)
    with pytest.raises(DataError, match="no such pickle"):
        safe_load_pickle(tmp_path / "missing.pkl")


def test_cli_import_action_genome(tmp_path):
    from typer.testing import CliRunner

    from stepkit.cli import app

    _write_ag(tmp_path)
    res = CliRunner().invoke(app, ["import", "action-genome", str(tmp_path), "--out", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    assert "1 graphs written, 0 failed" in res.output
    assert load_graph(tmp_path / "g" / "ZZZZ1.json").video_id == "ZZZZ1"
