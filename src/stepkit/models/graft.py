"""Join one checkpoint's language model to another checkpoint's vision tower and projector.

A vision tower and a decoder can be trained apart against the same token targets (a tower that
emits ``oracle_tokens``, a decoder that reads them: docs/replication-notes.md, "Sessions 13–14") and
joined afterwards; the same operation starts a tower of another width under a fixed decoder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from stepkit.errors import ModelError

# Files that say how frames become pixels: they belong to the tower, so the two must agree on them.
_PIXEL_FILES = ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json")


def _family_and_config(path: Path, role: str):
    from stepkit.models.families import family_of_checkpoint

    if not (path / "config.json").is_file():
        raise ModelError(f"graft: {role} {path} is not a model folder (no config.json)")
    fam = family_of_checkpoint(path)
    if fam is None or not fam.vision_prefixes:
        raise ModelError(f"graft: {role} {path}: not a Video-LLM family stepkit knows")
    return fam, json.loads((path / "config.json").read_text(encoding="utf-8"))


def _pixel_settings(path: Path) -> dict[str, Any]:
    out = {}
    for name in _PIXEL_FILES:
        p = path / name
        if p.is_file():
            doc = json.loads(p.read_text(encoding="utf-8"))
            # a processor_config.json also holds the chat template and tokenizer settings: keep pixels only
            out[name] = {k: v for k, v in doc.items() if "processor" in k and k != "processor_class"} \
                if name == "processor_config.json" else doc
    return out


def graft_vision(decoder: str | Path, vision: str | Path, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write to ``out`` the model of ``decoder`` with the vision tower and projector of ``vision``
    (weights and vision config); tokenizer, chat template and language weights stay the decoder's."""
    import transformers

    decoder, vision, out = Path(decoder), Path(vision), Path(out)
    fam, dcfg = _family_and_config(decoder, "decoder")
    vfam, vcfg = _family_and_config(vision, "vision model")
    if vfam.name != fam.name:
        raise ModelError(f"graft: decoder {decoder} is {fam.name}, vision model {vision} is {vfam.name}")
    text_hidden = (dcfg.get("text_config") or dcfg).get("hidden_size")
    proj_out = (vcfg.get("vision_config") or {}).get("out_hidden_size", text_hidden)
    if proj_out != text_hidden:
        raise ModelError(f"graft: {vision}'s projector writes {proj_out}-wide tokens, {decoder}'s decoder reads "
                         f"{text_hidden}-wide ones")
    if _pixel_settings(decoder) != _pixel_settings(vision):
        raise ModelError(f"graft: {decoder} and {vision} turn frames into pixels differently (their "
                         f"processor configs differ)")
    from stepkit.locks import LOCK_NAME

    left = [p for p in out.iterdir() if p.name != LOCK_NAME] if out.is_dir() else []
    if left and not overwrite:
        raise ModelError(f"graft: {out} is not empty (use --overwrite)")
    cls = getattr(transformers, fam.model_class)
    dec = cls.from_pretrained(decoder)
    vis = cls.from_pretrained(vision)
    dec.config.vision_config = vis.config.vision_config
    n_vision = 0
    for prefix in (p.rstrip(".") for p in fam.vision_prefixes):
        parent_name, _, attr = prefix.rpartition(".")
        parent = dec.get_submodule(parent_name) if parent_name else dec
        module = vis.get_submodule(prefix)
        setattr(parent, attr, module)
        n_vision += sum(p.numel() for p in module.parameters())
    # tokenizer, chat template and processor are the decoder's (the pixel settings agree, checked above)
    tmp = out.with_name(f".{out.name}.graft.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    transformers.AutoProcessor.from_pretrained(decoder).save_pretrained(tmp)
    dec.save_pretrained(tmp)
    spec_d, spec_v = decoder / "stepkit_tiny.json", vision / "stepkit_tiny.json"
    if spec_d.is_file() and spec_v.is_file():
        spec = json.loads(spec_d.read_text(encoding="utf-8"))
        vsize = json.loads(spec_v.read_text(encoding="utf-8")).get("size", {})
        spec.setdefault("size", {}).update({k: v for k, v in vsize.items() if k.startswith("vision_")})
        (tmp / "stepkit_tiny.json").write_text(json.dumps(spec, indent=2, sort_keys=True), encoding="utf-8")
    # the finished model replaces what was there only once it is whole
    out.mkdir(parents=True, exist_ok=True)
    for p in left:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in sorted(tmp.iterdir()):
        p.replace(out / p.name)
    tmp.rmdir()
    return {"out": str(out), "family": fam.name, "decoder": str(decoder), "vision": str(vision),
            "vision_parameters": n_vision}
