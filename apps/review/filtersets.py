"""FilterSets of the staff API (django-filter; drf-spectacular documents them in the OpenAPI schema).

The `chatbot` filter only offers the chatbots the requesting user may see: asking for any
other is a 400 "not one of the available choices", never a silent empty list.
"""

from __future__ import annotations

import json

import django_filters as filters
from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.alerts.choices import EventStatus, Severity
from apps.alerts.models import AlertEvent
from apps.chatbots.access import chatbots_for_user
from apps.chatbots.models import Chatbot
from apps.conversations.choices import (
    RISK_SCORE_RANGES,
    FlagReason,
    JudgeStatus,
    ReviewStatus,
    RiskLevel,
)
from apps.conversations.models import Conversation, Turn
from apps.evaluations.choices import EvaluationStatus, Evaluator
from apps.evaluations.models import Evaluation
from apps.feedback.choices import FeedbackSource
from apps.feedback.choices import Rating as FeedbackRating
from apps.feedback.models import Feedback

RATING_CHOICES = (
    ("down", "Has a thumbs-down"),
    ("up", "Has a thumbs-up"),
    ("any", "Rated (up or down)"),
    ("none", "Not rated"),
)


def scoped_chatbots(request) -> QuerySet[Chatbot]:
    if request is None:
        return Chatbot.objects.none()
    return chatbots_for_user(request.user)


def rating_filter(queryset: QuerySet, value: str, prefix: str = "") -> QuerySet:
    up, down = Q(**{f"{prefix}thumbs_up__gt": 0}), Q(**{f"{prefix}thumbs_down__gt": 0})
    return {
        "down": lambda: queryset.filter(down),
        "up": lambda: queryset.filter(up),
        "any": lambda: queryset.filter(up | down),
        "none": lambda: queryset.exclude(up | down),
    }.get(value, lambda: queryset)()


def risk_level_filter(queryset: QuerySet, field: str, levels: list[str]) -> QuerySet:
    condition = Q()
    for level in levels:
        low, high = RISK_SCORE_RANGES[level]
        condition |= Q(**{f"{field}__gte": low, f"{field}__lte": high})
    return queryset.filter(condition) if levels else queryset


def flag_reason_filter(queryset: QuerySet, reason: str) -> QuerySet:
    # JSON list membership that works on PostgreSQL and SQLite: the reason as a quoted JSON string.
    return queryset.filter(flag_reasons__icontains=json.dumps(reason))


class ChatbotFilterSet(filters.FilterSet):
    slug = filters.CharFilter(help_text="Exact slug.")
    search = filters.CharFilter(method="filter_search", help_text="Name, slug or company contains.")

    class Meta:
        model = Chatbot
        fields = ["slug", "provider", "monitoring_enabled", "judge_enabled"]

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(name__icontains=value) | Q(slug__icontains=value) | Q(company__icontains=value))


