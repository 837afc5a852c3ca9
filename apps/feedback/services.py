"""Feedback writes: one vote per (turn, voter), with the turn's and conversation's thumbs exact.

Lock order (apps/conversations/services.py): the conversation row first, then its turns, then
feedback rows. Every vote for a conversation is therefore serialised by that one row lock, so
counters are changed with plain increments and never drift, even under concurrent votes.
"""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest

from apps.conversations.choices import FlagReason
from apps.conversations.models import Conversation, Turn
from apps.conversations.services import turn_flag_add
from apps.privacy.hashing import end_user_hash
from apps.privacy.redaction import redact

from .choices import FeedbackSource, Rating
from .models import Feedback


class FeedbackTurnNotFound(Exception):
    """The turn was deleted (retention, erasure) after its token was issued."""


@dataclass(frozen=True)
class FeedbackResult:
    feedback: Feedback
    created: bool
    # False for an identical repeat: nothing was written.
    changed: bool

    @property
    def status(self) -> str:
        if self.created:
            return "created"
        return "updated" if self.changed else "unchanged"


def feedback_voter_key(*, turn: Turn, user_id: str = "") -> str:
    """Who is voting, as a keyed hash: one feedback per turn per voter (see voter_key_compute)."""
    conversation_hash = ""
    if not user_id:
        conversation_hash = (
            Conversation.objects.filter(pk=turn.conversation_id)
            .values_list("end_user_hash", flat=True)
            .first()
            or ""
        )
    return voter_key_compute(
        chatbot_id=turn.chatbot_id,
        turn_id=turn.pk,
        conversation_end_user_hash=conversation_hash,
        user_id=user_id,
    )


def voter_key_compute(
    *, chatbot_id: int, turn_id: int, conversation_end_user_hash: str, user_id: str = ""
) -> str:
    """The voter of a vote, in this order:

    1. A bot that names its end user (bot-side API with `user_id`): the same HMAC as the
       conversation's `end_user_hash`, so a vote from the bot's UI and one from the widget by
       the same person replace each other.
    2. Otherwise the conversation's end user, when the bot sent a `user_id` at ingest.
    3. Otherwise (anonymous conversation) a keyed hash of the turn itself: the turn gets at most
       one anonymous vote, which later anonymous votes replace. A widget has no trustworthy
       identity of its own (cookies are third-party, ids are forgeable), and the token already
       limits who can vote to whoever was shown the answer.
    """
    if user_id:
        return end_user_hash(chatbot_id=chatbot_id, user_id=user_id)
    if conversation_end_user_hash:
        return conversation_end_user_hash
    message = f"anonymous-turn:{turn_id}".encode()
    return hmac.new(settings.END_USER_HASH_KEY.encode(), message, hashlib.sha256).hexdigest()


def feedback_submit(
    *,
    turn_id: int,
    voter_key: str,
    rating: str,
    comment: str | None = None,
    source: str = FeedbackSource.WIDGET,
) -> FeedbackResult:
    """Record a vote; a later vote by the same voter on the same turn replaces the earlier one.

    `comment=None` keeps the stored comment when the rating is unchanged (a repeated click does
    not wipe what the user wrote) and clears it when the rating flips (it described the other
    rating). A given comment, even "", replaces the stored one.

    1. Lock the conversation row (lock order), then read the voter's existing feedback.
    2. Redact the comment when the chatbot redacts PII; an identical repeat → nothing written.
    3. Write the feedback row and move the turn's and conversation's counters by the difference.
    4. A new thumbs-down flags the turn ("thumbs_down"); when a turn loses its last thumbs-down
       (vote changed to up) that flag reason is withdrawn again.
    """
    if rating not in Rating.values:
        raise ValueError(f"unknown rating {rating!r}")
    with transaction.atomic():
        conversation_id = (
            Turn.objects.filter(pk=turn_id).values_list("conversation_id", flat=True).first()
        )
        if conversation_id is None:
            raise FeedbackTurnNotFound(turn_id)
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        turn = Turn.objects.select_for_update(of=("self",)).select_related("chatbot").get(pk=turn_id)
        if comment and turn.chatbot.pii_redaction_enabled:
            # End users type comments: the chatbot's redaction applies to them as to its turns.
            comment = redact(comment)[0]
        existing = (
            Feedback.objects.select_for_update()
            .filter(turn_id=turn_id, voter_key=voter_key)
            .first()
        )

        if existing is None:
            feedback = Feedback.objects.create(
                turn=turn,
                chatbot_id=turn.chatbot_id,
                voter_key=voter_key,
                rating=rating,
                comment=comment or "",
                source=source,
            )
            _thumbs_move(turn=turn, conversation=conversation, old=None, new=rating)
            if rating == Rating.DOWN:
                turn_flag_add(turn_id=turn_id, reason=FlagReason.THUMBS_DOWN)
            return FeedbackResult(feedback=feedback, created=True, changed=True)

        old_rating = existing.rating
        if comment is None:
            new_comment = existing.comment if old_rating == rating else ""
        else:
            new_comment = comment
        if old_rating == rating and existing.comment == new_comment and existing.source == source:
            return FeedbackResult(feedback=existing, created=False, changed=False)

        existing.rating = rating
        existing.comment = new_comment
        existing.source = source
        existing.save(update_fields=["rating", "comment", "source", "updated_at"])
        if old_rating != rating:
            _thumbs_move(turn=turn, conversation=conversation, old=old_rating, new=rating)
            if rating == Rating.DOWN:
                turn_flag_add(turn_id=turn_id, reason=FlagReason.THUMBS_DOWN)
            else:
                _thumbs_down_flag_withdraw(turn_id=turn_id, conversation_id=conversation_id)
        return FeedbackResult(feedback=existing, created=False, changed=True)


