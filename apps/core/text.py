"""Reading numbers out of text that clients send (query strings, attributes)."""

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
