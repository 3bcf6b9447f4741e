"""Word forms and phrasings for rendering graph labels into English (data in ``templates/*.yaml``).

Nouns: ``nouns.yaml`` turns any graph label into one natural noun plus synonyms
(``cup/glass/bottle`` -> ``cup``; ``towel/s`` -> ``towel``), knows mass and plural-only nouns
(``some food``, ``the clothes``) and irregular plurals. Verbs: ``verbs.yaml`` holds each verb's
argument structure (intransitive, object and target prepositions, particles); past, gerund and
participle forms come from the ``lemminflect`` inflection library (the regular English rules
stand in only where it is not installed). ``conflicts.yaml`` holds synonyms, hypernyms and
entailments between answers (see :func:`conflicts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

_VOWELS = "aeiou"


@lru_cache(maxsize=None)
def load_templates(name: str) -> dict[str, Any]:
    """The parsed ``reason/templates/<name>.yaml`` shipped with stepkit."""
    import yaml

    text = resources.files("stepkit.reason").joinpath("templates").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def lexicon() -> dict[str, Any]:
    """The lexicon: irregular verbs, prepositions, person labels, ordinals, fallback vocabulary."""
    return load_templates("lexicon")


def phrases() -> dict[str, Any]:
    """Question, reference, answer and rationale phrasings."""
    return load_templates("phrases")


@lru_cache(maxsize=4096)
def clean(label: str) -> str:
    """A graph label as words: ``on_the_side_of`` -> ``on the side of``."""
    return " ".join(label.replace("_", " ").split())


# ----------------------------------------------------------------------------------------------
# Nouns


@dataclass(frozen=True)
class Noun:
    """How one graph label reads: its natural noun, synonyms, and whether it is mass / plural-only."""

    noun: str
    synonyms: tuple[str, ...] = ()
    mass: bool = False
    plural_only: bool = False

    @property
    def countable(self) -> bool:
        """Whether "how many X" makes sense."""
        return not (self.mass or self.plural_only)


_INFLECTION_PART = re.compile(r"^(s|es|ies)$")


@lru_cache(maxsize=4096)
def noun_info(label: str) -> Noun:
    """The natural noun of a graph label, whatever vocabulary it comes from."""
    table = load_templates("nouns")
    raw = clean(str(label)).lower()
    entry = table["labels"].get(raw)
    if entry is None and "/" in raw:
        parts = [p.strip() for p in raw.split("/") if p.strip()]
        head = parts[0] if parts else raw.replace("/", " ")
        syn = []
        for p in parts[1:]:
            # "towel/s", "dish/es", "shoe/shoes": an inflection of the head, not a second noun
            if _INFLECTION_PART.match(p) or p.startswith(head) or head.startswith(p):
                continue
            syn.append(p)
        sub = table["labels"].get(head)
        if sub is not None:
            entry = {"noun": sub["noun"], "synonyms": list(sub.get("synonyms", [])) + syn}
        else:
            entry = {"noun": head, "synonyms": syn}
    if entry is None:
        entry = {"noun": raw, "synonyms": []}
    noun = entry["noun"]
    return Noun(noun, tuple(entry.get("synonyms", ())), noun in set(table["mass"]), noun in set(table["plural_only"]))


def noun(label: str) -> str:
    """The natural noun of a label: ``cup/glass/bottle`` -> ``cup``."""
    return noun_info(label).noun


@lru_cache(maxsize=4096)
def noun_key(word: str) -> str:
    """A word reduced to the head noun of its synonym group (``bottle`` -> ``cup``), for comparing
    labels from different vocabularies."""
    n = noun(word)
    return _synonym_head().get(n, n)


@lru_cache(maxsize=1)
def _synonym_head() -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in load_templates("nouns")["labels"].values():
        for s in entry.get("synonyms", ()):
            out.setdefault(s, entry["noun"])
    return out


def _inflect(word: str, tag: str) -> str | None:
    try:
        from lemminflect import getInflection
    except ImportError:  # the regular rules below stand in
        return None
    got = getInflection(word, tag=tag)
    return got[0] if got else None


@lru_cache(maxsize=4096)
def plural(label: str) -> str:
    """Plural of a label's noun: ``cup`` -> ``cups``, ``shelf`` -> ``shelves``, ``clothes`` -> ``clothes``."""
    info = noun_info(label)
    n = info.noun
    if info.mass or info.plural_only:
        return n
    special = load_templates("nouns")["plural"]
    words = n.split(" ")
    last = words[-1]
    if last in special:
        p = special[last]
    else:
        p = _inflect(last, "NNS") or ""
        if not p or p == last:
            p = _regular_plural(last)
    return " ".join(words[:-1] + [p])


def _regular_plural(n: str) -> str:
    if n.endswith(("s", "x", "z", "ch", "sh")):
        return n + "es"
    if n.endswith("y") and len(n) > 1 and n[-2] not in _VOWELS:
        return n[:-1] + "ies"
    return n + "s"


