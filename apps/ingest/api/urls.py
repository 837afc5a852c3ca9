from django.urls import path

from . import views

urlpatterns = [
    path("ingest/turns", views.TurnIngestView.as_view(), name="ingest-turns"),
    path("ingest/llm-calls", views.LLMCallIngestView.as_view(), name="ingest-llm-calls"),
]
