from django.urls import path, re_path

from . import views

urlpatterns = [
    # The bot's POST has no trailing slash (like ingest); the staff list is "scores/" (apps.review.api).
    path("scores", views.ScoreIngestView.as_view(), name="ingest-scores"),
    re_path(r"^conversations/(?P<conversation_id>[^/]+(?:/[^/]+)*)/outcomes$", views.OutcomesView.as_view(),
            name="ingest-outcomes"),
]
