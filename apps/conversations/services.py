"""Writes that keep a conversation's summary and flags consistent, shared by every app.

Lock order everywhere: the conversation row first (SELECT … FOR UPDATE), then its turns. Ingest,
feedback, the judge and erasure all follow it, so concurrent writers never deadlock and the
summary stays exact.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from .models import Conversation, Turn


def turn_flag_add(*, turn_id: int, reason: str) -> bool:
    """Flag a turn (and its conversation) with `reason`. Returns False if it already had it."""
    with transaction.atomic():
        conversation_id = Turn.objects.filter(pk=turn_id).values_list("conversation_id", flat=True).first()
        if conversation_id is None:
            return False
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        turn = Turn.objects.get(pk=turn_id)
        if reason in turn.flag_reasons:
            return False
        turn.flag_reasons = [*turn.flag_reasons, reason]
        turn.is_flagged = True
        turn.save(update_fields=["flag_reasons", "is_flagged"])
        _conversation_flag_reason_add(conversation, reason)
        return True


def _conversation_flag_reason_add(conversation: Conversation, reason: str) -> None:
    fields = conversation_flag_reasons_merge(conversation, [reason], now=timezone.now())
    if fields:
        conversation.save(update_fields=fields)


def conversation_flag_reasons_merge(conversation: Conversation, reasons: list[str], *, now: datetime) -> list[str]:
    """Add `reasons` to a locked conversation in memory; returns the fields that changed (unsaved)."""
    fields: list[str] = []
    for reason in reasons:
        if reason not in conversation.flag_reasons:
            conversation.flag_reasons = [*conversation.flag_reasons, reason]
            if "flag_reasons" not in fields:
                fields.append("flag_reasons")
    if reasons and not conversation.is_flagged:
        conversation.is_flagged = True
        conversation.flagged_at = now
        fields += ["is_flagged", "flagged_at"]
    return fields


def conversation_summary_recompute(*, conversation_id: int) -> Conversation | None:
    """Rebuild every summary field from the stored turns (after erasure, retention, repair).

    Deletes the conversation when it has no turns left. Returns the conversation, or None.
    """
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
        if conversation is None:
            return None
        turns = Turn.objects.filter(conversation_id=conversation_id)
        totals = turns.aggregate(
            turn_count=Count("id"),
            total_tokens=Sum("total_tokens"),
            cost_usd=Sum("total_cost_usd"),
            error_count=Count("id", filter=Q(has_error=True)),
            fallback_count=Count("id", filter=Q(fallback_used=True)),
            thumbs_up=Sum("thumbs_up"),
            thumbs_down=Sum("thumbs_down"),
            max_risk_score=Max("risk_score"),
            min_judge_score=Min("judge_overall"),
            last_activity_at=Max("timestamp"),
            started_at=Min("timestamp"),
        )
        if not totals["turn_count"]:
            conversation.delete()
            return None
        reasons: list[str] = []
        for turn_reasons in turns.filter(is_flagged=True).values_list("flag_reasons", flat=True):
            reasons += [r for r in turn_reasons if r not in reasons]
        Conversation.objects.filter(pk=conversation_id).update(
            turn_count=totals["turn_count"],
            total_tokens=totals["total_tokens"] or 0,
            cost_usd=totals["cost_usd"] or 0,
            error_count=totals["error_count"],
            fallback_count=totals["fallback_count"],
            thumbs_up=totals["thumbs_up"] or 0,
            thumbs_down=totals["thumbs_down"] or 0,
            max_risk_score=totals["max_risk_score"] or 0,
            min_judge_score=totals["min_judge_score"],
            last_activity_at=totals["last_activity_at"],
            started_at=totals["started_at"],
            is_flagged=bool(reasons),
            flag_reasons=reasons,
        )
        conversation.refresh_from_db()
        return conversation
