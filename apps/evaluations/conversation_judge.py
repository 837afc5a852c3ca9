"""Services of the conversation judge: a whole conversation graded once it is over.

A conversation is over when it has been idle for its chatbot's `conversation_idle_minutes`
(found by `conversation_judge_sweep`, every minute) or when the bot sends `event: end`
(`conversation_judge_enqueue`, from ingest). Both create a pending ConversationEvaluation for
(conversation, backend version) and enqueue `conversation_judge` after commit.

The exactly-once rules are the turn judge's (apps.evaluations.services):

1. At most one pending ConversationEvaluation per (conversation, evaluator version): a partial
   unique constraint, rows created with INSERT … ON CONFLICT DO NOTHING, so the sweep and the
   `end` event racing create one. A finished grade records the turns it saw (`turn_count`); a
   conversation that gained turns since is graded again once it is over again (a new row: the
   earlier grades stay as history, the newest is shown).
2. A worker claims it with a compare-and-set lease (status pending and no live lease → lease,
   attempts + 1) before calling the model; a duplicate delivery finds the lease taken and stops.
3. It completes with a compare-and-set on status (pending → done), under the conversation's
   row lock, together with its LLM calls and the "conversation judge" flag: a second worker
   that got through (a lease run out) writes nothing.
4. Transient errors release the lease and retry with backoff (Celery), bounded by
   JUDGE_MAX_ATTEMPTS; permanent ones fail the evaluation.
5. The sweep re-enqueues pending evaluations older than JUDGE_SWEEP_AFTER_MINUTES that no
   worker holds (a lost task, a dead worker, a broker outage at enqueue time).
6. A worker that claimed a pending grade whose turns another finished grade already covers (a
   sweep that chose the conversation just before that grade completed) deletes it unjudged.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.choices import CallPurpose, FlagReason
from apps.conversations.llm_calls import llm_calls_store
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.conversations.services import conversation_flag_add, conversation_row_lock
from apps.core.llm import ModelCall
from apps.core.queue import enqueue_each_on_commit

from .backends import ConversationJudgeOutcome, JudgeBackend, JudgeError, judge_backend_for
from .choices import ConversationJudgeTrigger, EvaluationStatus
from .models import ConversationEvaluation
from .sampling import conversation_is_sampled
from .selectors import (
    conversation_evaluations_covering,
    conversations_idle_unjudged,
    conversations_judgeable,
)
from .services import JudgeRetryLater, judge_retry_delay

logger = logging.getLogger(__name__)

TURN_FIELDS = (
    "id",
    "sequence",
    "user_message",
    "bot_response",
    "fallback_used",
    "has_error",
    "error",
    "thumbs_down",
    "is_flagged",
    "flag_reasons",
    "risk_score",
)


# --- enqueueing --------------------------------------------------------------------------------


def _pending_create_and_enqueue(
    *,
    chatbot: Chatbot,
    conversation_ids: list[int],
    trigger: str,
    backend: JudgeBackend | None = None,
) -> int:
    """Create the pending evaluations (ON CONFLICT DO NOTHING) and enqueue one task each after commit."""
    if not conversation_ids:
        return 0
    from .tasks import conversation_judge

    backend = backend or judge_backend_for(chatbot)
    ConversationEvaluation.objects.bulk_create(
        [
            ConversationEvaluation(
                conversation_id=conversation_id,
                chatbot_id=chatbot.pk,
                evaluator=backend.evaluator,
                evaluator_version=backend.conversation_version,
                trigger=trigger,
            )
            for conversation_id in conversation_ids
        ],
        ignore_conflicts=True,
    )
    enqueue_each_on_commit(conversation_judge, conversation_ids)
    return len(conversation_ids)


def conversation_judge_enqueue(*, conversation: Conversation) -> bool:
    """The bot ended `conversation` (`event: end`): judge it now if it is sampled and judgeable.

    Called inside the ingest transaction; the task is sent once it commits (never raises on a
    broker outage: the sweep finds the pending evaluation later). Returns whether it was queued.
    """
    chatbot = conversation.chatbot
    if not chatbot.conversation_judge_enabled:
        return False
    if not conversation_is_sampled(
        conversation_id=conversation.pk, sample_rate=chatbot.conversation_judge_sample_rate
    ):
        return False
    if not conversations_judgeable(chatbot=chatbot).filter(pk=conversation.pk).exists():
        return False
    backend = judge_backend_for(chatbot)
    if conversation_evaluations_covering(
        version=backend.conversation_version, conversation=conversation
    ).exists():
        return False  # queued, or judged with every turn it has: one grade per version and length
    _pending_create_and_enqueue(
        chatbot=chatbot,
        conversation_ids=[conversation.pk],
        trigger=ConversationJudgeTrigger.END,
        backend=backend,
    )
    return True


def conversation_judge_sweep(
    *, now: datetime | None = None, limit: int | None = None, lookback_hours: int | None = None
) -> dict[str, int]:
    """Every minute: start judging conversations gone idle, and re-send lost tasks.

    1. Per chatbot with the conversation judge on: its idle, sampled, judgeable conversations
       with no evaluation of the current version (`conversations_idle_unjudged`), up to the batch.
    2. Pending evaluations older than JUDGE_SWEEP_AFTER_MINUTES that no worker holds.
    Returns {"idle": …, "requeued": …}.
    """
    from .tasks import conversation_judge

    now = now or timezone.now()
    budget = limit or settings.CONVERSATION_JUDGE_SWEEP_BATCH
    started = 0
    for chatbot in Chatbot.objects.filter(
        judge_enabled=True, conversation_judge_sample_rate__gt=0
    ).order_by("pk"):
        if started >= budget:
            break
        backend = judge_backend_for(chatbot)
        ids = list(
            conversations_idle_unjudged(
                chatbot=chatbot,
                version=backend.conversation_version,
                now=now,
                lookback_hours=lookback_hours,
            ).values_list("pk", flat=True)[: budget - started]
        )
        with transaction.atomic():
            started += _pending_create_and_enqueue(
                chatbot=chatbot,
                conversation_ids=ids,
                trigger=ConversationJudgeTrigger.IDLE,
                backend=backend,
            )
    lost = list(
        ConversationEvaluation.objects.filter(
            status=EvaluationStatus.PENDING,
            created_at__lt=now - timedelta(minutes=settings.JUDGE_SWEEP_AFTER_MINUTES),
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("created_at")
        .values_list("conversation_id", flat=True)[:budget]
    )
    if lost:
        logger.warning("conversation_judge.sweep", extra={"conversations": len(lost)})
        with transaction.atomic():
            enqueue_each_on_commit(conversation_judge, list(dict.fromkeys(lost)))
    return {"idle": started, "requeued": len(lost)}


def conversation_judge_rerun(*, conversation_ids: list[int], actor) -> int:
    """Judge these conversations again with the current backend (staff action); returns the count.

    The evaluation of the current version is reset; earlier versions stay. Audit-logged.
    """
    from apps.audit.services import audit_event_record

    conversations = list(
        Conversation.objects.filter(pk__in=conversation_ids)
        .select_related("chatbot")
        .order_by("pk")
    )
    user = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        for conversation in conversations:
            backend = judge_backend_for(conversation.chatbot)
            reset = {
                "status": EvaluationStatus.PENDING,
                "evaluator": backend.evaluator,
                "trigger": ConversationJudgeTrigger.RERUN,
                "goal_completion": None,
                "resolution": None,
                "user_frustration": None,
                "policy_adherence": None,
                "human_handoff": None,
                "overall": None,
                "handoff_needed": None,
                "failed_turn": None,
                "reasoning": "",
                "signals": {},
                "transcript": {},
                "error": "",
                "attempts": 0,
                "claimed_until": None,
                "llm_call": None,
                "created_by": user,
                "completed_at": None,
            }
            # The newest grade of the version is redone in place (a correction, not history).
            newest = (
                ConversationEvaluation.objects.filter(
                    conversation=conversation, evaluator_version=backend.conversation_version
                )
                .order_by("-created_at", "-id")
                .values("pk")[:1]
            )
            updated = ConversationEvaluation.objects.filter(pk__in=Subquery(newest)).update(
                **reset, turn_count=None, created_at=timezone.now()
            )
            if not updated:
                ConversationEvaluation.objects.create(
                    conversation=conversation,
                    chatbot_id=conversation.chatbot_id,
                    evaluator_version=backend.conversation_version,
                    **reset,
                )
            audit_event_record(
                action="conversation_judge.rerun",
                actor=actor,
                target=conversation,
                chatbot=conversation.chatbot,
                data={},
            )
        from .tasks import conversation_judge

        enqueue_each_on_commit(conversation_judge, [c.pk for c in conversations])
    return len(conversations)


# --- one judgment ------------------------------------------------------------------------------


def conversation_judge(*, conversation_id: int) -> str:
    """Judge one conversation as a whole. Returns what happened (for logs and tests).

    1. Find its pending evaluation for the backend's version (created by the sweep, the `end`
       event or a re-run); stop if there is none or it is finished.
    2. Claim it (compare-and-set lease, attempts + 1); stop if another worker holds it.
    3. Call the backend with every turn, in order (the backend fits them in the token budget).
    4. Transient error: record the calls, release the claim, raise JudgeRetryLater — or fail when
       the attempts are used up. Permanent error: fail the evaluation.
    5. Success: store the calls, complete the evaluation (compare-and-set), flag the conversation
       "conversation judge" when the overall is below the chatbot's threshold — one transaction
       under the conversation lock.
    """
    started = time.perf_counter()
    conversation = Conversation.objects.select_related("chatbot").filter(pk=conversation_id).first()
    if conversation is None:
        return "missing"
    chatbot = conversation.chatbot
    backend = judge_backend_for(chatbot)
    of_version = ConversationEvaluation.objects.filter(
        conversation_id=conversation_id, evaluator_version=backend.conversation_version
    )
    # The grade in progress (at most one), else the newest for the reply.
    evaluation = of_version.filter(status=EvaluationStatus.PENDING).first() or (
        of_version.order_by("-created_at", "-id").first()
    )
    if evaluation is None:
        return "not_queued"
    rows = ConversationEvaluation.objects.filter(pk=evaluation.pk)
    if evaluation.status != EvaluationStatus.PENDING:
        return f"already_{evaluation.status}"
    if (
        not conversations_judgeable(chatbot=chatbot, sampled_only=False)
        .filter(pk=conversation_id)
        .exists()
    ):
        _evaluation_fail(evaluation, "this conversation may not be sent to a judge")
        return "not_judgeable"
    if evaluation.created_by_id is None and not chatbot.conversation_judge_enabled:
        rows.filter(status=EvaluationStatus.PENDING, attempts=0).delete()
        return "judge_disabled"

    now = timezone.now()
    claimed = (
        rows.filter(status=EvaluationStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(
            claimed_until=now + timedelta(seconds=settings.JUDGE_CLAIM_SECONDS),
            attempts=F("attempts") + 1,
        )
    )
    evaluation = rows.get()
    if not claimed:
        if evaluation.status == EvaluationStatus.PENDING:
            return "claimed_elsewhere"
        return f"already_{evaluation.status}"
    attempt = evaluation.attempts
    max_attempts = settings.JUDGE_MAX_ATTEMPTS
    if attempt > max_attempts:
        _evaluation_fail(
            evaluation, f"gave up after {max_attempts} attempts ({evaluation.error or 'no answer'})"
        )
        return "failed"

    turns = list(
        Turn.objects.filter(conversation_id=conversation_id)
        .order_by("sequence", "id")
        .only(*TURN_FIELDS)
    )
    if not turns:
        _evaluation_fail(evaluation, "the conversation has no turns")
        return "failed"
    if evaluation.trigger != ConversationJudgeTrigger.RERUN and (
        of_version.exclude(pk=evaluation.pk)
        .exclude(status=EvaluationStatus.PENDING)
        .filter(turn_count__gte=len(turns))
        .exists()
    ):
        # Another grade completed with these turns after the sweep chose the conversation.
        rows.filter(status=EvaluationStatus.PENDING).delete()
        return "already_covered"
    try:
        outcome = backend.judge_conversation(conversation=conversation, turns=turns)
    except JudgeError as exc:
        _llm_calls_store(conversation, exc.calls)
        if exc.permanent or attempt >= max_attempts:
            message = (
                exc.message if exc.permanent else f"gave up after {attempt} attempts: {exc.message}"
            )
            _evaluation_fail(evaluation, message)
            logger.warning(
                "conversation_judge.failed",
                extra={
                    "conversation_id": conversation_id,
                    "attempt": attempt,
                    "error": exc.message,
                },
            )
            return "failed"
        countdown = judge_retry_delay(attempt=attempt, retry_after=exc.retry_after)
        ConversationEvaluation.objects.filter(pk=evaluation.pk).update(
            claimed_until=None,
            error=f"attempt {attempt}/{max_attempts}: {exc.message}; retrying in {countdown}s"[
                :2000
            ],
        )
        raise JudgeRetryLater(exc.message, attempt=attempt, countdown=countdown) from None
    except BaseException:
        ConversationEvaluation.objects.filter(pk=evaluation.pk).update(claimed_until=None)
        raise

    result = _evaluation_complete(evaluation, conversation, backend, outcome, turns)
    logger.info(
        "conversation_judge.done",
        extra={
            "conversation_id": conversation_id,
            "result": result,
            "evaluator": backend.conversation_version,
            "duration_ms": int((time.perf_counter() - started) * 1000),
        },
    )
    return result


def _llm_calls_store(conversation: Conversation, calls: list[ModelCall]) -> list[LLMCall]:
    return llm_calls_store(
        calls=calls,
        purpose=CallPurpose.JUDGE,
        function_name="conversation_judge",
        chatbot_id=conversation.chatbot_id,
        conversation_id=conversation.pk,
    )


def _evaluation_fail(evaluation: ConversationEvaluation, message: str) -> None:
    # A failure covers the turns of the moment too: the conversation is tried again once it grows.
    turn_count = Conversation.objects.filter(pk=evaluation.conversation_id).values("turn_count")[:1]
    ConversationEvaluation.objects.filter(pk=evaluation.pk, status=EvaluationStatus.PENDING).update(
        status=EvaluationStatus.FAILED,
        turn_count=Subquery(turn_count),
        error=message[:2000],
        claimed_until=None,
        completed_at=timezone.now(),
    )


def _evaluation_complete(
    evaluation: ConversationEvaluation,
    conversation: Conversation,
    backend: JudgeBackend,
    outcome: ConversationJudgeOutcome,
    turns: list[Turn],
) -> str:
    judgment = outcome.judgment
    overall = judgment.overall()
    # The judge names turns 1…n in conversation order; stored as the turn's own sequence.
    failed_turn = turns[judgment.failed_turn - 1].sequence if judgment.failed_turn else None
    with transaction.atomic():
        conversation_row_lock(conversation_id=conversation.pk)
        stored = _llm_calls_store(conversation, outcome.calls)
        judged_by = next((row for row in reversed(stored) if row.success), None)
        updated = ConversationEvaluation.objects.filter(
            pk=evaluation.pk, status=EvaluationStatus.PENDING
        ).update(
            status=EvaluationStatus.DONE,
            evaluator=backend.evaluator,
            **judgment.scores,
            overall=overall,
            handoff_needed=judgment.handoff_needed,
            failed_turn=failed_turn,
            reasoning=judgment.reasoning,
            signals=judgment.signals,
            transcript=outcome.transcript.as_json()
            if outcome.transcript
            else {"turns": len(turns)},
            error="",
            turn_count=len(turns),
            llm_call=judged_by,
            claimed_until=None,
            completed_at=timezone.now(),
        )
        if not updated:
            return "duplicate"
        if overall < conversation.chatbot.conversation_judge_flag_below:
            conversation_flag_add(
                conversation_id=conversation.pk, reason=FlagReason.CONVERSATION_JUDGE
            )
            return "flagged"
    return "done"
