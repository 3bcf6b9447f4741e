"""Word forms and phrasings for rendering graph labels into English (data in ``templates/*.yaml``)."""

from __future__ import annotations

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


def _split(verb: str) -> tuple[str, str]:
    words = clean(verb).split(" ", 1)
    return words[0], (" " + words[1] if len(words) > 1 else "")


def _double_final(w: str) -> bool:
    # stop -> stopped; open -> opened (two syllables, unstressed) is handled by the lexicon table.
    return (len(w) >= 3 and w[-1] not in _VOWELS + "wxy" and w[-2] in _VOWELS and w[-3] not in _VOWELS
            and len(w) <= 4 and w not in {"open", "look", "read", "need", "cook", "pour", "wear", "hear"})


@lru_cache(maxsize=4096)
def past(verb: str) -> str:
    """Simple past of a (possibly multi-word) verb: ``pick up`` -> ``picked up``."""
    head, rest = _split(verb)
    irregular = lexicon()["irregular_past"]
    if head in irregular:
        return irregular[head] + rest
    if head.endswith("ed"):
        return head + rest
    if head.endswith("e"):
        return head + "d" + rest
    if head.endswith("y") and len(head) > 1 and head[-2] not in _VOWELS:
        return head[:-1] + "ied" + rest
    if _double_final(head):
        return head + head[-1] + "ed" + rest
    return head + "ed" + rest


@lru_cache(maxsize=4096)
def gerund(verb: str) -> str:
    """Present participle: ``sit down`` -> ``sitting down``."""
    head, rest = _split(verb)
    irregular = lexicon()["irregular_gerund"]
    if head in irregular:
        return irregular[head] + rest
    if head.endswith("ing"):
        return head + rest
    if head.endswith("ie"):
        return head[:-2] + "ying" + rest
    if head.endswith("e") and not head.endswith("ee") and len(head) > 2:
        return head[:-1] + "ing" + rest
    if _double_final(head):
        return head + head[-1] + "ing" + rest
    return head + "ing" + rest


@lru_cache(maxsize=4096)
def plural(noun: str) -> str:
    """Plural of a label: ``cup`` -> ``cups``, ``box`` -> ``boxes``, ``person`` -> ``people``."""
    n = clean(noun)
    special = {"person": "people", "man": "men", "woman": "women", "child": "children", "shelf": "shelves",
               "knife": "knives", "mouse": "mice", "foot": "feet"}
    if n in special:
        return special[n]
    if "/" in n:
        return "/".join(plural(p) for p in n.split("/"))
    if n.endswith(("s", "x", "z", "ch", "sh")):
        return n + "es"
    if n.endswith("y") and len(n) > 1 and n[-2] not in _VOWELS:
        return n[:-1] + "ies"
    return n + "s"


@lru_cache(maxsize=4096)
def target_preposition(verb: str) -> str:
    """The preposition that introduces a two-place action's target ("put down ... on")."""
    table = lexicon()["target_preposition"]
    v = clean(verb)
    if v in table:
        return table[v]
    head = v.split(" ", 1)[0]
    return table.get(head, table["default"])


@lru_cache(maxsize=4096)
def object_preposition(verb: str) -> str:
    """The preposition a verb needs before its object ("sit down" -> "on"), or ""."""
    return lexicon().get("object_preposition", {}).get(clean(verb), "")


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
    v = clean(verb)
    if target and obj and v in set(lexicon().get("split_particle", [])) and " " in verb_form:
        head, particle = verb_form.rsplit(" ", 1)
        return f"{head} {obj} {particle} {target}"
    out = with_object(verb_form, verb, obj)
    if target:
        prep = target_preposition(verb)
        out += f" {prep} {target}" if prep else f" {target}"
    return out


@lru_cache(maxsize=4096)
def verb_something(verb: str) -> str:
    """A verb with "something" as its object: ``sit down on something``, ``put something in``."""
    v = clean(verb)
    if v in set(lexicon().get("split_particle", [])) and " " in v:
        head, particle = v.rsplit(" ", 1)
        return f"{head} something {particle}"
    return with_object(v, verb, "something")


@lru_cache(maxsize=4096)
def is_person_label(label: str) -> bool:
    """Whether ``label`` names a person."""
    return clean(label).lower() in set(lexicon()["person_labels"])


@lru_cache(maxsize=4096)
def ordinal(k: int) -> str:
    """``1`` -> ``first``; past the table, ``11th``."""
    words = lexicon()["ordinals"]
    if 1 <= k <= len(words):
        return words[k - 1]
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


@lru_cache(maxsize=4096)
def article(noun: str) -> str:
    """``a`` or ``an`` for a noun."""
    return "an" if clean(noun)[:1].lower() in _VOWELS else "a"


def cap(text: str) -> str:
    """First letter upper-cased."""
    return text[:1].upper() + text[1:]


def fmt_time(t: float) -> str:
    """A time in seconds as the rationale prints it (one decimal)."""
    return f"{t:.1f}"
