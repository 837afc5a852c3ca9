"""DRF glue shared by every app: the exception handler keeps client errors 4xx and uniform."""

from typing import Any

from django.db import OperationalError
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .json import json_loads_strict


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, OperationalError):
        # The database is unreachable or overloaded: the client should retry, nothing was stored.
        return Response(
            {"detail": "The database is temporarily unavailable; retry shortly."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    return None


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with the ingest API's rules: no NaN/Infinity, no lone surrogates.

    Both parse with `json` but cannot be stored, so they must be a 400 here, not a 500 later.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            return json_loads_strict(stream.read())
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
