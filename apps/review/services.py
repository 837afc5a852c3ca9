"""Review actions on conversations: assign, set status with a note, re-run the judge, export;
and on one turn: a human score with labels, a manual flag, a corrected answer, a judge re-run.

Every action is scoped to the chatbots the actor may see (the callers check too; this is the
last line) and writes one AuditEvent per conversation it changed. Audit data holds ids and
statuses only: a reviewer's note is user text and stays on the conversation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from apps.alerts.risk_alerts import risk_events_resolve
from apps.audit.services import audit_event_record
from apps.chatbots.access import chatbot_scoped
from apps.conversations.choices import FlagReason, ReviewStatus
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.conversations.services import conversation_flag_add, turn_flag_add
from apps.evaluations.services import HumanEvaluationError, human_evaluation_save, judge_rerun

# Statuses a reviewer sets by hand; "new" is where a flagged conversation starts.
SETTABLE_STATUSES = (ReviewStatus.IN_REVIEW, ReviewStatus.RESOLVED, ReviewStatus.FALSE_POSITIVE, ReviewStatus.NEW)
DONE_STATUSES = (ReviewStatus.RESOLVED, ReviewStatus.FALSE_POSITIVE)
# The review page's decision buttons, in order, with their keyboard keys.
DECISION_KEYS = ((ReviewStatus.RESOLVED, "r"), (ReviewStatus.FALSE_POSITIVE, "x"), (ReviewStatus.IN_REVIEW, "i"))
MAX_NOTE_CHARS = 5000
MAX_CORRECTION_CHARS = 20000


class ReviewError(Exception):
    """A review action that cannot be done as asked (bad status, judge unavailable, …)."""


def _scoped_conversations(*, actor: AbstractBaseUser, conversation_ids: Iterable[int]) -> list[Conversation]:
    return list(
        chatbot_scoped(Conversation.objects.filter(pk__in=list(conversation_ids)), actor)
        .select_related("chatbot")
        .order_by("pk")
    )


def conversations_assign(*, conversation_ids: Iterable[int], actor: AbstractBaseUser,
                         assignee: AbstractBaseUser | None) -> int:
    """Assign (or unassign, with None) conversations; a "new" one moves to "in review" when assigned."""
    changed = 0
    with transaction.atomic():
        for conversation in _scoped_conversations(actor=actor, conversation_ids=conversation_ids):
            previous = conversation.assignee_id
            new_id = assignee.pk if assignee is not None else None
            if previous == new_id:
                continue
            updates: dict[str, Any] = {"assignee_id": new_id}
            if assignee is not None and conversation.review_status == ReviewStatus.NEW:
                updates["review_status"] = ReviewStatus.IN_REVIEW
            # Compare-and-set on the old assignee: two reviewers clicking at once, one wins.
            if not Conversation.objects.filter(pk=conversation.pk, assignee_id=previous).update(**updates):
                continue
            changed += 1
            audit_event_record(
                action="review.assign", actor=actor, target=conversation, chatbot=conversation.chatbot,
                data={"assignee_id": new_id, "previous_assignee_id": previous,
                      "review_status": str(updates.get("review_status", conversation.review_status))},
            )
    return changed


def _note_stamped(conversation: Conversation, *, actor: AbstractBaseUser, what: str, note: str, now: Any) -> str:
    stamp = f"[{now:%Y-%m-%d %H:%M} UTC, {actor.get_username()}, {what}]"
    return f"{conversation.review_note}\n\n{stamp} {note}".strip()


def conversations_review_status_set(*, conversation_ids: Iterable[int], actor: AbstractBaseUser,
                                    status: str, note: str = "") -> int:
    """Set the review status of conversations, appending `note` (stamped with who and when)."""
    if status not in SETTABLE_STATUSES:
        raise ReviewError(f"Unknown review status {status!r}.")
    note = (note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise ReviewError(f"The note is longer than {MAX_NOTE_CHARS} characters.")
    now = timezone.now()
    changed = 0
    with transaction.atomic():
        for conversation in _scoped_conversations(actor=actor, conversation_ids=conversation_ids):
            previous = conversation.review_status
            if previous == status and not note:
                continue
            review_note = conversation.review_note
            if note:
                review_note = _note_stamped(conversation, actor=actor, what=ReviewStatus(status).label, note=note, now=now)
            updates: dict[str, Any] = {"review_status": status, "review_note": review_note}
            updates["reviewed_at"] = now if status in DONE_STATUSES else None
            if status != ReviewStatus.NEW and conversation.assignee_id is None:
                updates["assignee_id"] = actor.pk  # whoever decides owns the decision
            Conversation.objects.filter(pk=conversation.pk).update(**updates)
            if status in DONE_STATUSES:
                risk_events_resolve(conversation_ids=[conversation.pk], now=now)
            changed += 1
            audit_event_record(
                action="review.status", actor=actor, target=conversation, chatbot=conversation.chatbot,
                data={"from": previous, "to": status, "note_chars": len(note)},
            )
    return changed


def conversations_judge_rerun(*, conversation_ids: Iterable[int], actor: AbstractBaseUser) -> int:
    """Queue a fresh judge run for every turn of the conversations; returns the number of turns.

    `judge_rerun` writes the AuditEvent ("judge.rerun") per conversation itself.
    """
    conversations = _scoped_conversations(actor=actor, conversation_ids=conversation_ids)
    turn_ids = list(Turn.objects.filter(conversation__in=conversations).order_by("pk").values_list("pk", flat=True))
    if not turn_ids:
        return 0
    return judge_rerun(turn_ids=turn_ids, actor=actor)


def _scoped_turn(*, actor: AbstractBaseUser, conversation_ids: list[int], turn_id: int | None) -> Turn:
    turn = (
        chatbot_scoped(Turn.objects.filter(pk=turn_id, conversation_id__in=conversation_ids), actor)
        .select_related("chatbot", "conversation").first()
        if turn_id is not None else None
    )
    if turn is None:
        raise ReviewError("No such turn in this conversation.")
    return turn


def turn_human_score(*, turn: Turn, actor: AbstractBaseUser, scores: dict[str, float | None],
                     hallucination: bool | None, labels: list[str]) -> bool:
    """The reviewer's rubric scores and labels for a turn (their own evaluation, edited in place)."""
    try:
        evaluation, created = human_evaluation_save(
            turn=turn, reviewer=actor, scores=scores, hallucination=hallucination, labels=labels
        )
    except HumanEvaluationError as exc:
        raise ReviewError(str(exc)) from exc
    audit_event_record(
        action="review.score", actor=actor, target=turn.conversation, chatbot=turn.chatbot,
        data={"turn_id": turn.pk, "evaluation_id": evaluation.pk, "created": created, "overall": evaluation.overall,
              "hallucination": evaluation.hallucination, "labels": evaluation.labels},
    )
    return created


