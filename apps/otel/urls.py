"""Mounted at the site root (chatmon/urls.py): OTLP exporters append /v1/traces and /v1/logs to
OTEL_EXPORTER_OTLP_ENDPOINT, so the receivers must sit there."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.otel.api.urls")),
]
