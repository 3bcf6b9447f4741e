"""Importers from other datasets' annotations into the STSG.

- :mod:`stepkit.sources.charades` — Charades action timelines (CSV);
- :mod:`stepkit.sources.star` — STAR situation graphs (keyframe relations, actions, boxes), and
  :mod:`stepkit.sources.star_programs` for STAR's functional programs;
- :mod:`stepkit.sources.action_genome` — Action Genome ``.pkl`` files through a restricted unpickler.

Class vocabularies ship under ``vocab/`` (see :mod:`stepkit.sources.vocab`). ``stepkit import``
is the command line.
"""

from __future__ import annotations
