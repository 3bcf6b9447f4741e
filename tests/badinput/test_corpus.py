"""The bad-input corpus: every verb fed broken files and options, as a hostile user would.

Each case builds its input in a fresh folder, runs the verb in-process (the typer app, as the
``stepkit`` script does) and asserts: the exit code; that the message names the input (its file
name or option) and the problem; that no traceback is printed and no exception escapes; and, for
batch verbs, that the good items beside the bad one are still written.
"""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from stepkit.cli import app


@dataclass
class Case:
    """``build(tmp, world) -> argv``; the run must exit ``code`` with every string of ``says`` in its output."""

    id: str
    build: Callable[[Path, Path], list[str]]
    code: int
    says: tuple[str, ...]
    kept: Callable[[Path], None] | None = None  # asserts the good items were written
    marks: tuple = field(default_factory=tuple)


CASES: list[Case] = []


def case(id: str, code: int, *says: str, kept: Callable[[Path], None] | None = None):
    """Register the decorated builder as a corpus case."""
    def add(build):
        CASES.append(Case(id, build, code, says, kept))
        return build
    return add


# --- inputs -----------------------------------------------------------------------------------

def a_graph(world: Path) -> dict:
    """A valid graph document of the world."""
    return json.loads(sorted((world / "graphs").glob("*.json"))[0].read_text())


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def video_bytes(world: Path) -> bytes:
    return sorted((world / "videos").glob("*.mp4"))[0].read_bytes()


