"""Export a stepkit Q/R/A split as an lmms-eval task folder, so any lmms-eval model can be scored on it.

The folder holds ``<task>.yaml`` (the task), ``utils.py`` (``doc_to_visual``, ``doc_to_text``,
``doc_to_target``, ``process_results`` and per-steps-bucket aggregations; standard library only, the
answer extraction of :mod:`stepkit.evaluate.extract` included) and ``<task>.jsonl`` (the data, loaded
by lmms-eval through the ``json`` dataset builder). Copy the folder under ``lmms_eval/tasks/`` or pass
it with ``--include_path``; run with ``--tasks <task>``.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any

from stepkit.errors import ConfigError, DataError
from stepkit.io import atomic_write_jsonl, atomic_write_text

GLUE = '''

# --- lmms-eval glue (written by `stepkit eval export-lmms`) ----------------------------------

VIDEO_ROOT_ENV = "STEPKIT_VIDEO_ROOT"
TASK_DIR = os.path.dirname(os.path.abspath(__file__))
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question with a short phrase."


def doc_to_visual(doc):
    """The video path of a record: absolute as exported (relative ones are relative to this folder);
    a video that is not there is looked for by file name under $STEPKIT_VIDEO_ROOT when it is set."""
    path = doc["video"]
    if not os.path.isabs(path):
        path = os.path.normpath(os.path.join(TASK_DIR, path))
    root = os.environ.get(VIDEO_ROOT_ENV)
    if root and not os.path.isfile(path):
        path = os.path.join(os.path.abspath(root), os.path.basename(path))
    return [path]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """Question (with lettered options for multiple choice) and the answer instruction."""
    kw = lmms_eval_specific_kwargs or {}
    pre = kw.get("pre_prompt", "")
    if doc.get("options"):
        opts = "\\n".join("(%s) %s" % (LETTERS[i], o) for i, o in enumerate(doc["options"]))
        body = "%s\\nOptions:\\n%s" % (doc["question"], opts)
        post = kw.get("post_prompt", MC_INSTRUCTION)
    else:
        body = doc["question"]
        post = kw.get("post_prompt_open", OPEN_INSTRUCTION)
    return pre + body + ("\\n" + post if post else "")


def doc_to_target(doc):
    """The gold answer: its letter for multiple choice, its text otherwise."""
    if doc.get("options") and doc.get("answer_index") is not None:
        return LETTERS[doc["answer_index"]]
    return doc["answer"]


def _bucket(steps):
    if steps is None:
        return "unknown"
    return "1" if steps <= 1 else "2" if steps == 2 else "3+"


def process_results(doc, results):
    """Score one generated answer: accuracy plus the same outcome tagged by steps bucket and type."""
    out = results[0] if results else ""
    if doc.get("options") and doc.get("answer_index") is not None:
        ex = extract_choice(out, list(doc["options"]))
        correct = ex.index is not None and ex.index == doc["answer_index"]
    else:
        correct = open_match(out, doc["answer"])
    tagged = {"correct": float(correct), "bucket": _bucket(doc.get("steps")), "type": doc.get("type")}
    return {"accuracy": float(correct), "acc_steps_1": tagged, "acc_steps_2": tagged, "acc_steps_3plus": tagged}


def _bucket_mean(items, bucket):
    xs = [it["correct"] for it in items if it["bucket"] == bucket]
    return sum(xs) / len(xs) if xs else float("nan")


def aggregate_steps_1(items):
    """Accuracy on 1-step questions."""
    return _bucket_mean(items, "1")


def aggregate_steps_2(items):
    """Accuracy on 2-step questions."""
    return _bucket_mean(items, "2")


def aggregate_steps_3plus(items):
    """Accuracy on questions of 3 or more steps."""
    return _bucket_mean(items, "3+")
'''

YAML_TEMPLATE = """# lmms-eval task written by `stepkit eval export-lmms` from {source}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
task: {task}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: !function utils.doc_to_target
process_results: !function utils.process_results
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  top_p: 1.0
  num_beams: 1
  do_sample: false
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
  - metric: acc_steps_1
    aggregation: !function utils.aggregate_steps_1
    higher_is_better: true
  - metric: acc_steps_2
    aggregation: !function utils.aggregate_steps_2
    higher_is_better: true
  - metric: acc_steps_3plus
    aggregation: !function utils.aggregate_steps_3plus
    higher_is_better: true
lmms_eval_specific_kwargs:
  default:
    pre_prompt: ""
    post_prompt: "{mc_instruction}"
metadata:
  version: 1.0
  source: stepkit
  records: {records}
"""


def utils_source() -> str:
    """The ``utils.py`` text: the extraction module followed by the lmms-eval glue (stdlib only)."""
    from stepkit.evaluate import extract

    src = inspect.getsource(extract)
    # lmms-eval executes utils.py without registering it in sys.modules, where @dataclass cannot
    # resolve postponed (string) annotations: annotations stay eager (Python >= 3.10 syntax)
    src = src.replace("from __future__ import annotations\n", "", 1)
    src = src.replace("import re\n", "import os\nimport re\n", 1)
    return src.rstrip() + "\n" + GLUE


def export_lmms(qa_path: str | os.PathLike, out_dir: str | os.PathLike, *, task: str = "stepkit_qa",
                videos: str | os.PathLike | None = None, max_new_tokens: int = 32) -> dict[str, Any]:
    """Write the lmms-eval task folder for the Q/R/A records at ``qa_path``; returns a summary.

    Each record's video is written as an absolute path: resolved by :mod:`stepkit.data.videos`
    (relative to the Q/R/A file's folder), or with ``videos`` found under that root (missing ones
    fail fast; a relative root is taken from the working directory). ``doc_to_visual`` falls back to
    ``$STEPKIT_VIDEO_ROOT/<file name>`` for a video that is not where the task names it.
    """
    from stepkit.data.videos import VideoResolver, normalise
    from stepkit.evaluate.items import resolve_videos
    from stepkit.evaluate.loaders import annotation_base, load_stepkit
    from stepkit.evaluate.scoring import MC_INSTRUCTION

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", task):
        raise ConfigError(f"task name {task!r}: use letters, digits and underscores, starting with a letter")
    items = load_stepkit(qa_path)
    if videos is not None:
        items = resolve_videos(items, normalise(videos), base=annotation_base(qa_path))
    resolve = VideoResolver(annotation_base(qa_path))
    rows = []
    for it in items:
        if it.options and it.answer_index is None:
            raise DataError(f"{qa_path}: record {it.id} has options but no answer among them")
        video = normalise(it.video_path) if it.video_path else resolve(it.video)
        rows.append({"id": it.id, "video": video, "question": it.question, "answer": it.answer,
                     "options": it.options, "answer_index": it.answer_index, "steps": it.steps, "type": it.type,
                     "window": list(it.window) if it.window else None})
    out = Path(out_dir).resolve()
    data_file = out / f"{task}.jsonl"
    atomic_write_jsonl(data_file, rows)
    atomic_write_text(out / "utils.py", utils_source())
    atomic_write_text(out / f"{task}.yaml", YAML_TEMPLATE.format(
        source=str(qa_path), data_file=str(data_file), task=task, max_new_tokens=max_new_tokens,
        mc_instruction=MC_INSTRUCTION, records=len(rows)))
    return {"task": task, "records": len(rows), "folder": str(out), "yaml": str(out / f"{task}.yaml"),
            "data": str(data_file), "multiple_choice": sum(1 for r in rows if r["options"])}