@lru_cache(maxsize=4096)
def article(label: str) -> str:
    """The indefinite article of a label's noun: ``a``, ``an``, or ``some`` (mass / plural-only)."""
    info = noun_info(label)
    if info.mass or info.plural_only:
        return "some"
    return "an" if info.noun[:1].lower() in _VOWELS else "a"


def indefinite(label: str) -> str:
    """``a cup``, ``an apple``, ``some food``."""
    return f"{article(label)} {noun(label)}"


def the(label: str) -> str:
    """``the cup``."""
    return f"the {noun(label)}"


# ----------------------------------------------------------------------------------------------
# Verbs


@dataclass(frozen=True)
class VerbFrame:
    """A verb's argument structure (``templates/verbs.yaml``)."""

    verb: str
    say: str
    intransitive: bool = False
    obj_prep: str = ""
    tgt_prep: str = "to"
    implicit: str = ""
    split: bool = False
    passive: bool = True
    thing: str = "object"


_PREPS = frozenset({"to", "at", "on", "from", "with", "in", "into", "onto", "through", "outside", "of", "off", "up",
                    "down", "out"})


@lru_cache(maxsize=4096)
def verb_frame(verb: str) -> VerbFrame:
    """The frame of a verb label; unknown verbs are transitive with regular forms."""
    v = clean(verb).lower()
    entry = load_templates("verbs")["verbs"].get(v)
    legacy = lexicon()
    if entry is None:
        head = v.split(" ", 1)[0]
        entry = dict(load_templates("verbs")["verbs"].get(head, {}))
        entry.pop("say", None)
        entry.setdefault("obj_prep", legacy.get("object_preposition", {}).get(v, ""))
        entry.setdefault("split", v in set(legacy.get("split_particle", [])))
    say = entry.get("say", v)
    ends_in_prep = say.rsplit(" ", 1)[-1] in _PREPS and " " in say
    return VerbFrame(
        verb=v, say=say, intransitive=entry.get("frame") == "intransitive", obj_prep=entry.get("obj_prep", ""),
        tgt_prep=entry.get("tgt_prep", legacy["target_preposition"].get(v, legacy["target_preposition"]["default"])),
        implicit=entry.get("implicit", ""), split=bool(entry.get("split", False)),
        passive=bool(entry.get("passive", not ends_in_prep and not entry.get("obj_prep"))),
        thing=entry.get("thing", "object"))


def verb_say(verb: str) -> str:
    """The verb as a person says it (``watch at`` -> ``look at``)."""
    return verb_frame(verb).say


def _split(verb: str) -> tuple[str, str]:
    words = clean(verb).split(" ", 1)
    return words[0], (" " + words[1] if len(words) > 1 else "")


def _form(verb: str, tag: str, table: str) -> str:
    head, rest = _split(verb_say(verb))
    irregular = lexicon().get(table, {})
    if head in irregular:
        return irregular[head] + rest
    got = _inflect(head, tag)
    if got:
        return got + rest
    return _regular(head, tag) + rest


def _regular(head: str, tag: str) -> str:
    if tag == "VBG":
        if head.endswith("ing"):
            return head
        if head.endswith("ie"):
            return head[:-2] + "ying"
        if head.endswith("e") and not head.endswith("ee") and len(head) > 2:
            return head[:-1] + "ing"
        return head + ("ing" if not _double_final(head) else head[-1] + "ing")
    if head.endswith("ed"):
        return head
    if head.endswith("e"):
        return head + "d"
    if head.endswith("y") and len(head) > 1 and head[-2] not in _VOWELS:
        return head[:-1] + "ied"
    return head + ("ed" if not _double_final(head) else head[-1] + "ed")


def _double_final(w: str) -> bool:
    return (len(w) >= 3 and w[-1] not in _VOWELS + "wxy" and w[-2] in _VOWELS and w[-3] not in _VOWELS
            and len(w) <= 4 and w not in {"open", "look", "read", "need", "cook", "pour", "wear", "hear"})


@lru_cache(maxsize=4096)
def past(verb: str) -> str:
    """Simple past of a (possibly multi-word) verb: ``pick up`` -> ``picked up``."""
    return _form(verb, "VBD", "irregular_past")


@lru_cache(maxsize=4096)
def gerund(verb: str) -> str:
    """Present participle: ``sit down`` -> ``sitting down``."""
    return _form(verb, "VBG", "irregular_gerund")


@lru_cache(maxsize=4096)
def participle(verb: str) -> str:
    """Past participle: ``throw`` -> ``thrown``, ``pick up`` -> ``picked up``."""
    return _form(verb, "VBN", "irregular_participle")


@lru_cache(maxsize=4096)
def verb_forms(verb: str) -> frozenset[str]:
    """Every surface form of a verb's first word (base, past, gerund, participle, 3rd person)."""
    head = _split(verb_say(verb))[0]
    raw = _split(clean(verb))[0]
    out = {head, raw, past(verb).split(" ")[0], gerund(verb).split(" ")[0], participle(verb).split(" ")[0]}
    s = _inflect(head, "VBZ")
    if s:
        out.add(s)
    return frozenset(out)


@lru_cache(maxsize=4096)
def target_preposition(verb: str) -> str:
    """The preposition that introduces a two-place action's target ("put down ... on")."""
    return verb_frame(verb).tgt_prep


