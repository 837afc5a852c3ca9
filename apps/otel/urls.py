"""Mounted at the site root (chatmon/urls.py): OTLP exporters append /v1/traces and /v1/logs to
OTEL_EXPORTER_OTLP_ENDPOINT, so the receivers must sit there; Langfuse's SDKs append
/api/public/… to LANGFUSE_BASE_URL (LANGFUSE_HOST)."""

from django.urls import include, path

urlpatterns = [
    path("", include("apps.otel.api.urls")),
    path("api/public/", include("apps.otel.api.langfuse_urls")),
]
