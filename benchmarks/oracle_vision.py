"""Run a stepkit command with an oracle vision tower: the perception-gate upper bound of a decoder.

A diagnostic for the replication study (docs/replication-notes.md, "Sessions 13–14"). Every visual token
of a Qwen2/2.5-VL model is replaced by what ``stepkit pretrain-vision --head vectors --targets
events`` trains a tower to emit (``oracle_tokens``), read exactly from the video's ground-truth
scene graph: the sum of the decoder's word embeddings of the labels, colours, verbs and predicates
under the token's patch at its frame time (``token_targets``), plus a fixed "nothing here" vector,
at a fixed norm (``--norm``, the towers' ``--vector-norm``). The decoder, chat template, data, trainer and evaluator are
stepkit's own; only the tower's output is perfect. So a run answers: with a tower that had
learned its targets perfectly, does the decoder read the frames?

Two uses (docs/training.md, "the two-tower recipe"): scoring a model under the oracle gives the
perception gate's upper bound for its decoder; training a decoder under it gives a decoder that
reads what a ``vectors`` tower writes, joined to that tower afterwards with ``stepkit models graft``.

How the oracle reaches the model without touching stepkit: the frame readers (``read_clip`` in
training, ``sample_frames`` in evaluation) note which video and time each decoded frame came from;
the video processor writes each merged token's oracle vector into the first patch of the token's
merge group; ``get_video_features`` reads it back instead of running the tower. Everything is
carried inside the batch, so data-loader worker processes need no shared state. Wrong-video
controls stay honest: a question shown another video's frames gets that video's oracle.

    python benchmarks/oracle_vision.py --words-from INIT_MODEL --vocab-graphs TRAIN_GRAPHS \\
        -- train qa_dir --model INIT_MODEL --out RUN ...
    python benchmarks/oracle_vision.py --words-from INIT_MODEL --vocab-graphs TRAIN_GRAPHS \\
        -- eval --backend hf --model RUN ... --videos-from shuffle

Videos must sit in a ``videos/`` folder beside the ``graphs/`` folder holding their graphs (the
layout ``stepkit world`` writes). ``--words-from`` must be the same model for training and
evaluation: the word vectors are fixed, as a pretrained tower's are.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

_FRAMES: dict[bytes, tuple[str, float]] = {}
_STATE: dict = {}


def _key(frame) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(np.asarray(frame, dtype=np.uint8)).tobytes(), digest_size=16).digest()


def _note(path, frames, times) -> None:
    for f, t in zip(frames, times):
        _FRAMES[_key(f)] = (str(path), float(t))


@lru_cache(maxsize=4096)
def _graph(video: str):
    from stepkit.graph.serialize import load_graph

    p = Path(video)
    g = p.parent.parent / "graphs" / (p.stem + ".json")
    if not g.is_file():
        raise SystemExit(f"oracle_vision: no graph {g} for video {video}")
    return load_graph(g)


def _oracle(frames: list, grid: tuple[int, int, int], merge: int, temporal: int):
    """(tokens, hidden) oracle vectors of one clip's merged visual tokens."""
    from stepkit.train.vision_pretrain import VisionPretrainConfig, oracle_tokens, token_targets

    where = [_FRAMES.get(_key(f)) for f in frames]
    if any(w is None for w in where) or len({w[0] for w in where}) != 1:
        raise SystemExit("oracle_vision: a clip's frames were not decoded by a noted reader (or mix videos)")
    g = _graph(where[0][0])
    times = [where[min(len(where) - 1, temporal * ti)][1] for ti in range(grid[0])]
    y = token_targets(g, times, (g.width, g.height), grid, merge, _STATE["labels"], _STATE["colours"],
                      VisionPretrainConfig.min_cover, _STATE["events"] or None)
    return oracle_tokens(y, _STATE["vectors"], _STATE["floor"], _STATE["norm"])


