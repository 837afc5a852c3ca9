"""Strict JSON for request bodies: what parses here can be stored (PostgreSQL and SQLite) and
walked by the rest of the code without running out of stack."""

import json
from typing import Any

# Deeper bodies are refused: chat messages, metadata and OTLP attributes nest a few levels, and
# every later step that walks a value (validation, json.dumps, the ORM) recurses per level.
MAX_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_deep(value: Any) -> bool:
    """Whether `value` nests deeper than MAX_DEPTH: level by level, no recursion (~1 ms for a
    1,000-turn batch)."""
    level, depth = [value], 1
    while level:
        if depth > MAX_DEPTH:
            return True
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level, depth = below, depth + 1
    return False


def _reject_lone_surrogates(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("a string holds a lone UTF-16 surrogate (\\ud800–\\udfff), which is not text") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_lone_surrogates(key)
            _reject_lone_surrogates(item)
    elif isinstance(value, list):
        for item in value:
            _reject_lone_surrogates(item)


def json_loads_strict(data: bytes | str) -> Any:
    """json.loads that refuses NaN/Infinity, lone surrogates (valid to `json` but not storable) and
    nesting deeper than MAX_DEPTH.

    Raises ValueError (UnicodeDecodeError for a body that is not UTF-8). The surrogate walk only
    runs when the raw body holds a `\\ud…` escape, so ordinary bodies pay nothing for it.
    """
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from exc
    if type(value) is dict or type(value) is list:
        if _too_deep(value):
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        if b"\\ud" in raw or b"\\uD" in raw:
            _reject_lone_surrogates(value)
    return value
