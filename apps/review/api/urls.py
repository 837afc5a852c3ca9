from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("chatbots", views.ChatbotViewSet, basename="staff-chatbot")
router.register("conversations", views.ConversationViewSet, basename="staff-conversation")
router.register("turns", views.TurnViewSet, basename="staff-turn")
router.register("evaluations", views.EvaluationViewSet, basename="staff-evaluation")
# "feedback/" is the public voting endpoint (apps.feedback); the staff list has its own path.
router.register("feedback-items", views.FeedbackViewSet, basename="staff-feedback")
router.register("scores", views.ScoreViewSet, basename="staff-score")
router.register("alert-events", views.AlertEventViewSet, basename="staff-alert-event")

urlpatterns = [
    path("stats/overview", views.StatsOverviewView.as_view(), name="stats-overview"),
    path("stats/metrics", views.StatsMetricsView.as_view(), name="stats-metrics"),
    path("stats/breakdown", views.StatsBreakdownView.as_view(), name="stats-breakdown"),
    path("stats/timeseries", views.StatsTimeseriesView.as_view(), name="stats-timeseries"),
    path("stats/engagement", views.StatsEngagementView.as_view(), name="stats-engagement"),
    path("stats/llm-calls", views.StatsLLMCallsView.as_view(), name="stats-llm-calls"),
    path("stats/steps", views.StatsStepsView.as_view(), name="stats-steps"),
    *router.urls,
]