def install(words_from: str, vocab_graphs: str, norm: float | None = None, objects_only: bool = False) -> None:
    """Patch the frame readers, the Qwen2-VL video processor and the models' get_video_features."""
    import torch
    import transformers
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    import stepkit.train.clip as clip_mod
    import stepkit.video as video_mod
    from stepkit.graph.serialize import iter_graph_files, load_graph
    from stepkit.models.families import family_of_checkpoint
    from stepkit.train.vision_pretrain import (VisionPretrainConfig, event_vocabulary, floor_vector,
                                               token_vocabulary, word_vectors)

    graphs = [load_graph(f) for f in iter_graph_files(vocab_graphs)]
    labels, colours = token_vocabulary(graphs)
    events = [] if objects_only else event_vocabulary(graphs)
    fam = family_of_checkpoint(words_from)
    model = getattr(transformers, fam.model_class).from_pretrained(words_from)
    tok = transformers.AutoProcessor.from_pretrained(words_from).tokenizer
    vectors = word_vectors(model, tok, labels + colours + events)
    norm = VisionPretrainConfig.vector_norm if norm is None else norm  # the towers' default target norm
    _STATE.update(labels=labels, colours=colours, events=events, vectors=vectors, norm=norm,
                  floor=floor_vector(vectors.shape[1]), hidden=vectors.shape[1])
    del model

    def noting(reader):
        """``reader`` (a frame reader returning .frames and .times) that also notes each frame's source."""
        def noted(path, *args, **kwargs):
            got = reader(path, *args, **kwargs)
            _note(path, got.frames, got.times)
            return got
        return noted

    clip_mod.read_clip = noting(clip_mod.read_clip)
    video_mod.sample_frames = noting(video_mod.sample_frames)

    proc_cls = transformers.Qwen2VLVideoProcessor
    call = proc_cls.__call__

    def oracle_call(self, *args, **kwargs):
        videos = kwargs.get("videos", args[0] if args else None)
        out = call(self, *args, **kwargs)
        if videos is None:
            return out
        merge, temporal = int(self.merge_size), int(self.temporal_patch_size)
        pix, grids = out["pixel_values_videos"], out["video_grid_thw"]
        offset = 0
        for v, grid in zip(videos, grids.tolist()):
            n = grid[0] * grid[1] * grid[2]
            frames = list(v)
            oracle = _oracle(frames, tuple(grid), merge, temporal)
            chunk = pix[offset:offset + n].view(-1, merge * merge, pix.shape[-1])
            chunk[:, :, :] = 0
            chunk[:, 0, :oracle.shape[1]] = oracle.to(chunk.dtype)
            offset += n
        return out

    proc_cls.__call__ = oracle_call

    def oracle_video_features(self, pixel_values_videos, video_grid_thw=None, **kwargs):
        m = self.visual.spatial_merge_size
        toks = pixel_values_videos.view(-1, m * m, pixel_values_videos.shape[-1])[:, 0, :_STATE["hidden"]]
        toks = toks.to(self.visual.dtype)
        split = (video_grid_thw.prod(-1) // m ** 2).tolist()
        return BaseModelOutputWithPooling(last_hidden_state=toks, pooler_output=torch.split(toks, split))

    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl
    from transformers.models.qwen2_vl import modeling_qwen2_vl

    modeling_qwen2_5_vl.Qwen2_5_VLModel.get_video_features = oracle_video_features
    modeling_qwen2_vl.Qwen2VLModel.get_video_features = oracle_video_features


def main(argv: list[str]) -> None:
    if "--" not in argv:
        raise SystemExit(__doc__)
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description="stepkit with an oracle vision tower")
    ap.add_argument("--words-from", required=True, help="Model whose input embeddings give the fixed word vectors.")
    ap.add_argument("--vocab-graphs", required=True, help="Graphs whose labels, colours, verbs and predicates are the vocabulary.")
    ap.add_argument("--norm", type=float, default=None, help="Norm of every oracle token (default: pretrain-vision's --vector-norm).")
    ap.add_argument("--objects-only", action="store_true", help="Labels and colours only (no verbs / predicates).")
    args = ap.parse_args(argv[:cut])
    install(args.words_from, args.vocab_graphs, args.norm, args.objects_only)
    from stepkit.cli import app

    app(args=argv[cut + 1:], prog_name="stepkit")


if __name__ == "__main__":
    main(sys.argv[1:])
