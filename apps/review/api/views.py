"""The staff API: read-only lists with filters, one conversation in full, review actions, stats.

Authentication is session or token, permission is staff (the DRF default, IsAdminUser), and every
queryset is narrowed to the chatbots the user may see: an object outside that scope is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts.models import AlertEvent
from apps.chatbots.access import chatbot_ids_for_user, chatbot_scoped, chatbots_for_user
from apps.chatbots.models import Chatbot
from apps.conversations.metrics_catalogue import catalogue_as_json
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.core.api import unknown_query_params_reject
from apps.core.replica import replica_reads
from apps.core.text import ascii_int
from apps.evaluations.models import Evaluation
from apps.evaluations.selectors import conversation_judge_overall
from apps.feedback.models import Feedback
from apps.scores.api.serializers import ScoreSerializer
from apps.scores.filtersets import ScoreFilterSet
from apps.scores.models import Score

from .. import filtersets, selectors, services
from . import exports, serializers


class NewestFirstPagination(CursorPagination):
    """Cursor pagination on the primary key: constant cost per page however deep the list."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@replica_reads
class ChatbotScopedViewSet(viewsets.ReadOnlyModelViewSet):
    pagination_class = NewestFirstPagination
    scope_field = "chatbot"

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        # None: the user sees every chatbot, including rows that belong to none (all-chatbot rules).
        return chatbot_scoped(queryset, chatbot_ids_for_user(self.request.user), field=self.scope_field)


class ChatbotViewSet(ChatbotScopedViewSet):
    queryset = Chatbot.objects.all()
    serializer_class = serializers.ChatbotSerializer
    filterset_class = filtersets.ChatbotFilterSet
    scope_field = "pk"


