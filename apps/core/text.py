"""Text that clients send: reading numbers out of it (query strings, attributes), and the
alphabet PostgreSQL can store (no NUL in text or jsonb) and ids may use (no control characters)."""

import re
from typing import Any

# The largest id a bigint primary key holds: anything above is no row, not an error.
MAX_ID = 2**63 - 1


def ascii_int(value: object, *, maximum: int = MAX_ID) -> int | None:
    """`value` as a non-negative int when it is ASCII digits within `maximum`, else None.

    `str.isdigit()` alone is not enough: "²" and "٣" are digits to it, and `int("²")` raises.
    """
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number <= maximum else None


REPLACEMENT_CHARACTER = "\ufffd"
# C0 controls, DEL and C1 controls: never part of an id or a label (a single class: linear scan).
CONTROL_CHARACTERS_PATTERN = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The same rule as a whole-string pattern for OpenAPI schemas and Django validators (non-empty:
# a blank-allowed field's schema is oneOf [this, ""], and exactly one of the two may match).
NO_CONTROL_CHARACTERS = r"^[^\u0000-\u001f\u007f-\u009f]+$"
CONTROL_CHARACTERS_MESSAGE = "May not contain control characters (NUL, tab, newline, …)."


def nul_replace(text: str) -> str:
    """Free text as PostgreSQL can store it: NUL → U+FFFD."""
    return text.replace("\x00", REPLACEMENT_CHARACTER) if "\x00" in text else text


def json_nul_replace(value: Any) -> Any:
    """A JSON value with NUL → U+FFFD in every string, keys included (jsonb refuses \\u0000)."""
    if isinstance(value, str):
        return nul_replace(value)
    if isinstance(value, dict):
        return {nul_replace(k) if isinstance(k, str) else k: json_nul_replace(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_nul_replace(v) for v in value]
    return value


def control_characters_present(text: str) -> bool:
    return CONTROL_CHARACTERS_PATTERN.search(text) is not None
