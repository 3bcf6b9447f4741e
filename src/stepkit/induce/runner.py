"""Run an inducer over a folder of videos: one graph per video, a summary, failures recorded, resumable.

Layout of the output folder::

    GRAPHS/<video_id>.json     one STSG per video (written atomically)
    GRAPHS/summary.json        counts, per-video seconds, failures with reasons, the backend config
    GRAPHS/.manifest.jsonl     one line per finished video: input hash + config hash → graph

A rerun skips every video whose manifest line matches its current content hash and the inducer's
config hash (and whose graph file is still there), so an interrupted run loses nothing.

Several videos can be in flight at once (threads here, or Ray tasks elsewhere: see
:mod:`stepkit.induce.executors`); this process alone writes the folder, and every graph depends
only on its own video, so the graphs do not depend on how many ran at once or where.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from stepkit.data.videos import normalise
from stepkit.errors import ConfigError, StepkitError
from stepkit.induce.base import Inducer
from stepkit.io import atomic_write_json, dumps_json, sha256_file, sha256_text

MANIFEST = ".manifest.jsonl"
SUMMARY = "summary.json"


@dataclass
class VideoResult:
    """What happened to one video (``cost``: requests, tokens and cache hits it took, where a model ran)."""

    video_id: str
    path: str
    status: str  # "done" | "skipped" (already done) | "failed"
    seconds: float = 0.0
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    cost: dict[str, int] = field(default_factory=dict)


def list_videos(src: str | os.PathLike) -> list[Path]:
    """The videos to process: ``src`` itself if a file, else the video files directly in the folder, sorted."""
    from stepkit.video import VIDEO_SUFFIXES

    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ConfigError(f"{src}: no such video file or folder")
    return sorted(
        p for p in src.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
    )


def video_ids(paths: list[Path]) -> dict[Path, str]:
    """A unique id per video: the file stem, plus the extension where two files share a stem (or for "summary")."""
    stems: dict[str, int] = {}
    for p in paths:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    reserved = {Path(SUMMARY).stem}  # a video called summary.mp4 must not overwrite summary.json
    return {
        p: p.stem if stems[p.stem] == 1 and p.stem not in reserved else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
        for p in paths
    }


def config_key(inducer: Inducer) -> dict[str, Any]:
    """The backend name and config, as recorded in summaries and hashed into the resume key."""
    return {"backend": inducer.name, "config": inducer.config()}


def read_manifest(out: Path) -> dict[str, dict[str, Any]]:
    """The last manifest line per video id (a torn last line from a kill is ignored)."""
    path = out / MANIFEST
    entries: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return entries
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "video_id" in row:
            entries[row["video_id"]] = row
    return entries


def _append_manifest(out: Path, row: dict[str, Any]) -> None:
    """Append one line with a single write + fsync (a line is whole or, if cut by a kill, skipped)."""
    data = (json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(out / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _counts(graph) -> dict[str, int]:
    return {
        "objects": len(graph.objects),
        "relations": len(graph.relations),
        "actions": len(graph.actions),
        "clips": len(graph.clips),
        "references": len(graph.references),
    }


@dataclass
class Job:
    """One video to induce: its path, id and content hash."""

    path: Path
    video_id: str
    input_hash: str


@dataclass
class Outcome:
    """What an executor hands back for a job: the graph (None when it failed) and the video's result."""

    job: Job
    graph: Any
    result: VideoResult


def induce_one(inducer: Inducer, job: Job) -> Outcome:
    """Induce one video, catching its failure; counts what its model calls cost."""
    from stepkit.models.usage import metering

    t0 = time.perf_counter()
    graph = None
    with metering() as meter:
        try:
            graph = inducer.induce(job.path, job.video_id)
            res = VideoResult(job.video_id, str(job.path), "done", counts=_counts(graph))
        except StepkitError as exc:
            res = VideoResult(job.video_id, str(job.path), "failed", reason=str(exc))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # an inducer bug must not sink the whole batch
            res = VideoResult(job.video_id, str(job.path), "failed", reason=f"{job.path}: {type(exc).__name__}: {exc}")
    res.seconds = round(time.perf_counter() - t0, 3)
    res.cost = meter.to_dict()
    return Outcome(job, graph, res)