def conversation_flag_manual(*, conversation_id: int, actor: AbstractBaseUser, turn: Turn | None, note: str) -> bool:
    """Flag a turn (and so its conversation), or the conversation alone, by hand ("manual"),
    with the reviewer's reason appended to the review notes. Returns False if it already was."""
    note = (note or "").strip()
    if not note:
        raise ReviewError("Say why you flag it.")
    if len(note) > MAX_NOTE_CHARS:
        raise ReviewError(f"The reason is longer than {MAX_NOTE_CHARS} characters.")
    now = timezone.now()
    with transaction.atomic():
        if turn is not None:
            added = turn_flag_add(turn_id=turn.pk, reason=FlagReason.MANUAL)
        else:
            added = conversation_flag_add(conversation_id=conversation_id, reason=FlagReason.MANUAL)
        conversation = Conversation.objects.select_related("chatbot").get(pk=conversation_id)
        what = f"Flagged turn #{turn.sequence}" if turn is not None else "Flagged"
        Conversation.objects.filter(pk=conversation_id).update(
            review_note=_note_stamped(conversation, actor=actor, what=what, note=note, now=now)
        )
        audit_event_record(
            action="review.flag", actor=actor, target=conversation, chatbot=conversation.chatbot,
            data={"turn_id": turn.pk if turn is not None else None, "reason": FlagReason.MANUAL, "added": added,
                  "note_chars": len(note)},
        )
    return added


def turn_answer_correct(*, turn: Turn, actor: AbstractBaseUser, corrected_answer: str) -> None:
    """Store what the bot should have answered (empty clears it); the fine-tuning export's target."""
    text = (corrected_answer or "").strip()
    if len(text) > MAX_CORRECTION_CHARS:
        raise ReviewError(f"The corrected answer is longer than {MAX_CORRECTION_CHARS} characters.")
    with transaction.atomic():
        Turn.objects.filter(pk=turn.pk).update(
            corrected_answer=text, corrected_by=actor if text else None, corrected_at=timezone.now() if text else None,
        )
        audit_event_record(
            action="review.correct", actor=actor, target=turn.conversation, chatbot=turn.chatbot,
            data={"turn_id": turn.pk, "chars": len(text), "previous_chars": len(turn.corrected_answer)},
        )