class FlagReasonAndRatingFilterSet(filters.FilterSet):
    """`flag_reason` and `rating`, which conversations and turns filter the same way (both models
    hold `flag_reasons` and thumbs counters)."""

    flag_reason = filters.ChoiceFilter(choices=FlagReason.choices, method="filter_flag_reason")
    rating = filters.ChoiceFilter(choices=RATING_CHOICES, method="filter_rating")

    def filter_flag_reason(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return flag_reason_filter(queryset, value)

    def filter_rating(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return rating_filter(queryset, value)


class ConversationFilterSet(FlagReasonAndRatingFilterSet):
    chatbot = filters.ModelChoiceFilter(queryset=scoped_chatbots, help_text="Chatbot id.")
    external_id = filters.CharFilter(help_text="The bot's conversation id (exact).")
    channel = filters.CharFilter()
    is_flagged = filters.BooleanFilter()
    review_status = filters.MultipleChoiceFilter(choices=ReviewStatus.choices)
    risk_level = filters.MultipleChoiceFilter(
        choices=RiskLevel.choices, method="filter_risk_level", help_text="Level of the conversation's highest turn risk."
    )
    min_risk_score = filters.NumberFilter(field_name="max_risk_score", lookup_expr="gte")
    judge_min = filters.NumberFilter(field_name="min_judge_score", lookup_expr="gte", help_text="Lowest judge overall ≥.")
    judge_max = filters.NumberFilter(field_name="min_judge_score", lookup_expr="lte", help_text="Lowest judge overall ≤.")
    conversation_judge_min = filters.NumberFilter(
        field_name="conversation_judge_score", lookup_expr="gte", help_text="Conversation judge overall ≥."
    )
    conversation_judge_max = filters.NumberFilter(
        field_name="conversation_judge_score", lookup_expr="lte", help_text="Conversation judge overall ≤."
    )
    assignee = filters.NumberFilter(field_name="assignee_id", help_text="User id of the assignee.")
    unassigned = filters.BooleanFilter(field_name="assignee", lookup_expr="isnull")
    last_activity_after = filters.IsoDateTimeFilter(field_name="last_activity_at", lookup_expr="gte")
    last_activity_before = filters.IsoDateTimeFilter(field_name="last_activity_at", lookup_expr="lt")
    search = filters.CharFilter(
        method="filter_search", help_text="Conversation id (exact) or text in a user message or bot answer."
    )

    class Meta:
        model = Conversation
        fields: list[str] = []

    def filter_risk_level(self, queryset: QuerySet, name: str, value: list[str]) -> QuerySet:
        return risk_level_filter(queryset, "max_risk_score", value)

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return conversation_search(queryset, value)


def conversation_search(queryset: QuerySet, value: str) -> QuerySet:
    """Exact conversation id, or text in any of its turns (EXISTS, so no duplicate rows)."""
    value = value.strip()
    if not value:
        return queryset
    text = Turn.objects.filter(conversation_id=OuterRef("pk")).filter(turn_text_contains(value))
    return queryset.filter(Q(external_id=value) | Exists(text))


def turn_text_contains(value: str) -> Q:
    """Turns whose message or answer contains `value`, any case: on PostgreSQL
    `UPPER(text) LIKE UPPER('%value%')`, which the trigram index `turn_text_trgm` answers."""
    return Q(user_message__icontains=value) | Q(bot_response__icontains=value)


class TurnFilterSet(FlagReasonAndRatingFilterSet):
    chatbot = filters.ModelChoiceFilter(queryset=scoped_chatbots, help_text="Chatbot id.")
    conversation = filters.NumberFilter(field_name="conversation_id", help_text="Conversation id.")
    external_id = filters.CharFilter()
    risk_level = filters.MultipleChoiceFilter(choices=RiskLevel.choices)
    min_risk_score = filters.NumberFilter(field_name="risk_score", lookup_expr="gte")
    is_flagged = filters.BooleanFilter()
    has_error = filters.BooleanFilter()
    fallback_used = filters.BooleanFilter()
    judge_status = filters.ChoiceFilter(choices=JudgeStatus.choices)
    judge_min = filters.NumberFilter(field_name="judge_overall", lookup_expr="gte")
    judge_max = filters.NumberFilter(field_name="judge_overall", lookup_expr="lte")
    model = filters.CharFilter()
    intent = filters.CharFilter()
    timestamp_after = filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    timestamp_before = filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = Turn
        fields: list[str] = []


class EvaluationFilterSet(filters.FilterSet):
    chatbot = filters.ModelChoiceFilter(queryset=scoped_chatbots, help_text="Chatbot id.")
    turn = filters.NumberFilter(field_name="turn_id")
    conversation = filters.NumberFilter(field_name="turn__conversation_id")
    evaluator = filters.ChoiceFilter(choices=Evaluator.choices)
    evaluator_version = filters.CharFilter()
    status = filters.ChoiceFilter(choices=EvaluationStatus.choices)
    hallucination = filters.BooleanFilter()
    overall_min = filters.NumberFilter(field_name="overall", lookup_expr="gte")
    overall_max = filters.NumberFilter(field_name="overall", lookup_expr="lte")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Evaluation
        fields: list[str] = []


class FeedbackFilterSet(filters.FilterSet):
    chatbot = filters.ModelChoiceFilter(queryset=scoped_chatbots, help_text="Chatbot id.")
    turn = filters.NumberFilter(field_name="turn_id")
    conversation = filters.NumberFilter(field_name="turn__conversation_id")
    rating = filters.ChoiceFilter(choices=FeedbackRating.choices)
    source = filters.ChoiceFilter(choices=FeedbackSource.choices)
    has_comment = filters.BooleanFilter(method="filter_has_comment")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Feedback
        fields: list[str] = []

    def filter_has_comment(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return queryset.exclude(comment="") if value else queryset.filter(comment="")


class AlertEventFilterSet(filters.FilterSet):
    chatbot = filters.ModelChoiceFilter(queryset=scoped_chatbots, help_text="Chatbot id.")
    rule = filters.NumberFilter(field_name="rule_id")
    status = filters.MultipleChoiceFilter(choices=EventStatus.choices)
    severity = filters.ChoiceFilter(choices=Severity.choices)
    metric = filters.CharFilter()
    started_after = filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = AlertEvent
        fields: list[str] = []
