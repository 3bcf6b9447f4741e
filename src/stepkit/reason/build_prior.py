"""Build the shipped plausibility prior (``reason/data/plausibility_prior.json``).

    python -m stepkit.reason.build_prior ../shared/data [--out src/stepkit/reason/data/plausibility_prior.json]

Sources, all under the data folder given:

- ``charades/Charades_v1_classes.txt`` and ``Charades_v1_train.csv``: the 157 action classes, each
  read as a verb, object, target and implied relation through stepkit's own class table
  (``stepkit/sources/vocab/charades_actions.txt``); a pair enters the prior when its class occurs
  in the training set at least once.
- ``star/STAR_classes/action_mapping.txt`` (+ ``verb_classes.txt``, ``object_classes.txt``):
  STAR's verb-object pairs for the same situations.
- ``action_genome/object_classes.txt`` and ``relationship_classes.txt``: the relationships, with
  the objects each contacting relationship fits from ``reason/data/affordances.yaml`` (attention
  and spatial relationships fit any object).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from importlib import resources
from pathlib import Path

from stepkit.errors import DataError
from stepkit.reason.lexicon import clean
from stepkit.reason.plausibility import PRIOR_FILE, PlausibilityPrior


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: missing (expected the shared data folder layout, see docs/reasoning.md)")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def build(data: Path) -> dict:
    """The prior document built from the vocabularies under ``data``."""
    import yaml

    from stepkit.sources.vocab import charades_actions

    prior = PlausibilityPrior()
    counts: Counter = Counter()
    csv_path = data / "charades" / "Charades_v1_train.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: missing")
    with csv_path.open(encoding="utf-8", errors="replace") as fh:
        for row in csv.DictReader(fh):
            for seg in filter(None, (s.strip() for s in (row.get("actions") or "").split(";"))):
                counts[seg.split()[0]] += 1
    classes = _lines(data / "charades" / "Charades_v1_classes.txt")
    used = 0
    for line in classes:
        cls = line.split(" ", 1)[0]
        ac = charades_actions().get(cls)
        if ac is None or counts[cls] == 0:
            continue
        used += 1
        for thing in (ac.object, ac.target):
            if thing:
                prior.add(ac.verb, thing)
                if ac.relation:
                    prior.add(ac.relation, thing)
    star = data / "star" / "STAR_classes"
    verbs = dict(ln.split(" ", 1) for ln in _lines(star / "verb_classes.txt"))
    objects = dict(ln.split(" ", 1) for ln in _lines(star / "object_classes.txt"))
    n_star = 0
    for ln in _lines(star / "action_mapping.txt"):
        _, v, o = ln.split()
        if v in verbs and o in objects:
            prior.add(verbs[v], objects[o])
            n_star += 1
    aff = yaml.safe_load(resources.files("stepkit.reason").joinpath("data").joinpath("affordances.yaml")
                         .read_text(encoding="utf-8"))
    words = aff["relationship_words"]
    ag = data / "action_genome"
    ag_rels = set(_lines(ag / "relationship_classes.txt"))
    ag_objs = set(_lines(ag / "object_classes.txt"))
    for rel in aff["any_object"]:
        if rel in ag_rels:
            prior.any_object.add(clean(words.get(rel, rel)))
    for rel, objs in list(aff.get("spatial", {}).items()) + list(aff["contacting"].items()):
        if rel not in ag_rels:
            continue
        for o in objs:
            if o in ag_objs:
                prior.add(words.get(rel, rel), o)
    # the spatial words STAR and the synthetic world use for the same relations: "on" and "inside"
    # need a surface or a container, the others fit any object
    prior.any_object.update({"next to", "in front of", "behind", "near", "beside"})
    for o in aff["spatial"]["above"] + ["box", "dish", "towel", "blanket", "pillow", "papernotebook", "book", "laptop",
                                        "bag"]:
        prior.add("on", o)
    for o in aff["spatial"]["in"]:
        prior.add("inside", o)
    doc = prior.to_dict()
    doc["sources"] = {"charades_classes_used": used, "star_action_pairs": n_star,
                      "action_genome_relationships": len(ag_rels), "action_genome_objects": len(ag_objs)}
    doc["version"] = 1
    return doc


def main(argv: list[str] | None = None) -> None:
    """Command line: build the prior from a data folder."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="the shared data folder (charades/, star/, action_genome/)")
    ap.add_argument("--out", type=Path, default=Path(str(resources.files("stepkit.reason").joinpath("data")
                                                         .joinpath(PRIOR_FILE))))
    args = ap.parse_args(argv)
    doc = build(args.data)
    args.out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{args.out}: {sum(len(v) for v in doc['pairs'].values())} pairs, {len(doc['any_object'])} any-object words")


if __name__ == "__main__":
    main()