def audio_only(path: Path) -> Path:
    """A real media file with an audio stream and no video stream."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


BAD_VIDEOS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    # name -> (make(tmp, world) -> path, a word of the expected problem)
    "zero-byte": (lambda t, w: write(t / "zero.mp4", b""), "empty"),
    "text-as-video": (lambda t, w: write(t / "notes.mp4", "this is a shopping list, not a video\n"), "not a readable video"),
    "truncated-head": (lambda t, w: write(t / "cut.mp4", video_bytes(w)[:300]), "not a readable video"),
    "random-bytes": (lambda t, w: write(t / "noise.mp4", bytes(range(256)) * 64), "not a readable video"),
    "no-video-stream": (lambda t, w: audio_only(t / "sound.mkv"), "no video stream"),
    "huge-y4m": (lambda t, w: write(t / "huge.y4m", b"YUV4MPEG2 W100000 H100000 F30:1 Ip C420jpeg\nFRAME\n" + bytes(64)),
                 "100000x100000"),
    "png-as-mp4": (lambda t, w: write(t / "still.mp4", b"\x89PNG\r\n\x1a\n" + bytes(40)), "decod"),
}

for _name, (_make, _word) in BAD_VIDEOS.items():
    def _probe(t, w, _make=_make):
        return ["video", "probe", str(_make(t, w))]

    def _split(t, w, _make=_make):
        return ["video", "split", str(_make(t, w)), "--mode", "uniform"]

    case(f"video-probe-{_name}", 1, _word)(_probe)
    case(f"video-split-{_name}", 1, _word)(_split)

    def _induce(t, w, _make=_make):
        vids = t / "videos"
        shutil.copytree(w / "videos", vids)
        bad = _make(t, w)
        shutil.move(str(bad), vids / bad.name)
        return ["induce", str(vids), "--out", str(t / "out")]

    def _kept_graphs(t):
        assert len([p for p in (t / "out").glob("*.json") if p.name != "summary.json"]) == 3
        s = json.loads((t / "out" / "summary.json").read_text())
        assert s["failed"] == 1 and s["induced"] == 3

    if _name != "huge-y4m":  # .y4m is not among the suffixes a folder is searched for
        case(f"induce-batch-{_name}", 2, _word, kept=_kept_graphs)(_induce)

    def _induce_one(t, w, _make=_make):
        return ["induce", str(_make(t, w)), "--out", str(t / "out")]

    case(f"induce-only-{_name}", 1, _word, "0 induced")(_induce_one)


@case("video-probe-missing", 1, "nope.mp4", "no such")
def _(t, w):
    return ["video", "probe", str(t / "nope.mp4")]


@case("video-probe-folder", 1, "is a folder")
def _(t, w):
    (t / "clip.mp4").mkdir()
    return ["video", "probe", str(t / "clip.mp4")]


# --- induce options and folders ---------------------------------------------------------------

@case("induce-folder-named-like-a-video", 1, "dir.mp4", "no video files")
def _(t, w):
    (t / "dir.mp4").mkdir()
    return ["induce", str(t / "dir.mp4"), "--out", str(t / "out")]


@case("induce-missing-source", 1, "gone", "no such")
def _(t, w):
    return ["induce", str(t / "gone"), "--out", str(t / "out")]


@case("induce-unknown-backend", 1, "magic", "unknown inducer backend")
def _(t, w):
    return ["induce", str(w / "videos"), "--out", str(t / "out"), "--backend", "magic"]


@case("induce-model-without-vlm", 1, "--model", "vlm")
def _(t, w):
    return ["induce", str(w / "videos"), "--out", str(t / "out"), "--model", "x"]


@case("induce-out-is-a-file", 1, "occupied", "is a file")
def _(t, w):
    return ["induce", str(w / "videos"), "--out", str(write(t / "occupied", "x"))]


YAML_CONFIGS = {
    "unknown-key": ("min_runz: 3\n", "min_runz"),
    "wrong-type": ("min_run: three\n", "min_run"),
    "nan-float": ("hand_tol: .nan\n", "hand_tol"),
    "bool-for-int": ("gap_fill: true\n", "gap_fill"),
    "list-top-level": ("- min_run\n- 3\n", "mapping"),
    "syntax-error": ("min_run: [3\n", "invalid YAML"),
    "python-tag": ("min_run: !!python/object/apply:os.system ['echo pwned']\n", "constructor"),
    "non-utf8": (b"min_run: \xff\xfe3\n", "UTF-8"),
    "deep": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
    "binary-junk": (bytes(range(256)), "UTF-8"),
}

for _name, (_text, _word) in YAML_CONFIGS.items():
    def _cfg(t, w, _text=_text):
        return ["induce", str(w / "videos"), "--out", str(t / "out"), "--config", str(write(t / "opts.yaml", _text))]

    case(f"induce-config-{_name}", 1, "opts.yaml", _word)(_cfg)


@case("induce-config-missing", 1, "absent.yaml", "no such")
def _(t, w):
    return ["induce", str(w / "videos"), "--out", str(t / "out"), "--config", str(t / "absent.yaml")]


# --- graphs: validate, show, generate ---------------------------------------------------------

def _mutate(fn):
    def make(t, w):
        d = a_graph(w)
        fn(d)
        return json.dumps(d)
    return make


def _relation(d):
    return d["relations"][0]


BAD_GRAPHS: dict[str, tuple[Callable[[Path, Path], str | bytes], str]] = {
    "truncated": (lambda t, w: json.dumps(a_graph(w))[:200], "invalid JSON"),
    "zero-byte": (lambda t, w: "", "empty"),
    "non-utf8": (lambda t, w: b'{"video_id": "\xff\xfe"}', "UTF-8"),
    "nested-100000": (lambda t, w: "[" * 100_000 + "]" * 100_000, "nested more than"),
    "json-array": (lambda t, w: "[1, 2, 3]", "expected a JSON object"),
    "missing-objects": (_mutate(lambda d: d.pop("objects")), "unknown object id"),
    "missing-fps": (_mutate(lambda d: d.pop("fps")), "fps"),
    "nan-time": (lambda t, w: json.dumps(a_graph(w)).replace('"t0": 0.0', '"t0": NaN', 1), "NaN"),
    "inf-time": (lambda t, w: json.dumps(a_graph(w)).replace('"t1": ', '"t1": Infinity, "x": ', 1), "Infinity"),
    "t1-before-t0": (_mutate(lambda d: _relation(d).update(t0=3.0, t1=1.0)), "ends before it starts"),
    "dangling-object": (_mutate(lambda d: _relation(d).update(object="ghost")), "unknown object id 'ghost'"),
    "duplicate-id": (_mutate(lambda d: d["objects"].append(dict(d["objects"][0]))), "duplicate id"),
    "schema-999": (_mutate(lambda d: d.update(schema_version="999")), "unknown schema version '999'"),
    "schema-number": (_mutate(lambda d: d.update(schema_version=1.0)), 'write "1.0" in quotes'),
    "fps-string": (_mutate(lambda d: d.update(fps="fast")), "fps"),
    "negative-duration": (_mutate(lambda d: d.update(duration=-4)), "duration"),
    "fifty-megabytes": (lambda t, w: "[" + ",".join(["1234567.0"] * 5_000_000) + "]", "expected a JSON object"),
}

for _name, (_make, _word) in BAD_GRAPHS.items():
    def _validate(t, w, _make=_make):
        return ["graph", "validate", str(write(t / "bad.json", _make(t, w)))]

    case(f"graph-validate-{_name}", 1, "bad.json", _word)(_validate)

    def _generate(t, w, _make=_make):
        graphs = t / "graphs"
        shutil.copytree(w / "graphs", graphs)
        write(graphs / "bad.json", _make(t, w))
        return ["generate", str(graphs), "--out", str(t / "qa"), "--per-video", "3"]

    def _kept_records(t):
        lines = (t / "qa" / "qa.jsonl").read_text().splitlines()
        assert lines and {json.loads(x)["video_id"] for x in lines} <= {p.stem for p in (t / "graphs").glob("world-*.json")}
        s = json.loads((t / "qa" / "summary.json").read_text())
        assert [Path(f["path"]).name for f in s["failed"]] == ["bad.json"]

    case(f"generate-batch-{_name}", 2, "bad.json", _word, kept=_kept_records)(_generate)

for _name in ("truncated", "nested-100000", "json-array", "t1-before-t0", "schema-number"):
    _make, _word = BAD_GRAPHS[_name]

    def _show(t, w, _make=_make):
        return ["graph", "show", str(write(t / "bad.json", _make(t, w)))]

    case(f"graph-show-{_name}", 1, "bad.json", _word)(_show)


@case("generate-only-bad-graphs", 1, "no records written", "1 of 1 graph files failed")
def _(t, w):
    write(t / "graphs" / "bad.json", "[1, 2, 3]")
    return ["generate", str(t / "graphs"), "--out", str(t / "qa")]


@case("generate-empty-folder", 1, "empty", "no graph files")
def _(t, w):
    (t / "empty").mkdir()
    return ["generate", str(t / "empty"), "--out", str(t / "qa")]


@case("generate-per-video-zero", 1, "--per-video", "at least 1")
def _(t, w):
    return ["generate", str(w / "graphs"), "--out", str(t / "qa"), "--per-video", "0"]


@case("generate-bad-steps", 1, "9", "outside 1..8")
def _(t, w):
    return ["generate", str(w / "graphs"), "--out", str(t / "qa"), "--steps", "9:1"]


@case("generate-negative-answer-excess", 1, "--answer-excess", "0 or more")
def _(t, w):
    return ["generate", str(w / "graphs"), "--out", str(t / "qa"), "--answer-excess", "-1"]


@case("generate-bad-answer-excess-types", 1, "--answer-excess-types", "unknown question type")
def _(t, w):
    return ["generate", str(w / "graphs"), "--out", str(t / "qa"), "--answer-excess-types", "actions"]


@case("generate-bad-format", 1, "--format", "unknown format")
def _(t, w):
    return ["generate", str(w / "graphs"), "--out", str(t / "qa"), "--format", "docx"]


for _name in ("truncated", "json-array", "nested-100000"):
    _make, _word = BAD_GRAPHS[_name]

    def _score(t, w, _make=_make):
        pred = t / "pred"
        shutil.copytree(w / "graphs", pred)
        write(pred / sorted(p.name for p in pred.glob("world-*.json"))[0], _make(t, w))
        return ["graph", "score", str(pred), str(w / "graphs")]

    case(f"graph-score-{_name}", 1, "world-s0-000.json", _word)(_score)


@case("graph-score-missing-gt", 1, "nothing", "no such")
def _(t, w):
    return ["graph", "score", str(w / "graphs"), str(t / "nothing")]


# --- Q/R/A files: verify, show, export, train, eval -------------------------------------------

@pytest.fixture(scope="session")
def good_qa(world, tmp_path_factory) -> Path:
    """qa.jsonl generated from the world's graphs."""
    out = tmp_path_factory.mktemp("badinput-qa") / "qa"
    r = CliRunner().invoke(app, ["generate", str(world / "graphs"), "--out", str(out), "--per-video", "3"])
    assert r.exit_code == 0, r.output
    return out / "qa.jsonl"


