"""Class vocabularies of STAR, Charades and Action Genome, shipped as package data.

The files under ``stepkit/sources/vocab/`` are copies of the upstream class lists (STAR: Apache-2.0,
Action Genome: MIT; licences beside them) plus stepkit's own data: ``charades_actions.txt`` maps the 157 Charades action classes to (verb,
object, target), ``charades_relations.txt`` lists the relations each class implies while it lasts
(derived: Charades annotates actions only), and ``labels.txt`` turns slash labels
(``cup/glass/bottle``) into one natural noun with the other words as synonyms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

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
    """Charades classes ``c000``–``c156`` mapped to verb / object / target; ``relation`` is the first
    relation the class implies (:func:`charades_relations`)."""
    implied = charades_relations()
    out: dict[str, ActionClass] = {}
    for line in _text("charades_actions.txt").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cid, verb, obj, target, name = line.split("\t")
        rels = implied.get(cid, ())
        out[cid] = ActionClass(cid, name, verb, _none(obj), _none(target), rels[0][0] if rels else None)
    return out


@lru_cache(maxsize=1)
def charades_relations() -> dict[str, tuple[tuple[str, str], ...]]:
    """Charades class → the relations it implies while it lasts, as ``(predicate, argument)`` pairs.

    ``argument`` is ``object`` or ``target`` (that node of the action) or a fixed object label
    (``floor``). Read from ``vocab/charades_relations.txt``; a malformed line raises DataError.
    """
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for n, line in enumerate(_text("charades_relations.txt").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(f"charades_relations.txt line {n}: expected 3 tab-separated columns")
        cid, rels, _name = parts
        pairs = []
        for item in rels.split() if rels != "-" else []:
            pred, sep, arg = item.partition(":")
            if not sep or not pred or not arg:
                raise DataError(f"charades_relations.txt line {n}: {item!r} is not PREDICATE:ARGUMENT")
            pairs.append((pred, arg))
        out[cid] = tuple(pairs)
    return out


@lru_cache(maxsize=1)
def charades_states() -> dict[str, tuple[str, str, str]]:
    """Verb → (attribute, state before, state after) of the actions that change an object's state
    (``open`` → ``("state", "closed", "open")``), from ``vocab/charades_states.txt``."""
    out: dict[str, tuple[str, str, str]] = {}
    for n, line in enumerate(_text("charades_states.txt").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataError(f"charades_states.txt line {n}: expected 4 tab-separated columns")
        out[parts[0]] = (parts[1], parts[2], parts[3])
    return out


@lru_cache(maxsize=1)
def label_forms() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Slash class label → (the natural noun, the class's other words), from ``vocab/labels.txt``."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in _text("labels.txt").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cls, noun, syn = line.split("\t")
        out[cls] = (noun, tuple(w for w in syn.split(",") if w))
    return out


def natural_label(label: str, prefer: str | None = None) -> str:
    """One natural noun for a label: ``cup/glass/bottle`` → ``cup`` (or ``prefer`` when it is one of
    the class's words, e.g. the word the video's own annotation uses). Labels without a slash pass
    unchanged; an unlisted slash label (``jacket / sweater``) becomes its first word."""
    if "/" not in label:
        return label
    forms = label_forms().get(label)
    if forms is None:
        first = next((w.strip() for w in label.split("/") if w.strip()), label)
        return first
    noun, others = forms
    return prefer if prefer in (noun, *others) else noun


def label_synonyms(label: str) -> tuple[str, ...]:
    """The other words of a natural noun's class (``cup`` → ``glass``, ``bottle``; ``glass`` → ``cup``,
    ``bottle``); empty for labels outside a slash class."""
    cls = canonical_object(label) if label.strip() else label
    forms = label_forms().get(cls)
    if forms is None:
        return ()
    noun, others = forms
    return tuple(w for w in (noun, *others) if w != label)


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


def with_star_labels(graph: Any) -> Any:
    """A copy of a graph whose object labels are STAR's classes: natural nouns and their synonyms
    (``cup``, ``glass``, ``cabinet``) mapped back to the slash class (``cup/glass/bottle``,
    ``closet/cabinet``), for running STAR's own questions and programs, which use the class."""
    from dataclasses import replace

    objects = [o if canonical_object(o.label) == o.label else replace(o, label=canonical_object(o.label))
               for o in graph.objects]
    return replace(graph, objects=objects)
