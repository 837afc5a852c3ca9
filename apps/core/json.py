"""Strict JSON for request bodies: what parses here can be stored (PostgreSQL and SQLite)."""

import json
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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
    """json.loads that refuses NaN/Infinity and lone surrogates, both valid to `json` but not storable.

    Raises ValueError (UnicodeDecodeError for a body that is not UTF-8). The surrogate walk only
    runs when the raw body holds a `\\ud…` escape, so ordinary bodies pay nothing for it.
    """
    value = json.loads(data, parse_constant=_reject_constant)
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if b"\\ud" in raw or b"\\uD" in raw:
        _reject_lone_surrogates(value)
    return value
