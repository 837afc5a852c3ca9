"""Writes that keep a conversation's summary and flags consistent, shared by every app.

Lock order everywhere: the conversation row first (SELECT … FOR UPDATE), then its turns. Ingest,
feedback, the judge and erasure all follow it, so concurrent writers never deadlock and the
summary stays exact.
"""

from datetime import datetime

from django.db import transaction
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
