"""STSG types, (de)serialisation, validation and temporal queries."""

from __future__ import annotations

from stepkit.graph.index import TemporalIndex
from stepkit.graph.serialize import graph_to_json, iter_graph_files, load_graph, load_graphs, read_graph_doc, save_graph
from stepkit.graph.types import (
    SCHEMA_VERSION,
    STSG,
    Action,
    Attribute,
    Box,
    Clip,
    Object,
    Reference,
    Relation,
)
from stepkit.graph.validate import graph_problems, stsg_json_schema

__all__ = [
    "SCHEMA_VERSION",
    "STSG",
    "Action",
    "Attribute",
    "Box",
    "Clip",
    "Object",
    "Reference",
    "Relation",
    "TemporalIndex",
    "graph_problems",
    "graph_to_json",
    "iter_graph_files",
    "load_graph",
    "load_graphs",
    "read_graph_doc",
    "save_graph",
    "stsg_json_schema",
]
