"""One loader for the files users hand to stepkit (JSON, JSONL, YAML): every problem a clear error.

Reading, decoding (UTF-8), parsing, nesting depth, the type of the top-level value and the
``schema_version`` field are checked here, and each failure raises the caller's
:class:`~stepkit.errors.StepkitError` subclass with a message that names the file (and line) and
says what is wrong — never a ``UnicodeDecodeError``, ``RecursionError`` or ``AttributeError``.

JSON is parsed with orjson, which refuses documents nested deeper than 1024 levels instead of
overflowing the stack (Python's ``json`` raises ``RecursionError`` on 100,000 nested brackets);
YAML with ``yaml.safe_load`` (no tags that build objects).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

import orjson

from stepkit.errors import DataError, StepkitError

JSON_MAX_DEPTH = 1024  # orjson's limit


def _type_name(value: Any) -> str:
    return {dict: "an object (mapping)", list: "an array (list)", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def read_bytes(path: str | os.PathLike, *, what: str = "file", error: type[StepkitError] = DataError) -> bytes:
    """The bytes of ``path``; ``error`` naming the file when it is missing, a folder or unreadable."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{p}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None


def decode_utf8(data: bytes, path: str | os.PathLike, *, what: str = "file",
                error: type[StepkitError] = DataError) -> str:
    """``data`` as text; ``error`` naming the file and byte offset when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a UTF-8 text {what} (byte {exc.start} is {data[exc.start:exc.start + 1]!r}); "
                    "is it a binary file?") from None


def read_text(path: str | os.PathLike, *, what: str = "file", error: type[StepkitError] = DataError) -> str:
    """The UTF-8 text of ``path`` (see :func:`read_bytes`, :func:`decode_utf8`)."""
    return decode_utf8(read_bytes(path, what=what, error=error), path, what=what, error=error)


def _json_problem(data: bytes | str, exc: json.JSONDecodeError, what: str = "JSON file") -> str:
    msg = str(exc.msg)
    if "depth limit" in msg or "recursion" in msg.lower():
        return f"nested more than {JSON_MAX_DEPTH} levels deep (line {exc.lineno} column {exc.colno})"
    if "zero-length" in msg or not (data.strip() if isinstance(data, (bytes, str)) else data):
        return f"empty file (0 bytes of JSON), not a {what}"
    if "UTF-8" in msg:
        return "not UTF-8 text (is it a binary file?)"
    # orjson says only "unexpected character": name the non-JSON numbers Python's json writes.
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    tail = text[max(exc.pos - 1, 0):exc.pos + 9]
    for token in ("-Infinity", "NaN", "Infinity"):
        if token in tail:
            return f"line {exc.lineno} column {exc.colno}: {token} is not a JSON number"
    return f"invalid JSON at line {exc.lineno} column {exc.colno}: {msg}"


def parse_json(data: bytes | str, path: str | os.PathLike, *, what: str = "JSON file",
               error: type[StepkitError] = DataError, expect: type | tuple[type, ...] | None = None) -> Any:
    """Parse JSON text read from ``path``; ``error`` naming the file on bad syntax, bad UTF-8, depth,
    or a top-level value that is not of type ``expect``."""
    try:
        value = orjson.loads(data)
    except json.JSONDecodeError as exc:  # orjson's error is a subclass
        raise error(f"{path}: {_json_problem(data, exc, what)}") from None
    if expect is not None and not isinstance(value, expect):
        wanted = " or ".join(_type_name(t()) for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise error(f"{path}: a {what} holds {wanted} at the top level; this one holds {_type_name(value)}")
    return value


def load_json(path: str | os.PathLike, *, what: str = "JSON file", error: type[StepkitError] = DataError,
              expect: type | tuple[type, ...] | None = None) -> Any:
    """Read and parse a JSON file (see :func:`parse_json`)."""
    return parse_json(read_bytes(path, what=what, error=error), path, what=what, error=error, expect=expect)


def iter_jsonl(path: str | os.PathLike, *, what: str = "JSONL file",
               error: type[StepkitError] = DataError) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of a JSON Lines file; a bad line raises
    ``error`` naming ``file:line`` (callers that go on past bad lines catch it per line)."""
    p = Path(path)
    try:
        fh = open(p, "rb")
    except FileNotFoundError:
        raise error(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{p}: is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read {what}: {exc.strerror or exc}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except json.JSONDecodeError as exc:
                problem = _json_problem(line, exc, "JSON line").replace("line 1 column", "column")
                raise error(f"{p}:{lineno}: {problem}") from None
            yield lineno, value


def load_yaml(path: str | os.PathLike, *, what: str = "YAML file", error: type[StepkitError] = DataError,
              expect: type | tuple[type, ...] | None = dict, empty: Any = None) -> Any:
    """Read and parse a YAML file with ``yaml.safe_load``; an empty file gives ``empty``; ``error``
    naming the file on bad syntax, object-building tags, depth, or a top-level value not ``expect``."""
    import yaml

    text = read_text(path, what=what, error=error)
    try:
        value = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise error(f"{path}: refused YAML{where}: {exc.problem or exc} (tags that build Python objects "
                    "are not read)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise error(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise error(f"{path}: YAML nested too deeply to read") from None
    if value is None:
        return empty
    if expect is not None and not isinstance(value, expect):
        wanted = " or ".join(_type_name(t()) for t in (expect if isinstance(expect, tuple) else (expect,)))
        raise error(f"{path}: a {what} holds {wanted} at the top level; this one holds {_type_name(value)}")
    return value


def version_problem(value: Any, supported: tuple[str, ...], *, field: str = "schema_version") -> str | None:
    """Why ``value`` is not one of the ``supported`` version strings (None when it is).

    A number that reads like a supported version (``1.0`` written without quotes) is named as such,
    so the message never says "unknown version 1.0 (this reads 1.0)".
    """
    if isinstance(value, str) and value in supported:
        return None
    reads = ", ".join(repr(v) for v in supported)
    if value is None:
        return f"{field}: missing (this stepkit reads {reads})"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return f"{field}: expected a version string such as {supported[-1]!r}, got {_type_name(value)}"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{field}: expected a version string such as {supported[-1]!r}, got {value}"
        as_text = f"{float(value):.1f}" if float(value).is_integer() else str(value)
        if as_text in supported:
            return (f"{field}: the version must be a string: write \"{as_text}\" in quotes, "
                    f"not the number {value}")
        return f"{field}: unknown schema version {value} (a number; this stepkit reads {reads})"
    return f"{field}: unknown schema version {value!r} (this stepkit reads {reads})"


def field_type_problems(values: dict[str, Any], cls: type, *, where: str) -> list[str]:
    """``where: NAME: expected TYPE, got VALUE`` for each value whose type does not fit the dataclass
    field of that name (int / float / bool / str / optional and list fields; others are not checked).
    Unknown names are the caller's to report."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    problems = []
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        v, t = values[f.name], hints.get(f.name)
        allowed = typing.get_args(t) if typing.get_origin(t) in (typing.Union, getattr(__import__("types"), "UnionType", None)) else (t,)
        ok = False
        for a in allowed:
            base = typing.get_origin(a) or a
            if a is type(None):
                ok = ok or v is None
            elif base is bool:
                ok = ok or isinstance(v, bool)
            elif base is int:
                ok = ok or (isinstance(v, int) and not isinstance(v, bool))
            elif base is float:
                ok = ok or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
            elif base in (str, list, tuple, dict):
                ok = ok or isinstance(v, base if base is not tuple else (tuple, list))
            else:
                ok = True  # a type this check does not know
        if not ok:
            names = " or ".join("null" if a is type(None) else getattr(typing.get_origin(a) or a, "__name__", str(a))
                                for a in allowed)
            problems.append(f"{where}: {f.name}: expected {names}, got {v!r}")
    return problems
