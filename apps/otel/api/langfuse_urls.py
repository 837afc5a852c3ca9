"""Langfuse's public API paths (apps.otel.api.langfuse_views), mounted at /api/public/."""

from django.urls import path

from . import langfuse_views

urlpatterns = [
    path("otel/v1/traces", langfuse_views.otel_traces, name="langfuse-otel-traces"),
    path("scores", langfuse_views.scores, name="langfuse-scores"),
    path("projects", langfuse_views.projects, name="langfuse-projects"),
    path("ingestion", langfuse_views.ingestion, name="langfuse-ingestion"),
]