def _qa_lines(w: Path) -> list[dict]:
    return [json.loads(x) for x in (w.parent / "_qa" / "qa.jsonl").read_text().splitlines()]


def _qa_with(change: Callable[[list[str]], list[str]]):
    def make(t, w):
        lines = (w.parent / "_qa" / "qa.jsonl").read_text().splitlines()
        return "\n".join(change(lines)) + "\n"
    return make


def _edit_first(fn):
    def change(lines):
        d = json.loads(lines[0])
        fn(d)
        return [json.dumps(d)] + lines[1:]
    return _qa_with(change)


BAD_QA: dict[str, tuple[Callable[[Path, Path], str | bytes], str]] = {
    "broken-line": (_qa_with(lambda ls: ls[:1] + ['{"id": "x", "question": '] + ls[1:]), "qa.jsonl:2"),
    "non-utf8": (lambda t, w: b'{"id": "\xff"}\n', "UTF-8"),
    "json-array-line": (_qa_with(lambda ls: ["[1, 2, 3]"] + ls), "JSON object"),
    "missing-question": (_edit_first(lambda d: d.pop("question")), "question"),
    "schema-999": (_edit_first(lambda d: d.update(schema_version=999)), "schema_version"),
    "schema-number": (_edit_first(lambda d: d.update(schema_version=1.0)), 'write "1.0" in quotes'),
    "steps-string": (_edit_first(lambda d: d.update(steps="three")), "steps"),
    "window-reversed": (_edit_first(lambda d: d.update(window=[3.0, 1.0])), "window"),
    "nan-window": (_qa_with(lambda ls: [ls[0][:-1] + ', "window": [NaN, 1.0]}'] + ls[1:]), "NaN"),
    "options-not-strings": (_edit_first(lambda d: d.update(options=[1, 2])), "options"),
}


