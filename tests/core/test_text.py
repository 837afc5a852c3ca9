import pytest

from apps.core.text import MAX_ID, ascii_int


@pytest.mark.parametrize(("value", "expected"), [
    ("42", 42), ("0", 0), (str(MAX_ID), MAX_ID),
    ("²", None), ("٣", None), ("-1", None), ("1.5", None), ("", None), (" 7", None),
    (str(MAX_ID + 1), None), (None, None), (7, None),
])
def test_ascii_int(value, expected):
    assert ascii_int(value) == expected
