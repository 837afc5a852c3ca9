from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("scores", views.ScoreViewSet, basename="staff-score")

urlpatterns = [
    # The bot's POST has no trailing slash (like ingest); the staff list is "scores/".
    path("scores", views.ScoreIngestView.as_view(), name="ingest-scores"),
    re_path(r"^conversations/(?P<conversation_id>[^/]+(?:/[^/]+)*)/outcomes$", views.OutcomesView.as_view(),
            name="ingest-outcomes"),
    *router.urls,
]