REVIEW_ACTIONS = ("assign_to_me", "unassign", "set_status", "rerun_judge", "score", "flag", "correct")
TURN_ACTIONS = ("score", "correct")


def conversations_review_act(
    *, conversation_ids: Iterable[int], actor: AbstractBaseUser, action: str, status: str = "", note: str = "",
    turn_id: int | None = None, scores: dict[str, float | None] | None = None, hallucination: bool | None = None,
    labels: list[str] | None = None, corrected_answer: str = "",
) -> str:
    """One review action by name, as the review page's buttons and `POST …/review/` send it;
    returns what happened, in words for the reviewer.

    `rerun_judge` and `flag` act on the turn `turn_id` when given, else on the conversation;
    `score` and `correct` need a turn.
    """
    ids = list(conversation_ids)
    turn = None
    if action in TURN_ACTIONS or (action in ("rerun_judge", "flag") and turn_id is not None):
        if len(ids) != 1:
            raise ReviewError("A turn action works on one conversation.")
        turn = _scoped_turn(actor=actor, conversation_ids=ids, turn_id=turn_id)
    if action == "score":
        created = turn_human_score(turn=turn, actor=actor, scores=scores or {}, hallucination=hallucination,
                                   labels=labels or [])
        return f"Your scores for turn #{turn.sequence} are {'saved' if created else 'updated'}."
    if action == "correct":
        turn_answer_correct(turn=turn, actor=actor, corrected_answer=corrected_answer)
        return f"Corrected answer for turn #{turn.sequence} {'saved' if corrected_answer.strip() else 'removed'}."
    if action == "flag":
        if not _scoped_conversations(actor=actor, conversation_ids=ids[:1]) or len(ids) != 1:
            raise ReviewError("No such conversation.")
        added = conversation_flag_manual(conversation_id=ids[0], actor=actor, turn=turn, note=note)
        target = f"Turn #{turn.sequence}" if turn is not None else "The conversation"
        return f"{target} flagged by hand." if added else f"{target} was already flagged by hand; reason noted."
    if action == "rerun_judge" and turn is not None:
        judge_rerun(turn_ids=[turn.pk], actor=actor)
        return f"Judge queued for turn #{turn.sequence}."
    if action == "assign_to_me":
        conversations_assign(conversation_ids=ids, actor=actor, assignee=actor)
        return "Assigned to you."
    if action == "unassign":
        conversations_assign(conversation_ids=ids, actor=actor, assignee=None)
        return "Unassigned."
    if action == "set_status":
        conversations_review_status_set(conversation_ids=ids, actor=actor, status=status, note=note)
        return f"Review status: {ReviewStatus(status).label}."
    if action == "rerun_judge":
        return f"Judge queued for {conversations_judge_rerun(conversation_ids=ids, actor=actor)} turn(s)."
    raise ReviewError(f"Unknown review action {action!r}.")


def conversations_export(*, conversation_ids: Iterable[int], actor: AbstractBaseUser) -> list[Conversation]:
    """The conversations (those `actor` may see, by id) loaded with their turns, evaluations,
    feedback and LLM calls for export: one query per relation however many, one AuditEvent
    each. apps/review/api/exports.py turns them into JSON."""
    conversations = list(
        chatbot_scoped(Conversation.objects.filter(pk__in=list(conversation_ids)), actor)
        .select_related("chatbot", "assignee")
        .prefetch_related(
            Prefetch("turns", queryset=Turn.objects.order_by("sequence", "id").prefetch_related(
                "evaluations", "feedback", Prefetch("llm_calls", queryset=LLMCall.objects.order_by("timestamp", "id")),
            )),
        )
        .order_by("pk")
    )
    for conversation in conversations:
        audit_event_record(
            action="review.export", actor=actor, target=conversation, chatbot=conversation.chatbot,
            data={"turns": conversation.turn_count, "format": "json"},
        )
    return conversations


def conversation_export(*, conversation_id: int, actor: AbstractBaseUser) -> Conversation:
    """One conversation as `conversations_export` gives it; DoesNotExist if `actor` may not see it."""
    exported = conversations_export(conversation_ids=[conversation_id], actor=actor)
    if not exported:
        raise Conversation.DoesNotExist(conversation_id)
    return exported[0]
