"""A JSON renderer for the bot API's hot path: orjson for the plain values a response holds.

DRF's JSONRenderer costs ~3 % of a batch (issue 22's profile) in `json.dumps` with its encoder.
orjson writes the same compact UTF-8 JSON for dicts, lists, str (and subclasses such as DRF's
ErrorDetail), int, bool and None — byte for byte, U+2028/U+2029 escaped as DRF does; a float is
the same number, spelled orjson's way where Python's differs (1e-7 for 1e-07). Anything else
(Decimal, datetimes, lazy strings, a lone surrogate) goes to DRF's renderer, as before.
"""

from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer

# Datetimes and dataclasses go to DRF's encoder (its "Z" and millisecond datetimes).
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


class FastJSONRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict | None = None,
    ) -> bytes:
        if data is None:
            return b""
        indent = self.get_indent(accepted_media_type or "", renderer_context or {})
        if indent is None:
            try:
                rendered = orjson.dumps(data, default=_refuse, option=_PASSTHROUGH)
            except TypeError:  # orjson.JSONEncodeError is a TypeError
                pass
            else:
                # DRF escapes the two line separators JavaScript does not allow in strings.
                if b"\xe2\x80\xa8" in rendered or b"\xe2\x80\xa9" in rendered:
                    rendered = rendered.replace(b"\xe2\x80\xa8", b"\\u2028").replace(
                        b"\xe2\x80\xa9", b"\\u2029"
                    )
                return rendered
        return super().render(data, accepted_media_type, renderer_context)