class ConversationViewSet(ChatbotScopedViewSet):
    queryset = Conversation.objects.select_related("chatbot", "assignee")
    serializer_class = serializers.ConversationSerializer
    filterset_class = filtersets.ConversationFilterSet

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset().annotate(conversation_judge_score=conversation_judge_overall())
        if self.action == "retrieve":  # export loads its own tree (review.api.exports)
            queryset = queryset.prefetch_related(
                Prefetch(
                    "turns",
                    queryset=Turn.objects.order_by("sequence", "id").prefetch_related(
                        "evaluations", "feedback",
                        Prefetch("llm_calls", queryset=LLMCall.objects.order_by("timestamp", "id")),
                    ),
                )
            )
        return queryset

    def get_serializer_class(self) -> type:
        if self.action == "retrieve":
            return serializers.ConversationDetailSerializer
        return super().get_serializer_class()

    @extend_schema(responses=serializers.ConversationExportSerializer, description="The conversation as JSON; audit-logged.")
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> Response:
        conversation = self.get_object()
        data = exports.conversation_export_json(conversation_id=conversation.pk, actor=request.user)
        filename = f"conversation-{conversation.pk}.json"
        return Response(data, headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @extend_schema(request=serializers.ReviewActionSerializer, responses=serializers.ConversationSerializer,
                   description="Assign to me, unassign, set the review status (with a note), re-run the judge "
                               "(on the conversation, or one `turn`), flag by hand (`note` = the reason; a `turn` or "
                               "the conversation), score a `turn` on the rubric with labels, or write its corrected answer.")
    @action(detail=True, methods=["post"])
    def review(self, request: Request, pk: str | None = None) -> Response:
        conversation = self.get_object()
        if not request.user.has_perm("conversations.change_conversation"):
            raise PermissionDenied("Reviewing needs the 'change conversation' permission.")
        form = serializers.ReviewActionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        try:
            services.conversations_review_act(
                conversation_ids=[conversation.pk], actor=request.user, action=data["action"],
                status=data.get("status", ""), note=data.get("note", ""), turn_id=data.get("turn"),
                scores=data.get("scores") or {}, hallucination=data.get("hallucination"), labels=data.get("labels") or [],
                corrected_answer=data.get("corrected_answer", ""),
            )
        except services.ReviewError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        conversation.refresh_from_db()
        return Response(serializers.ConversationSerializer(conversation).data)


class TurnViewSet(ChatbotScopedViewSet):
    queryset = Turn.objects.all()
    serializer_class = serializers.TurnSerializer
    filterset_class = filtersets.TurnFilterSet


class EvaluationViewSet(ChatbotScopedViewSet):
    queryset = Evaluation.objects.all()
    serializer_class = serializers.EvaluationSerializer
    filterset_class = filtersets.EvaluationFilterSet


class FeedbackViewSet(ChatbotScopedViewSet):
    queryset = Feedback.objects.all()
    serializer_class = serializers.FeedbackSerializer
    filterset_class = filtersets.FeedbackFilterSet


class ScoreViewSet(ChatbotScopedViewSet):
    """Scores of the chatbots the user may see: bot-reported, outcomes, custom."""

    queryset = Score.objects.all()
    serializer_class = ScoreSerializer
    filterset_class = ScoreFilterSet


class AlertEventViewSet(ChatbotScopedViewSet):
    queryset = AlertEvent.objects.select_related("rule", "chatbot")
    serializer_class = serializers.AlertEventSerializer
    filterset_class = filtersets.AlertEventFilterSet


def stats_scope(request: Request, query: dict[str, Any]) -> list[int] | None:
    """The chatbot ids the stats cover: the one asked for (404 if not visible) or all visible."""
    visible = chatbots_for_user(request.user)
    wanted = query.get("chatbot")
    if not wanted:
        return chatbot_ids_for_user(request.user)
    chatbot_id = ascii_int(wanted)
    lookup = {"pk": chatbot_id} if chatbot_id is not None else {"slug": wanted}
    chatbot_id = visible.filter(**lookup).values_list("id", flat=True).first()
    if chatbot_id is None:
        raise Http404("No such chatbot.")
    return [chatbot_id]


def _stats_query(request: Request, serializer_class: type) -> dict:
    """The stats endpoint's query parameters, validated: an unknown one or a bad value is a 400."""
    unknown_query_params_reject(request, serializer_class().fields)
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


@replica_reads
class StatsOverviewView(APIView):
    @extend_schema(parameters=[serializers.OverviewQuerySerializer], responses=OpenApiTypes.OBJECT,
                   description="The dashboard's figures: every metric of the catalogue (`metrics`: value, sample size, "
                               "change against the previous period of the same length), the trends per hour (windows "
                               "up to 48 h) or day, totals, rates (percent, 0–100), latency percentiles, judge average, "
                               "cost per day, risk distribution, volume by hour, top clusters, open alerts; with "
                               "`breakdown` the window grouped by chatbot, model, intent or channel.")
    def get(self, request: Request) -> Response:
        data = _stats_query(request, serializers.OverviewQuerySerializer)
        chatbot_ids = stats_scope(request, data)
        window = selectors.Window.between(data["since"], data["until"]) if data.get("since") else None
        return Response(selectors.stats_overview(
            chatbot_ids=chatbot_ids, hours=None if window else data["hours"], window=window,
            breakdown=data.get("breakdown"),
        ))


def _stats_window(data: dict) -> selectors.Window:
    return (selectors.Window.between(data["since"], data["until"]) if data.get("since")
            else selectors.Window.last(data["hours"]))


@replica_reads
class StatsBreakdownView(APIView):
    @extend_schema(parameters=[serializers.BreakdownQuerySerializer], responses=OpenApiTypes.OBJECT,
                   description="The window's turns grouped by chatbot, model, intent, channel or release: the 20 biggest "
                               "groups with turns, error rate, thumbs-down rate, judge average, cost and (by chatbot, "
                               "channel, release) the outcome rates, CSAT and NPS; the dashboard's breakdown table.")
    def get(self, request: Request) -> Response:
        data = _stats_query(request, serializers.BreakdownQuerySerializer)
        return Response(selectors.stats_breakdown(chatbot_ids=stats_scope(request, data), window=_stats_window(data),
                                                  by=data["by"]))


@replica_reads
class StatsTimeseriesView(APIView):
    @extend_schema(parameters=[serializers.TimeseriesQuerySerializer], responses=OpenApiTypes.OBJECT,
                   description="One metric of the catalogue per hour or day of the window (`periods`), for all turns "
                               "or one series per group (`group_by`); the dashboard's trend, with the same values.")
    def get(self, request: Request) -> Response:
        data = _stats_query(request, serializers.TimeseriesQuerySerializer)
        try:
            series = selectors.stats_timeseries(
                chatbot_ids=stats_scope(request, data), window=_stats_window(data), metric=data["metric"],
                interval=data.get("interval"), group_by=data.get("group_by"),
            )
        except selectors.TimeseriesUnavailable as exc:
            raise ValidationError({"metric": [str(exc)]}) from None
        return Response(series)


@replica_reads
class StatsEngagementView(APIView):
    @extend_schema(parameters=[serializers.EngagementQuerySerializer], responses=OpenApiTypes.OBJECT,
                   description="Engagement in the window's conversations (latest activity in the window): turns per "
                               "conversation (distribution), returning end users (seen in a conversation started "
                               "before the window), and drop-off: how many conversations end right after a fallback, "
                               "an error or a thumbs-down. Grouped live (not rolled up): slower than the overview on "
                               "long windows.")
    def get(self, request: Request) -> Response:
        data = _stats_query(request, serializers.EngagementQuerySerializer)
        chatbot_ids = stats_scope(request, data)
        window = _stats_window(data)
        return Response({"window": {"since": window.since, "until": window.until, "hours": window.hours},
                         **selectors.engagement(chatbot_ids=chatbot_ids, window=window)})


@replica_reads
class StatsMetricsView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT,
                   description="The metric catalogue: each metric's name, label, unit, how it aggregates, which turns "
                               "it is over, whether the minimum sample size applies, whether higher is better.")
    def get(self, request: Request) -> Response:
        return Response({"metrics": catalogue_as_json()})


@replica_reads
class StatsStepsView(APIView):
    @extend_schema(parameters=[serializers.StepStatsQuerySerializer], responses=OpenApiTypes.OBJECT,
                   description="Steps (SQL queries, tool calls, retrievals, HTTP requests): count, error rate, p50/p95 "
                               "duration, and the slowest and most failing queries grouped by a fingerprint (SQL with "
                               "its literals replaced; other kinds by name).")
    def get(self, request: Request) -> Response:
        from apps.conversations.selectors import step_stats

        data = _stats_query(request, serializers.StepStatsQuerySerializer)
        return Response(step_stats(chatbot_ids=stats_scope(request, data), hours=data["hours"], kind=data.get("kind")))


@replica_reads
class StatsLLMCallsView(APIView):
    @extend_schema(parameters=[serializers.LLMCallStatsQuerySerializer], responses=OpenApiTypes.OBJECT,
                   description="LLM calls by model and function: calls, tokens, cost, latency percentiles, error rate.")
    def get(self, request: Request) -> Response:
        data = _stats_query(request, serializers.LLMCallStatsQuerySerializer)
        chatbot_ids = stats_scope(request, data)
        return Response(selectors.stats_llm_calls(
            chatbot_ids=chatbot_ids, hours=data["hours"], model=data.get("model"), function_name=data.get("function_name"),
        ))