class ThreadExecutor:
    """Videos induced in this process: one at a time, or several at once on threads.

    With ``workers`` > 1 a new video starts only while the inducer's backend has a free request
    slot (``saturated()`` is false) and at most ``starting`` videos are still splitting, so just
    enough videos are open to keep the server's batch full; a stage of one video never waits for
    another video. Results come back in completion order; the runner writes them in that order
    but every graph depends only on its own video, so the output does not depend on ``workers``.
    """

    name = "threads"

    def __init__(self, workers: int = 1, starting: int | None = None) -> None:
        self.workers = max(1, int(workers))
        self.starting = max(1, starting if starting is not None else min(4, os.cpu_count() or 1))

    def run(self, inducer: Inducer, jobs: list[Job]) -> Iterator[Outcome]:
        """Yield one :class:`Outcome` per job."""
        if self.workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield induce_one(inducer, job)
            return
        import contextvars
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from stepkit.models.usage import Usage, metering

        saturated = getattr(inducer, "saturated", None)
        meters: dict[Any, Usage] = {}

        def task(job: Job, meter: Usage) -> Outcome:
            with metering(meter):
                return induce_one(inducer, job)

        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="stepkit-induce") as pool:
            active: set = set()
            queue = list(jobs)
            while queue or active:
                while queue and len(active) < self.workers:
                    splitting = sum(1 for f in active if meters[f].requests == 0)
                    busy = callable(saturated) and saturated()
                    if active and (busy or splitting >= self.starting):
                        break
                    meter = Usage()
                    fut = pool.submit(contextvars.copy_context().run, task, queue.pop(0), meter)
                    meters[fut] = meter
                    active.add(fut)
                done, _ = wait(active, timeout=0.02, return_when=FIRST_COMPLETED)
                for fut in done:
                    active.discard(fut)
                    meters.pop(fut, None)
                    yield fut.result()


