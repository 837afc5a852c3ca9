"""Base view for bot endpoints: API-key auth, per-key throttle, strict JSON body reading."""

import time
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from apps.core.json import json_loads_strict
from apps.core.metrics import INGEST_LATENCY, INGEST_REQUESTS
from apps.core.renderers import FastJSONRenderer

from .authentication import ApiKeyAuthentication
from .throttling import ApiKeyRateThrottle


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


class IsBot(BasePermission):
    message = "An API key is required: 'Authorization: Bearer <api key>'."

    def has_permission(self, request, view) -> bool:
        return getattr(request, "auth", None) is not None and hasattr(request.user, "chatbot")


class BotAPIView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsBot]
    throttle_classes = [ApiKeyRateThrottle]
    renderer_classes = [FastJSONRenderer]  # bots read JSON only; no browsable API on these paths
    metrics_name = "bot"

    def dispatch(self, request, *args, **kwargs):
        started = time.perf_counter()
        response = super().dispatch(request, *args, **kwargs)
        INGEST_LATENCY.labels(self.metrics_name).observe(time.perf_counter() - started)
        INGEST_REQUESTS.labels(self.metrics_name, str(response.status_code)).inc()
        return response

    def read_json(self, request) -> Any:
        """The JSON body, or a 415/413/400 that says what is wrong."""
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise exceptions.UnsupportedMediaType(content_type or "(none)", detail=(
                f"Unsupported content type {content_type or '(none)'!r}: send application/json."))
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if limit and declared > limit:
            raise RequestTooLarge(f"Request body is {declared} bytes; the limit is {limit}. Send smaller batches.")
        try:
            body = request.body
        except RequestDataTooBig as exc:
            raise RequestTooLarge(f"Request body over the limit of {limit} bytes.") from exc
        if not body:
            raise exceptions.ParseError("Empty body: send a JSON object.")
        try:
            return json_loads_strict(body)
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError("Invalid JSON: the body is not UTF-8.") from exc
        except ValueError as exc:
            raise exceptions.ParseError(f"Invalid JSON: {exc}") from exc