@pytest.fixture
def qa_src(good_qa, world):
    """Makes ``world.parent/_qa`` the generated Q/R/A folder (the builders read it from there)."""
    dst = world.parent / "_qa"
    if not dst.exists():
        shutil.copytree(good_qa.parent, dst)
    return dst


for _name, (_make, _word) in BAD_QA.items():
    def _verify(t, w, _make=_make):
        return ["qa", "verify", str(write(t / "qa" / "qa.jsonl", _make(t, w))), str(w / "graphs")]

    def _show(t, w, _make=_make):
        return ["qa", "show", str(write(t / "qa" / "qa.jsonl", _make(t, w))), "--n", "100"]

    def _export(t, w, _make=_make):
        return ["qa", "export", str(write(t / "qa" / "qa.jsonl", _make(t, w))), "--format", "llava",
                "--out", str(t / "exp")]

    def _train(t, w, _make=_make):
        return ["train", str(write(t / "qa" / "qa.jsonl", _make(t, w))), "--model", str(t / "model"),
                "--out", str(t / "run"), "--max-steps", "1"]

    def _eval(t, w, _make=_make):
        return ["eval", "--backend", "tiny", "--benchmark", "stepkit", "--data",
                str(write(t / "qa" / "qa.jsonl", _make(t, w))), "--videos", str(w / "videos"), "--out", str(t / "ev")]

    for _verb, _fn in (("verify", _verify), ("show", _show), ("export", _export), ("train", _train), ("eval", _eval)):
        CASES.append(Case(f"qa-{_verb}-{_name}", _fn, 1, ("qa.jsonl", _word)))


@case("qa-verify-dangling-video", 1, "no graph")
def _(t, w):
    lines = (w.parent / "_qa" / "qa.jsonl").read_text().splitlines()
    d = json.loads(lines[0])
    d["video_id"] = "ghost-video"
    return ["qa", "verify", str(write(t / "qa" / "qa.jsonl", json.dumps(d) + "\n")), str(w / "graphs")]


@case("train-zero-byte-qa", 1, "qa.jsonl", "no Q/R/A records")
def _(t, w):
    return ["train", str(write(t / "qa" / "qa.jsonl", "")), "--model", str(t / "m"), "--out", str(t / "run")]


@case("qa-export-missing", 1, "none.jsonl", "no such")
def _(t, w):
    return ["qa", "export", str(t / "none.jsonl"), "--format", "llava"]


# --- imports ----------------------------------------------------------------------------------

STAR_QUESTIONS = [{"qid": "Interaction_T1_1", "question": "What did the person do?", "a0": "sat", "a1": "ran",
                   "a2": "ate", "a3": "slept", "answer": "sat", "video": "ABC12", "start": 1.0, "end": 5.0,
                   "num_option": 4}]


@case("import-star-question-file", 1, "val_dev.json", "question file", "situations")
def _(t, w):
    return ["import", "star", str(write(t / "val_dev.json", json.dumps(STAR_QUESTIONS))), "--out", str(t / "g")]