def run_induce(
    videos: str | os.PathLike,
    out: str | os.PathLike,
    inducer: Inducer,
    *,
    on_start: Callable[[int], None] | None = None,
    on_video: Callable[[VideoResult], None] | None = None,
    executor: Any | None = None,
) -> dict[str, Any]:
    """Induce a graph for every video under ``videos`` into ``out``; returns (and writes) the summary.

    Per-video failures (unreadable video, invalid graph) are recorded and the run goes on.
    ``on_start(n)`` and ``on_video(result)`` report progress. ``executor`` runs the videos
    (default: a :class:`ThreadExecutor` as wide as the inducer's ``parallel_videos``; or
    :class:`stepkit.induce.executors.RayExecutor`); only this process writes into ``out``.
    """
    from stepkit.graph.serialize import save_graph

    out = Path(out)
    paths = list_videos(videos)
    ids = video_ids(paths)
    out.mkdir(parents=True, exist_ok=True)
    key = config_key(inducer)
    config_hash = sha256_text(dumps_json(key))
    manifest = read_manifest(out)
    if on_start:
        on_start(len(paths))
    results: dict[str, VideoResult] = {}
    t_run = time.perf_counter()
    jobs: list[Job] = []
    for path in paths:
        vid = ids[path]
        graph_path = out / f"{vid}.json"
        try:
            input_hash = sha256_file(path)
        except OSError as exc:
            res = VideoResult(vid, str(path), "failed", reason=f"{path}: cannot read file: {exc.strerror or exc}")
            results[vid] = res
            if on_video:
                on_video(res)
            continue
        prev = manifest.get(vid)
        if (
            prev is not None
            and prev.get("status") == "done"
            and prev.get("input_sha256") == input_hash
            and prev.get("config_sha256") == config_hash
            and graph_path.is_file()
            and sha256_file(graph_path) == prev.get("graph_sha256")
        ):
            res = VideoResult(vid, str(path), "skipped", seconds=float(prev.get("seconds", 0.0)),
                              counts=dict(prev.get("counts", {})))
            results[vid] = res
            if on_video:
                on_video(res)
        else:
            jobs.append(Job(path, vid, input_hash))
    if jobs:
        prepare = getattr(inducer, "prepare", None)
        if callable(prepare) and getattr(executor, "driver_prepare", True):  # fails here once, not once per video
            prepare()
        if executor is None:
            executor = ThreadExecutor(int(getattr(inducer, "parallel_videos", 1) or 1))
        for outcome in executor.run(inducer, jobs):
            res, job = outcome.result, outcome.job
            if res.status == "done":
                graph_path = out / f"{job.video_id}.json"
                # the one video-path rule (data/videos.py): an absolute path opens from anywhere; the
                # path as given (relative to where `stepkit induce` ran) would not open from the graph
                outcome.graph.video = normalise(job.path)
                try:
                    save_graph(outcome.graph, graph_path)
                except StepkitError as exc:
                    res.status, res.reason, res.counts = "failed", str(exc), {}
                else:
                    _append_manifest(out, {
                        "video_id": job.video_id, "video": str(job.path), "status": "done",
                        "input_sha256": job.input_hash, "config_sha256": config_hash, "graph": graph_path.name,
                        "graph_sha256": sha256_file(graph_path), "seconds": res.seconds, "counts": res.counts,
                    })
            results[job.video_id] = res
            if on_video:
                on_video(res)
    ordered = [results[ids[p]] for p in paths]
    summary = _summary(ordered, key, config_hash, time.perf_counter() - t_run)
    from stepkit.induce.stale import set_aside_stale  # no graph of an earlier config may look current

    summary["set_aside"] = set_aside_stale(out, config_hash, {f["video_id"] for f in summary["failures"]})
    atomic_write_json(out / SUMMARY, summary)
    return summary


def _summary(results: list[VideoResult], key: dict[str, Any], config_hash: str, seconds: float) -> dict[str, Any]:
    from stepkit.models.usage import FIELDS

    totals = {"objects": 0, "relations": 0, "actions": 0, "clips": 0, "references": 0}
    cost = {k: 0 for k in FIELDS}
    for r in results:
        if r.status != "failed":
            for k in totals:
                totals[k] += int(r.counts.get(k, 0))
        for k in FIELDS:
            cost[k] += int(r.cost.get(k, 0))
    ran = [r for r in results if r.status != "skipped"]
    induced = sum(r.status == "done" for r in results)
    cost["videos_run"] = len(ran)
    cost["seconds_per_video"] = round(sum(r.seconds for r in ran) / len(ran), 3) if ran else 0.0
    cost["videos_per_minute"] = round(60.0 * induced / seconds, 3) if induced and seconds > 0 else 0.0
    for k in ("requests", "prompt_tokens", "completion_tokens"):
        cost[f"{k}_per_video"] = round(cost[k] / len(ran), 1) if ran else 0.0
    return {
        "stage": "induce",
        "backend": key["backend"],
        "config": key["config"],
        "config_sha256": config_hash,
        "videos": len(results),
        "induced": induced,
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "totals": totals,
        "cost": cost,
        "seconds": round(seconds, 3),
        "per_video": [asdict(r) for r in results],
        "failures": [{"video_id": r.video_id, "path": r.path, "reason": r.reason} for r in results if r.status == "failed"],
    }


def load_options(config: str | os.PathLike | None) -> dict[str, Any]:
    """Backend options from a YAML (or JSON) mapping file; empty without a file."""
    if config is None:
        return {}
    from stepkit.userfiles import load_yaml

    path = Path(config)
    data = load_yaml(path, what="config file", error=ConfigError, expect=dict, empty={})
    if not all(isinstance(k, str) for k in data):
        raise ConfigError(f"{path}: expected a mapping of backend options (name: value), got {type(data).__name__}")
    return data
