"""Class vocabularies of STAR, Charades and Action Genome, shipped as package data.

The files under ``stepkit/sources/vocab/`` are copies of the upstream class lists (STAR: Apache-2.0,
Action Genome: MIT; licences beside them) plus ``charades_actions.txt``, stepkit's own mapping of the
157 Charades action classes to (verb, object, target, implied relation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from stepkit.errors import DataError


def _text(name: str) -> str:
    return resources.files("stepkit.sources").joinpath("vocab", name).read_text(encoding="utf-8")


def _pairs(name: str) -> dict[str, str]:
    """``ID rest-of-line`` files as a dict."""
    out: dict[str, str] = {}
    for line in _text(name).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


@dataclass(frozen=True)
class ActionClass:
    """One action class: what it does to what, and the relation it implies while it lasts."""

    id: str
    name: str
    verb: str
    object: str | None = None
    target: str | None = None
    relation: str | None = None


def _none(v: str) -> str | None:
    return None if v == "-" else v


@lru_cache(maxsize=1)
def charades_actions() -> dict[str, ActionClass]:
    """Charades classes ``c000``–``c156`` mapped to verb / object / target / implied relation."""
    out: dict[str, ActionClass] = {}
    for line in _text("charades_actions.txt").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cid, verb, obj, target, rel, name = line.split("\t")
        out[cid] = ActionClass(cid, name, verb, _none(obj), _none(target), _none(rel))
    return out


@lru_cache(maxsize=1)
def star_objects() -> dict[str, str]:
    """STAR object ids (``o000``) to labels (``person``, ``closet/cabinet`` …)."""
    return _pairs("star_object_classes.txt")


@lru_cache(maxsize=1)
def star_relations() -> dict[str, str]:
    """STAR relation ids (``r009``) to predicates (``holding``)."""
    return _pairs("star_relationship_classes.txt")


@lru_cache(maxsize=1)
def star_verbs() -> dict[str, str]:
    """STAR verb ids (``v004``) to verbs (``hold``)."""
    return _pairs("star_verb_classes.txt")


# STAR's action_mapping gives the bare verb; its answers use the verb with its particle.
_STAR_PARTICLE = {"put": "put down", "tidy": "tidy up", "lie": "lie on", "walk": "walk through",
                  "drink": "drink from", "grasp": "grasp onto"}


@lru_cache(maxsize=1)
def star_actions() -> dict[str, ActionClass]:
    """STAR action ids (``a086``) mapped to verb and object labels.

    Verbs get the particle STAR's questions and answers use ("put" → "put down", "watch at a book",
    "watch outside a window"); sitting keeps the preposition of the class name ("sit at a table" /
    "sit on …"); "turn on/off a light" keep theirs.
    """
    names = _pairs("star_action_classes.txt")
    objects, verbs = star_objects(), star_verbs()
    out: dict[str, ActionClass] = {}
    for aid, rest in _pairs("star_action_mapping.txt").items():
        vid, oid = rest.split()
        name = names.get(aid, "")
        verb = verbs[vid]
        if verb in ("sit", "turn", "stand"):
            verb = " ".join(name.split()[:2]).replace(" in", " on")
        elif verb == "watch" and ("outside" in name or " at " in name):  # STAR's verb_expansion
            verb = "watch outside" if "outside" in name else "watch at"
        else:
            verb = _STAR_PARTICLE.get(verb, verb)
        rel = {"hold": "holding", "sit on": "sitting_on", "lie on": "lying_on", "stand on": "standing_on",
               "drink from": "drinking_from", "eat": "eating"}.get(verb)
        out[aid] = ActionClass(aid, name, verb, objects[oid], None, rel)
    return out


@lru_cache(maxsize=1)
def star_video_fps() -> dict[str, float]:
    """Frame rate of every Charades/STAR video by id (from STAR's ``video_fps``)."""
    return json.loads(_text("star_video_fps.json"))


def _ag_lines(name: str) -> list[str]:
    return [ln.strip() for ln in _text(name).splitlines() if ln.strip()]


# Action Genome spells labels without separators; these restore STAR's / STTran's spelling.
_AG_SPELLING = {
    "closetcabinet": "closet/cabinet", "cupglassbottle": "cup/glass/bottle", "papernotebook": "paper/notebook",
    "phonecamera": "phone/camera", "sofacouch": "sofa/couch", "lookingat": "looking_at",
    "notlookingat": "not_looking_at", "infrontof": "in_front_of", "onthesideof": "on_the_side_of",
    "coveredby": "covered_by", "drinkingfrom": "drinking_from", "haveitontheback": "have_it_on_the_back",
    "leaningon": "leaning_on", "lyingon": "lying_on", "notcontacting": "not_contacting",
    "otherrelationship": "other_relationship", "sittingon": "sitting_on", "standingon": "standing_on",
    "writingon": "writing_on",
}


def ag_label(raw: str) -> str:
    """Action Genome's spelling of a class (``closetcabinet``, ``closet/cabinet``) in stepkit's form."""
    key = raw.strip().lower().replace("/", "").replace("_", "").replace(" ", "")
    return _AG_SPELLING.get(key, raw.strip().lower())


@lru_cache(maxsize=1)
def ag_objects() -> tuple[str, ...]:
    """Action Genome object classes (person first), in stepkit's spelling."""
    return tuple(ag_label(x) for x in _ag_lines("ag_object_classes.txt"))


@lru_cache(maxsize=1)
def ag_relations() -> tuple[str, ...]:
    """Action Genome relationship classes, in stepkit's spelling."""
    return tuple(ag_label(x) for x in _ag_lines("ag_relationship_classes.txt"))


@lru_cache(maxsize=1)
def _object_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for label in star_objects().values():
        aliases[label] = label
        for part in label.split("/"):
            aliases.setdefault(part, label)
            aliases.setdefault(part + "s", label)
    aliases.update({"mug": "cup/glass/bottle", "wardrobe": "closet/cabinet", "tv": "television",
                    "notebook": "paper/notebook", "shoes": "shoe", "dishes": "dish", "plate": "dish",
                    "hand": "hands", "couch": "sofa/couch", "sofa": "sofa/couch"})
    return aliases


def canonical_object(word: str) -> str:
    """A free-text object word (``cup``, ``Cabinet``) as a STAR object label where one fits."""
    w = " ".join(word.strip().lower().split())
    if not w:
        raise DataError("empty object name")
    return _object_aliases().get(w, w)
