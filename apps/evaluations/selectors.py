"""Reads for the judges: which conversations the conversation judge may see."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Mod, TruncDay, TruncHour

from apps.chatbots.models import Chatbot
from apps.conversations.choices import Consent
from apps.conversations.metrics_catalogue import conversation_judge_aggregates, window_q
from apps.conversations.models import Conversation

from .choices import EvaluationStatus
from .models import ConversationEvaluation
from .sampling import SAMPLE_BUCKETS, SAMPLE_MULTIPLIER


def conversations_judgeable(
    *, chatbot: Chatbot, sampled_only: bool = True
) -> QuerySet[Conversation]:
    """The one definition of the chatbot's conversations that may be sent to the conversation
    judge: every path (the idle sweep, the `end` event, the task itself before it calls a model)
    starts from this queryset, so an exclusion added here holds everywhere.

    `sampled_only`: within the chatbot's conversation sample rate (the same deterministic
    choice as `apps.evaluations.sampling.conversation_is_sampled`); the task passes False, the
    evaluation row already says the conversation was chosen (or a person asked for it).
    """
    # Consent no_content: no text was stored, and none may reach a model (apps.privacy.policy).
    conversations = Conversation.objects.filter(chatbot=chatbot, turn_count__gt=0).exclude(
        consent=Consent.NO_CONTENT
    )
    rate = chatbot.conversation_judge_sample_rate
    if sampled_only and rate < 1.0:
        conversations = conversations.alias(
            sample_bucket=Mod(F("id") * Value(SAMPLE_MULTIPLIER), Value(SAMPLE_BUCKETS))
        ).filter(sample_bucket__lt=rate * SAMPLE_BUCKETS)
    return conversations


def conversation_evaluations_covering(
    *, version: str, conversation: Any = None
) -> QuerySet[ConversationEvaluation]:
    """The evaluations of `version` that make a new one of the conversation pointless: one in
    progress, or a finished one that saw at least the turns the conversation has now (a
    conversation resumed after its grade has more, and is graded again once it is over).

    `conversation`: a Conversation, or OuterRef("pk") inside a conversation queryset.
    """
    if isinstance(conversation, Conversation):
        conversation_id, turn_count = conversation.pk, conversation.turn_count
    else:
        conversation_id, turn_count = OuterRef("pk"), OuterRef("turn_count")
    return ConversationEvaluation.objects.filter(
        Q(status=EvaluationStatus.PENDING) | Q(turn_count__gte=turn_count),
        conversation_id=conversation_id,
        evaluator_version=version,
    )


def conversations_idle_unjudged(
    *, chatbot: Chatbot, version: str, now: datetime, lookback_hours: int | None = None
) -> QuerySet[Conversation]:
    """The chatbot's judgeable conversations idle for its `conversation_idle_minutes` (within the
    lookback window) that no evaluation of `version` covers (`conversation_evaluations_covering`:
    never graded, or grown since), oldest activity first.

    The range on last_activity_at is served by the (chatbot, -last_activity_at) index, the
    covering grades by the conversation foreign key's index.
    """
    cutoff = now - timedelta(minutes=chatbot.conversation_idle_minutes)
    lookback = (
        settings.CONVERSATION_JUDGE_LOOKBACK_HOURS if lookback_hours is None else lookback_hours
    )
    since = cutoff - timedelta(hours=lookback)
    judged = conversation_evaluations_covering(version=version)
    return (
        conversations_judgeable(chatbot=chatbot)
        .filter(last_activity_at__lt=cutoff, last_activity_at__gte=since)
        .exclude(Exists(judged))
        .order_by("last_activity_at")
    )


def conversation_evaluation_latest(*, conversation_id: int) -> ConversationEvaluation | None:
    """The conversation's most recent conversation evaluation (any status), for the transcript."""
    return (
        ConversationEvaluation.objects.filter(conversation_id=conversation_id)
        .select_related("llm_call")
        .order_by("-created_at", "-id")
        .first()
    )


def conversation_judge_overall(*, field: str = "overall") -> Subquery:
    """The overall (or another `field`) of a conversation's latest completed conversation
    evaluation, as a subquery over OuterRef("pk") (the review queue filters and sorts by it)."""
    latest = (
        ConversationEvaluation.objects.filter(
            conversation_id=OuterRef("pk"), status=EvaluationStatus.DONE
        )
        .order_by("-completed_at", "-id")
        .values(field)[:1]
    )
    return Subquery(latest, output_field=ConversationEvaluation._meta.get_field(field))


def conversation_judge_figures(
    *,
    chatbot_ids: Sequence[int] | None,
    since: datetime,
    until: datetime,
    interval: str | None = None,
) -> Any:
    """The metric catalogue's conversation-judge figures over the evaluations completed in
    (since, until]: totals, or per local "hour"/"day" period (served by conv_eval_chatbot_done)."""
    rows = ConversationEvaluation.objects.filter(
        window_q(since, until, "completed_at"), status=EvaluationStatus.DONE
    ).order_by()
    if chatbot_ids is not None:
        rows = rows.filter(chatbot_id__in=list(chatbot_ids))
    aggregates = conversation_judge_aggregates()
    if interval is None:
        return rows.aggregate(**aggregates)
    trunc = TruncHour("completed_at") if interval == "hour" else TruncDay("completed_at")
    return {
        row.pop("period"): row
        for row in rows.annotate(period=trunc).values("period").annotate(**aggregates)
    }
