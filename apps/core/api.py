"""DRF glue shared by every app: the exception handler keeps client errors 4xx and uniform."""

from collections.abc import Iterable
from typing import Any

from django.db import OperationalError
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from .json import json_loads_strict


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer in the OpenAPI schema."""

    detail = serializers.CharField(required=False)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES, which names this module,
    # so a top-level import fails when this module is the first to load DRF (axes' client_ip).
    from rest_framework.views import exception_handler as drf_exception_handler

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


# Paginator attributes that name a query parameter (cursor, page, page size, limit, offset).
_PAGINATION_PARAM_ATTRIBUTES = (
    "cursor_query_param", "page_query_param", "page_size_query_param", "limit_query_param", "offset_query_param",
)


def unknown_query_params_reject(request: Any, known: Iterable[str], *, view: Any = None) -> None:
    """400 for a query parameter the endpoint does not know: a typo such as `?review_stauts=new`
    must not silently answer with every row. Besides `known`, `format` and the parameters of the
    view's paginator are always accepted."""
    allowed = {*known, "format"}
    paginator = getattr(view, "paginator", None)
    allowed.update(filter(None, (getattr(paginator, name, None) for name in _PAGINATION_PARAM_ATTRIBUTES)))
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ValidationError({name: [f"Unknown query parameter. Known: {', '.join(sorted(known))}."] for name in unknown})


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, rejecting query parameters that are not filters of the endpoint."""

    def filter_queryset(self, request: Any, queryset: QuerySet, view: Any) -> QuerySet:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is not None:
            unknown_query_params_reject(request, filterset.filters, view=view)
        return super().filter_queryset(request, queryset, view)