def feedback_delete(*, feedback_id: int) -> bool:
    """Delete one vote (admin removing spam) and take it out of the counters. False if gone."""
    with transaction.atomic():
        row = (
            Feedback.objects.filter(pk=feedback_id)
            .values_list("turn__conversation_id", flat=True)
            .first()
        )
        if row is None:
            return False
        conversation = Conversation.objects.select_for_update().get(pk=row)
        feedback = (
            Feedback.objects.select_for_update()
            .select_related("turn")
            .filter(pk=feedback_id)
            .first()
        )
        if feedback is None:
            return False
        turn = Turn.objects.select_for_update().get(pk=feedback.turn_id)
        feedback.delete()
        _thumbs_move(turn=turn, conversation=conversation, old=feedback.rating, new=None)
        if feedback.rating == Rating.DOWN:
            _thumbs_down_flag_withdraw(turn_id=turn.pk, conversation_id=conversation.pk)
        return True


_COUNTER = {Rating.UP.value: "thumbs_up", Rating.DOWN.value: "thumbs_down"}


def _thumbs_move(
    *, turn: Turn, conversation: Conversation, old: str | None, new: str | None
) -> None:
    """Take one vote off `old` and put one on `new`, on the turn and its conversation."""
    if old == new:
        return
    changes: dict[str, Any] = {}
    if old is not None:
        field = _COUNTER[old]
        # Never below zero, even on rows whose counters were written by an older import.
        changes[field] = Greatest(F(field) - 1, Value(0))
    if new is not None:
        changes[_COUNTER[new]] = F(_COUNTER[new]) + 1
    if not changes:
        return
    Turn.objects.filter(pk=turn.pk).update(**changes)
    Conversation.objects.filter(pk=conversation.pk).update(**changes)


def _thumbs_down_flag_withdraw(*, turn_id: int, conversation_id: int) -> None:
    """Drop the "thumbs_down" reason from a turn with no thumbs-down left.

    The conversation keeps the reason while another of its turns still has it, and stays
    flagged while any other reason (risk, judge, manual) remains. Runs under the conversation
    lock taken by the caller.
    """
    turn = Turn.objects.get(pk=turn_id)
    if turn.thumbs_down > 0 or FlagReason.THUMBS_DOWN not in turn.flag_reasons:
        return
    turn.flag_reasons = [r for r in turn.flag_reasons if r != FlagReason.THUMBS_DOWN]
    turn.is_flagged = bool(turn.flag_reasons)
    turn.save(update_fields=["flag_reasons", "is_flagged"])

    still_elsewhere = any(
        FlagReason.THUMBS_DOWN in reasons
        for reasons in Turn.objects.filter(conversation_id=conversation_id, is_flagged=True)
        .exclude(pk=turn_id)
        .values_list("flag_reasons", flat=True)
    )
    if still_elsewhere:
        return
    conversation = Conversation.objects.get(pk=conversation_id)
    if FlagReason.THUMBS_DOWN not in conversation.flag_reasons:
        return
    conversation.flag_reasons = [
        r for r in conversation.flag_reasons if r != FlagReason.THUMBS_DOWN
    ]
    fields = ["flag_reasons"]
    if not conversation.flag_reasons:
        conversation.is_flagged = False
        conversation.flagged_at = None
        fields += ["is_flagged", "flagged_at"]
    conversation.save(update_fields=fields)