@lru_cache(maxsize=4096)
def object_preposition(verb: str) -> str:
    """The preposition a verb needs before its object ("sit down" -> "on"), or ""."""
    return verb_frame(verb).obj_prep


@lru_cache(maxsize=4096)
def with_object(verb_form: str, verb: str, obj: str) -> str:
    """A verb form joined to its object phrase: ``sat down`` + ``the chair`` -> ``sat down on the chair``."""
    if not obj:
        return verb_form
    prep = object_preposition(verb)
    return f"{verb_form} {prep} {obj}" if prep else f"{verb_form} {obj}"


@lru_cache(maxsize=4096)
def action_words(verb_form: str, verb: str, obj: str, target: str) -> str:
    """A whole action phrase from an inflected verb form, object and target phrases (either may be "")."""
    fr = verb_frame(verb)
    if target and not obj and fr.implicit:
        obj = fr.implicit
    if target and obj and fr.split and " " in verb_form:
        head, particle = verb_form.rsplit(" ", 1)
        return f"{head} {obj} {particle} {target}"
    out = with_object(verb_form, verb, obj)
    if target:
        prep = fr.tgt_prep
        out += f" {prep} {target}" if prep else f" {target}"
    return out


@lru_cache(maxsize=4096)
def verb_something(verb: str) -> str:
    """A verb with "something" as its object: ``sit down on something``, ``put something in``;
    intransitive verbs stand alone (``sneeze``)."""
    fr = verb_frame(verb)
    v = fr.say
    if fr.intransitive:
        return v
    if fr.split and " " in v:
        head, particle = v.rsplit(" ", 1)
        return f"{head} something {particle}"
    if fr.thing == "target":
        return f"{v} something" if not fr.tgt_prep else f"{v} {fr.tgt_prep} something"
    return with_object(v, verb, "something")


# ----------------------------------------------------------------------------------------------
# Conflicts (synonyms, hypernyms, entailments)


@lru_cache(maxsize=1)
def _conflict_tables() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    data = load_templates("conflicts")
    syn: dict[str, set[str]] = {}
    for group in data["synonyms"]:
        g = {clean(str(w)).lower() for w in group}
        for w in g:
            syn.setdefault(w, set()).update(g)
    rel: dict[str, set[str]] = {}
    for general, specifics in (data.get("hypernyms") or {}).items():
        for s in specifics or ():
            rel.setdefault(clean(str(general)), set()).add(clean(str(s)))
            rel.setdefault(clean(str(s)), set()).add(clean(str(general)))
    for specific, implied in (data.get("entails") or {}).items():
        for s in implied or ():
            rel.setdefault(clean(str(specific)), set()).add(clean(str(s)))
            rel.setdefault(clean(str(s)), set()).add(clean(str(specific)))
    return ({k: frozenset(v) for k, v in syn.items()}, {k: frozenset(v) for k, v in rel.items()})


@lru_cache(maxsize=8192)
def related_words(word: str) -> frozenset[str]:
    """A word with every word it conflicts with: synonyms, hypernyms / hyponyms, entailments both
    ways, and the label's own synonyms (``nouns.yaml``)."""
    syn, rel = _conflict_tables()
    w = clean(str(word)).lower()
    out = {w}
    info = noun_info(w)
    out.add(info.noun)
    out.update(info.synonyms)
    out.add(noun_key(w))
    for x in list(out):
        out |= syn.get(x, frozenset())
    for x in list(out):
        out |= rel.get(x, frozenset())
    for x in list(out):
        out |= syn.get(x, frozenset())
    return frozenset(out)


@lru_cache(maxsize=16384)
def conflicts(a: str, b: str) -> bool:
    """Whether two answers could both be right (same word, synonyms, hypernym, entailment)."""
    a, b = clean(str(a)).lower(), clean(str(b)).lower()
    if a == b:
        return True
    ra, rb = related_words(a), related_words(b)
    if b in ra or a in rb:
        return True
    # phrases ("pick up the cup" vs "take the cup"): same object words and conflicting verbs
    wa, wb = a.split(" the ", 1), b.split(" the ", 1)
    if len(wa) == 2 and len(wb) == 2 and noun_key(wa[1]) == noun_key(wb[1]):
        return wb[0] in related_words(wa[0]) or wa[0] in related_words(wb[0])
    return False


# ----------------------------------------------------------------------------------------------
# Misc


@lru_cache(maxsize=4096)
def is_person_label(label: str) -> bool:
    """Whether ``label`` names a person."""
    return noun(label).lower() in set(lexicon()["person_labels"])


@lru_cache(maxsize=4096)
def ordinal(k: int) -> str:
    """``1`` -> ``first``; past the table, ``11th``."""
    words = lexicon()["ordinals"]
    if 1 <= k <= len(words):
        return words[k - 1]
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def cap(text: str) -> str:
    """First letter upper-cased."""
    return text[:1].upper() + text[1:]


def fmt_time(t: float) -> str:
    """A time in seconds as the rationale prints it (one decimal)."""
    return f"{t:.1f}"