@case("import-star-truncated", 1, "star.json", "invalid JSON")
def _(t, w):
    return ["import", "star", str(write(t / "star.json", '[{"situations": {')), "--out", str(t / "g")]


@case("import-star-nested", 1, "star.json", "nested more than")
def _(t, w):
    return ["import", "star", str(write(t / "star.json", "[" * 50_000 + "]" * 50_000)), "--out", str(t / "g")]


@case("import-star-scalar", 1, "star.json", "STAR record")
def _(t, w):
    return ["import", "star", str(write(t / "star.json", "42")), "--out", str(t / "g")]


@case("import-star-empty-folder", 1, "src", "no *.json files")
def _(t, w):
    (t / "src").mkdir()
    return ["import", "star", str(t / "src"), "--out", str(t / "g")]


CHARADES_HEAD = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
CHARADES_GOOD = 'GOOD1,S1,Kitchen,6,7,Yes,A person cooks.,food;stove,Cooks.,c092 1.0 5.0,10.0\n'


def _kept_charades(t):
    assert (t / "g" / "GOOD1.json").is_file()


for _name, (_row, _word) in {
    "nan-time": ("BAD01,S1,Kitchen,6,7,Yes,x,food,x,c092 nan 5.0,10.0\n", "BAD01"),
    "inf-length": ("BAD01,S1,Kitchen,6,7,Yes,x,food,x,c092 1.0 5.0,inf\n", "BAD01"),
    "unknown-class": ("BAD01,S1,Kitchen,6,7,Yes,x,food,x,c999 1.0 5.0,10.0\n", "c999"),
    "text-times": ("BAD01,S1,Kitchen,6,7,Yes,x,food,x,c092 one two,10.0\n", "non-numeric"),
    "no-length": ("BAD01,S1,Kitchen,6,7,Yes,x,food,x,c092 1.0 5.0,\n", "length"),
}.items():
    def _charades(t, w, _row=_row):
        return ["import", "charades", str(write(t / "c.csv", CHARADES_HEAD + CHARADES_GOOD + _row)), "--out", str(t / "g")]

    case(f"import-charades-{_name}", 1, _word, kept=_kept_charades)(_charades)


@case("import-charades-missing-columns", 1, "c.csv", "length")
def _(t, w):
    return ["import", "charades", str(write(t / "c.csv", "id,actions\nX,c092 1 2\n")), "--out", str(t / "g")]


@case("import-charades-non-utf8", 1, "c.csv", "UTF-8")
def _(t, w):
    return ["import", "charades", str(write(t / "c.csv", CHARADES_HEAD.encode() + b"\xff\xfe\n")), "--out", str(t / "g")]


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@case("import-action-genome-malicious-pickle", 1, "object_bbox_and_relationship.pkl", "refus")
def _(t, w):
    write(t / "ag" / "object_bbox_and_relationship.pkl", pickle.dumps({"v.mp4/000001.png": [_Evil()]}))
    return ["import", "action-genome", str(t / "ag"), "--out", str(t / "g")]


@case("import-action-genome-text-as-pickle", 1, "object_bbox_and_relationship.pkl", "pickle")
def _(t, w):
    write(t / "ag" / "object_bbox_and_relationship.pkl", "not a pickle at all\n")
    return ["import", "action-genome", str(t / "ag"), "--out", str(t / "g")]


# --- training ---------------------------------------------------------------------------------

TRAIN_CONFIGS = {
    "unknown-field": ('{"max_stepz": 3}', "max_stepz"),
    "wrong-type": ('{"max_steps": "many"}', "max_steps"),
    "array": ("[1, 2]", "object"),
    "nan": ('{"learning_rate": NaN}', "NaN"),
    "truncated": ('{"max_steps": ', "invalid JSON"),
    "non-utf8": (b'{"lr": "\xff"}', "UTF-8"),
}

for _name, (_text, _word) in TRAIN_CONFIGS.items():
    def _tcfg(t, w, _text=_text):
        return ["train", str(w.parent / "_qa"), "--model", str(t / "m"), "--out", str(t / "run"), "--config",
                str(write(t / "cfg.json", _text))]

    case(f"train-config-{_name}", 1, "cfg.json", _word)(_tcfg)


