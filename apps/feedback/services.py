"""Feedback writes: one vote per (turn, voter), with the turn's and conversation's thumbs exact.

The lock order and the thumbs counters belong to apps/conversations/services.py: a vote locks
the conversation there first, then its turn, then feedback rows, so every vote for a
conversation is serialised by that one row lock and the counters never drift.
"""

from dataclasses import dataclass

from django.db import transaction

from apps.conversations.choices import Consent, FlagReason
from apps.conversations.models import Turn
from apps.conversations.services import (
    conversation_lock,
    conversation_lock_for_turn,
    turn_flag_add,
    turn_flag_withdraw,
    turn_thumbs_move,
)
from apps.privacy.hashing import anonymous_turn_voter_hash, end_user_hash
from apps.privacy.policy import text_redact_for, text_withheld

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
    turn_end_user_hash = ""
    if not user_id:
        row = (
            Turn.objects.filter(pk=turn.pk)
            .values_list("end_user_hash", "conversation__end_user_hash")
            .first()
        )
        turn_end_user_hash = (row[0] or row[1]) if row else ""
    return voter_key_compute(
        chatbot_id=turn.chatbot_id,
        turn_id=turn.pk,
        turn_end_user_hash=turn_end_user_hash,
        user_id=user_id,
    )


def voter_key_compute(*, chatbot_id: int, turn_id: int, turn_end_user_hash: str, user_id: str = "") -> str:
    """The voter of a vote, in this order:

    1. A bot that names its end user (bot-side API with `user_id`): the same HMAC as the turn's
       `end_user_hash` (apps.privacy.hashing), so a vote from the bot's UI and one from the
       widget by the same person replace each other.
    2. Otherwise the turn's end user (the turn's own `user_id` at ingest, else its
       conversation's end user): `turn_end_user_hash`.
    3. Otherwise (anonymous turn) a keyed hash of the turn itself: the turn gets at most
       one anonymous vote, which later anonymous votes replace. A widget has no trustworthy
       identity of its own (cookies are third-party, ids are forgeable), and the token already
       limits who can vote to whoever was shown the answer.
    """
    if user_id:
        voter = end_user_hash(chatbot_id=chatbot_id, user_id=user_id)
        if voter:
            return voter
    if turn_end_user_hash:
        return turn_end_user_hash
    return anonymous_turn_voter_hash(turn_id=turn_id)


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
        conversation = conversation_lock_for_turn(turn_id=turn_id)
        if conversation is None:
            raise FeedbackTurnNotFound(turn_id)
        conversation_id = conversation.pk
        turn = Turn.objects.select_for_update(of=("self",)).select_related("chatbot").get(pk=turn_id)
        if comment:
            # End users type comments: the chatbot's redaction applies to them as to its turns,
            # and a no_content conversation keeps the vote, not the words.
            comment = text_redact_for(turn.chatbot, comment)[0]
            if conversation.consent == Consent.NO_CONTENT:
                comment = text_withheld(comment)
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
            turn_thumbs_move(turn_id=turn.pk, conversation_id=conversation_id, old=None, new=rating)
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
            turn_thumbs_move(turn_id=turn.pk, conversation_id=conversation_id, old=old_rating, new=rating)
            if rating == Rating.DOWN:
                turn_flag_add(turn_id=turn_id, reason=FlagReason.THUMBS_DOWN)
            else:
                turn_flag_withdraw(turn_id=turn_id, conversation_id=conversation_id, reason=FlagReason.THUMBS_DOWN)
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
        conversation = conversation_lock(conversation_id=row)
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
        turn_thumbs_move(turn_id=turn.pk, conversation_id=conversation.pk, old=feedback.rating, new=None)
        if feedback.rating == Rating.DOWN:
            turn_flag_withdraw(turn_id=turn.pk, conversation_id=conversation.pk, reason=FlagReason.THUMBS_DOWN)
        return True