@case("train-corrupt-config-json", 1, "config.json", "invalid JSON")
def _(t, w):
    write(t / "m" / "config.json", "{")
    return ["train", str(w.parent / "_qa"), "--model", str(t / "m"), "--out", str(t / "run")]


@case("train-resume-nothing", 1, "nothing to resume")
def _(t, w):
    return ["train", "--out", str(t / "run"), "--resume"]


# --- world, models, selftrain, eval options ---------------------------------------------------

for _name, (_opts, _word) in {
    "size-huge": (["--size", "100000x100000"], "at most"),
    "size-text": (["--size", "big"], "WIDTHxHEIGHT"),
    "size-odd": (["--size", "161x97"], "even"),
    "fps-nan": (["--fps", "nan"], "fps"),
    "duration-nan": (["--duration", "nan"], "duration"),
    "duration-range-text": (["--duration", "a-b"], "--duration"),
}.items():
    def _world(t, w, _opts=_opts):
        return ["world", "--out", str(t / "w"), "--videos", "1", *_opts]

    case(f"world-{_name}", 1, _word)(_world)


@case("models-tiny-unknown-family", 1, "gpt-99")
def _(t, w):
    return ["models", "tiny", "--family", "gpt-99", "--out", str(t / "m")]


SELFTRAIN = {
    "unknown-key": ("rounds: 1\nworld: {videos: 1}\nroundz: 2\n", "roundz"),
    "python-tag": ("rounds: !!python/object/apply:os.system ['echo pwned']\n", "constructor"),
    "list": ("- 1\n- 2\n", "mapping"),
    "syntax": ("rounds: [1\n", "invalid YAML"),
    "wrong-type": ("rounds: many\nworld: {videos: 1}\n", "rounds"),
}

for _name, (_text, _word) in SELFTRAIN.items():
    def _st(t, w, _text=_text):
        return ["selftrain", "--config", str(write(t / "st.yaml", _text)), "--out", str(t / "run")]

    case(f"selftrain-config-{_name}", 1, "st.yaml", _word)(_st)


@case("eval-unknown-backend", 1, "--backend", "bogus", "unknown backend")
def _(t, w):
    return ["eval", "--backend", "bogus", "--benchmark", "stepkit", "--data", str(w.parent / "_qa"), "--out",
            str(t / "ev")]


@case("eval-unknown-benchmark", 1, "nosuch")
def _(t, w):
    return ["eval", "--backend", "tiny", "--benchmark", "nosuch", "--data", str(w.parent / "_qa"), "--out",
            str(t / "ev")]


@case("eval-missing-data", 1, "missing.jsonl")
def _(t, w):
    return ["eval", "--backend", "tiny", "--benchmark", "stepkit", "--data", str(t / "missing.jsonl"), "--out",
            str(t / "ev")]


@case("pretrain-vision-missing-graphs", 1, "no graph files")
def _(t, w):
    (t / "empty").mkdir()
    return ["pretrain-vision", str(t / "empty"), "--model", str(t), "--out", str(t / "pv")]


@case("pretrain-vision-model-not-a-folder", 1, "not a model folder")
def _(t, w):
    return ["pretrain-vision", str(w / "graphs"), "--model", str(t / "nosuch"), "--out", str(t / "pv")]


@case("pretrain-vision-zero-steps", 1, "steps")
def _(t, w):
    return ["pretrain-vision", str(w / "graphs"), "--model", str(t), "--out", str(t / "pv"), "--steps", "0"]


# --- the runner -------------------------------------------------------------------------------

def test_the_corpus_is_large_and_covers_every_verb():
    assert len(CASES) >= 90, len(CASES)
    verbs = {c.id.split("-")[0] for c in CASES}
    assert {"video", "induce", "graph", "generate", "qa", "import", "train", "world", "models", "selftrain",
            "eval"} <= verbs
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clean_error(c: Case, tmp_path: Path, world: Path, qa_src: Path):
    argv = c.build(tmp_path, world)
    res = CliRunner().invoke(app, argv, catch_exceptions=True)
    out = res.output
    assert "Traceback" not in out, out
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == c.code, f"exit {res.exit_code}, expected {c.code}:\n{out}"
    # rich wraps messages at the terminal width: at a space, or inside a word longer than a line
    spaced, joined = " ".join(out.lower().split()), out.lower().replace("\n", "")
    for word in c.says:
        assert word.lower() in spaced or word.lower() in joined, f"{word!r} not in:\n{out}"
    if c.kept is not None:
        c.kept(tmp_path)
