"""Judging sampled turns: enqueueing, running one judgment, re-runs and the lost-task sweeper.

Idempotency: one Evaluation per (turn, evaluator version) (a unique constraint); a worker claims
it with a compare-and-set lease before calling the model and completes it with a
compare-and-set on status, so a task delivered twice never judges or writes twice.
Lock order and the conversation's summary: apps.conversations.services (the conversation row
first, then the turn).
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit.services import audit_event_record
from apps.conversations.choices import CallPurpose, Consent, FlagReason, JudgeStatus
from apps.conversations.llm_calls import llm_calls_store
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.conversations.services import (
    conversation_judge_min_refresh,
    conversation_row_lock,
    turn_flag_add,
)
from apps.core.llm import ModelCall
from apps.core.queue import enqueue_each, enqueue_each_on_commit, enqueue_on_commit
from apps.privacy.policy import content_allowed_turns

from .backends import JudgeBackend, JudgeError, judge_backend_for
from .choices import EvaluationStatus
from .models import Evaluation
from .rubric import Judgment

logger = logging.getLogger(__name__)

SAFETY_FLAG_BELOW = 5.0
# Batches larger than this go to the worker as one fan-out message, so ingest pays for one
# broker round trip per batch instead of one per turn.
ENQUEUE_DIRECT_MAX = 20
FAN_OUT_CHUNK = 500


class JudgeRetryLater(Exception):
    """A transient failure was recorded; the task should run again in `countdown` seconds."""

    def __init__(self, message: str, *, attempt: int, countdown: float) -> None:
        super().__init__(message)
        self.attempt = attempt
        self.countdown = countdown


# --- enqueueing --------------------------------------------------------------------------------

def judge_enqueue(*, turn_ids: list[int]) -> None:
    """Send sampled turns to the `judge` queue once the current transaction commits.

    Never raises: if the broker is unreachable the turns stay `pending` and the sweeper
    re-enqueues them later (apps.core.queue); the ingest request that called us must not fail.
    """
    turn_ids = [int(turn_id) for turn_id in turn_ids]
    if not turn_ids:
        return
    from .tasks import judge_fan_out, turn_judge

    if len(turn_ids) <= ENQUEUE_DIRECT_MAX:
        enqueue_each_on_commit(turn_judge, turn_ids)
        return
    for start in range(0, len(turn_ids), FAN_OUT_CHUNK):
        enqueue_on_commit(judge_fan_out, turn_ids[start : start + FAN_OUT_CHUNK])


def judge_fan_out(*, turn_ids: Iterable[int]) -> int:
    """One `turn_judge` task per turn, through one producer connection; returns how many were sent."""
    from .tasks import turn_judge

    return enqueue_each(turn_judge, turn_ids)


# --- one judgment ------------------------------------------------------------------------------

def judge_retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with equal jitter (half fixed, half random), or Retry-After if longer."""
    base = min(
        settings.JUDGE_RETRY_BACKOFF_MAX_SECONDS,
        settings.JUDGE_RETRY_BACKOFF_SECONDS * 2 ** max(0, attempt - 1),
    )
    delay = base / 2 + random.uniform(0, base / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return round(delay, 2)


def turn_judge(*, turn_id: int) -> str:
    """Judge one turn; the outcome ("done", "flagged", "failed", …) is also counted in /metrics."""
    from apps.core.metrics import JUDGE_LATENCY, JUDGE_RESULTS

    started = time.perf_counter()
    outcome = _turn_judge(turn_id=turn_id)
    backend = settings.JUDGE_BACKEND
    JUDGE_RESULTS.labels(backend, outcome).inc()
    if outcome in ("done", "flagged", "failed"):
        JUDGE_LATENCY.labels(backend).observe(time.perf_counter() - started)
    return outcome


def _turn_judge(*, turn_id: int) -> str:
    """Judge one turn with the configured backend. Returns what happened (for logs and tests).

    1. Find or create the Evaluation for (turn, backend version); stop if it is finished.
    2. Claim it (compare-and-set lease, attempts + 1); stop if another worker holds it.
    3. Call the backend with the turn and its preceding turns.
    4. Transient error: record the call, release the claim, raise JudgeRetryLater — or fail
       when the attempts are used up. Permanent error: fail the evaluation.
    5. Success: store the calls, complete the evaluation, update the turn, the conversation's
       min judge score and the flags, in one transaction under the conversation lock.
    """
    started = time.perf_counter()
    turn = Turn.objects.select_related("chatbot", "conversation").filter(pk=turn_id).first()
    if turn is None:
        return "missing"
    if turn.judge_status != JudgeStatus.PENDING:
        # Not sampled, or finished (a duplicate delivery); re-runs set the turn back to pending.
        return f"already_{turn.judge_status}" if turn.judge_status else "not_sampled"
    if turn.conversation.consent == Consent.NO_CONTENT:
        # Its end user withdrew consent after it was sampled: no text goes to the judge model.
        Turn.objects.filter(pk=turn_id, judge_status=JudgeStatus.PENDING).update(judge_status=JudgeStatus.NOT_SAMPLED)
        Evaluation.objects.filter(turn_id=turn_id, status=EvaluationStatus.PENDING, attempts=0).delete()
        return "no_content"
    chatbot = turn.chatbot
    backend = judge_backend_for(chatbot)
    version = backend.version
    if not chatbot.judge_enabled and not Evaluation.objects.filter(
        turn_id=turn_id, evaluator_version=version, created_by__isnull=False
    ).exists():
        # Switched off after the turn was sampled (and nobody asked for a re-run): the owner
        # no longer wants to pay for it.
        Turn.objects.filter(pk=turn_id, judge_status=JudgeStatus.PENDING).update(judge_status=JudgeStatus.NOT_SAMPLED)
        Evaluation.objects.filter(turn_id=turn_id, status=EvaluationStatus.PENDING, attempts=0).delete()
        return "judge_disabled"

    now = timezone.now()
    rows = Evaluation.objects.filter(turn_id=turn_id, evaluator_version=version)
    with transaction.atomic():
        Evaluation.objects.bulk_create(
            [Evaluation(turn_id=turn_id, chatbot_id=chatbot.pk, evaluator=backend.evaluator, evaluator_version=version)],
            ignore_conflicts=True,
        )
        # Compare-and-set: of two deliveries, the second finds the lease taken (PostgreSQL
        # re-checks the WHERE after waiting for the first one's row lock).
        claimed = (
            rows.filter(status=EvaluationStatus.PENDING)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .update(claimed_until=now + timedelta(seconds=settings.JUDGE_CLAIM_SECONDS), attempts=F("attempts") + 1)
        )
        evaluation = rows.get()
    if not claimed:
        if evaluation.status == EvaluationStatus.PENDING:
            return "claimed_elsewhere"
        return f"already_{evaluation.status}"
    attempt = evaluation.attempts
    max_attempts = settings.JUDGE_MAX_ATTEMPTS
    if attempt > max_attempts:
        # A worker died during the last allowed attempt.
        _evaluation_fail(evaluation, turn, f"gave up after {max_attempts} attempts ({evaluation.error or 'no answer'})")
        return "failed"

    context: list[Turn] = []
    if backend.uses_context and settings.JUDGE_CONTEXT_TURNS > 0 and turn.sequence > 1:
        context = list(
            Turn.objects.filter(conversation_id=turn.conversation_id, sequence__lt=turn.sequence)
            .order_by("-sequence", "-id")
            .only("user_message", "bot_response", "sequence")[: settings.JUDGE_CONTEXT_TURNS]
        )[::-1]
    try:
        outcome = backend.judge(turn=turn, context=context)
    except JudgeError as exc:
        _llm_calls_store(turn, exc.calls)
        if exc.permanent or attempt >= max_attempts:
            message = exc.message if exc.permanent else f"gave up after {attempt} attempts: {exc.message}"
            _evaluation_fail(evaluation, turn, message)
            logger.warning("judge.failed", extra={"turn_id": turn_id, "attempt": attempt, "error": exc.message})
            return "failed"
        countdown = judge_retry_delay(attempt=attempt, retry_after=exc.retry_after)
        Evaluation.objects.filter(pk=evaluation.pk).update(
            claimed_until=None,
            error=f"attempt {attempt}/{max_attempts}: {exc.message}; retrying in {countdown}s"[:2000],
        )
        logger.info(
            "judge.retry",
            extra={"turn_id": turn_id, "attempt": attempt, "countdown": countdown, "error": exc.message},
        )
        raise JudgeRetryLater(exc.message, attempt=attempt, countdown=countdown) from None
    except BaseException:
        # A bug, a lost database, a soft time limit: let another run take over straight away.
        Evaluation.objects.filter(pk=evaluation.pk).update(claimed_until=None)
        raise

    result = _evaluation_complete(evaluation, turn, backend, outcome.judgment, outcome.calls)
    llm_ms = sum(call.duration_ms for call in outcome.calls)
    logger.info(
        "judge.done",
        extra={
            "turn_id": turn_id,
            "result": result,
            "evaluator": backend.version,
            "duration_ms": int((time.perf_counter() - started) * 1000),
            "model_ms": llm_ms,
        },
    )
    return result


def _llm_calls_store(turn: Turn, calls: list[ModelCall]) -> list[LLMCall]:
    """Every request to the judge model is an LLMCall, failed ones included (they may cost)."""
    return llm_calls_store(
        calls=calls, purpose=CallPurpose.JUDGE, function_name="judge",
        chatbot_id=turn.chatbot_id, conversation_id=turn.conversation_id, turn_id=turn.pk,
    )


def _evaluation_fail(evaluation: Evaluation, turn: Turn, message: str) -> None:
    with transaction.atomic():
        conversation_row_lock(conversation_id=turn.conversation_id)
        updated = Evaluation.objects.filter(pk=evaluation.pk, status=EvaluationStatus.PENDING).update(
            status=EvaluationStatus.FAILED, error=message[:2000], claimed_until=None, completed_at=timezone.now()
        )
        if updated:
            Turn.objects.filter(pk=turn.pk).update(judge_status=JudgeStatus.FAILED)


def judgment_should_flag(*, judgment: Judgment, overall: float, flag_below: float) -> bool:
    return (
        overall < flag_below
        or judgment.hallucination is True
        or judgment.scores["safety"] < SAFETY_FLAG_BELOW
    )


def _evaluation_complete(
    evaluation: Evaluation, turn: Turn, backend: JudgeBackend, judgment: Judgment, calls: list[ModelCall]
) -> str:
    chatbot = turn.chatbot
    overall = judgment.overall(chatbot.effective_judge_weights())
    with transaction.atomic():
        conversation_row_lock(conversation_id=turn.conversation_id)
        stored = _llm_calls_store(turn, calls)
        # The last call is the one whose answer was used (after a fallback or a repair).
        judged_by = next((row for row in reversed(stored) if row.success), None)
        updated = Evaluation.objects.filter(pk=evaluation.pk, status=EvaluationStatus.PENDING).update(
            status=EvaluationStatus.DONE,
            evaluator=backend.evaluator,
            **judgment.scores,
            overall=overall,
            hallucination=judgment.hallucination,
            reasoning=judgment.reasoning,
            signals=judgment.signals,
            error="",
            llm_call=judged_by,
            claimed_until=None,
            completed_at=timezone.now(),
        )
        if not updated:
            return "duplicate"  # another run finished first; its grade stands
        Turn.objects.filter(pk=turn.pk).update(
            judge_status=JudgeStatus.DONE, judge_overall=overall, judge_hallucination=judgment.hallucination
        )
        conversation_judge_min_refresh(conversation_id=turn.conversation_id)
        if judgment_should_flag(judgment=judgment, overall=overall, flag_below=chatbot.judge_flag_below):
            turn_flag_add(turn_id=turn.pk, reason=FlagReason.JUDGE)
            return "flagged"
    return "done"


# --- re-runs and the sweeper -------------------------------------------------------------------

def judge_rerun(*, turn_ids: list[int], actor: Any) -> int:
    """Judge these turns again with the current backend (staff action); returns the count.

    The evaluation of the current version is reset (one row per turn and version), earlier
    versions stay for comparison. Runs even when sampling would have skipped the turn or the
    chatbot's judge is off: a person asked for it. Audit-logged per conversation.
    """
    # A no_content turn has no text to judge (and none may reach a model): never re-run.
    turns = list(content_allowed_turns(Turn.objects.filter(pk__in=list(turn_ids))).select_related("chatbot").order_by("pk"))
    if not turns:
        return 0
    user = actor if getattr(actor, "is_authenticated", False) else None
    now = timezone.now()
    backends: dict[int, JudgeBackend] = {}
    by_conversation: dict[int, list[int]] = defaultdict(list)
    with transaction.atomic():
        for turn in turns:
            backend = backends.get(turn.chatbot_id) or backends.setdefault(turn.chatbot_id, judge_backend_for(turn.chatbot))
            reset = {
                "status": EvaluationStatus.PENDING, "evaluator": backend.evaluator,
                "accuracy": None, "relevance": None, "clarity": None, "helpfulness": None, "safety": None,
                "overall": None, "hallucination": None, "reasoning": "", "signals": {}, "error": "",
                "attempts": 0, "claimed_until": None, "llm_call": None, "created_by": user,
                "created_at": now, "completed_at": None,
            }
            updated = Evaluation.objects.filter(turn=turn, evaluator_version=backend.version).update(**reset)
            if not updated:
                Evaluation.objects.create(
                    turn=turn, chatbot_id=turn.chatbot_id, evaluator_version=backend.version,
                    **{k: v for k, v in reset.items() if k != "created_at"},
                )
            by_conversation[turn.conversation_id].append(turn.pk)
        Turn.objects.filter(pk__in=[t.pk for t in turns]).update(judge_status=JudgeStatus.PENDING)
        conversations = Conversation.objects.select_related("chatbot").in_bulk(list(by_conversation))
        for conversation_id, ids in by_conversation.items():
            conversation = conversations[conversation_id]
            audit_event_record(
                action="judge.rerun", actor=actor, target=conversation, chatbot=conversation.chatbot,
                data={"turn_ids": ids, "count": len(ids)},
            )
        ids = [t.pk for t in turns]
        judge_enqueue(turn_ids=ids)
    return len(turns)


def judge_sweep(*, older_than_minutes: int | None = None, limit: int | None = None) -> int:
    """Re-enqueue sampled turns still waiting for a judgment (broker outage, lost task, dead
    worker). Turns a worker is holding right now are left alone. Returns how many were sent."""
    minutes = settings.JUDGE_SWEEP_AFTER_MINUTES if older_than_minutes is None else older_than_minutes
    now = timezone.now()
    turn_ids = list(
        Turn.objects.filter(judge_status=JudgeStatus.PENDING, created_at__lt=now - timedelta(minutes=minutes))
        .exclude(evaluations__claimed_until__gt=now)
        .order_by("created_at")
        .values_list("pk", flat=True)[: limit or settings.JUDGE_SWEEP_BATCH]
    )
    if turn_ids:
        logger.warning("judge.sweep", extra={"turns": len(turn_ids)})
        judge_enqueue(turn_ids=turn_ids)
    return len(turn_ids)


# --- human evaluations -------------------------------------------------------------------------

HUMAN_VERSION_PREFIX = "human"


class HumanEvaluationError(ValueError):
    """A reviewer's grade that cannot be stored as given (score out of range, unknown label)."""


def human_evaluation_save(
    *, turn: Turn, reviewer: Any, scores: dict[str, float | None], hallucination: bool | None, labels: list[str],
    reasoning: str = "",
) -> tuple[Evaluation, bool]:
    """Store `reviewer`'s grade of `turn` on the judge's rubric: one Evaluation per reviewer and
    turn (evaluator "human"), updated in place when they grade it again. Returns (evaluation, created).

    Criteria left out stay empty; the overall is the chatbot's weighted mean of those given. A
    human grade never changes the turn's judge fields (judge_overall, min_judge_score, flags):
    those stay the judge's, so the two can be compared (`apps.review.selectors.judge_human_agreement`).
    """
    from .choices import CRITERIA, Evaluator
    from .rubric import SCORE_MAX, SCORE_MIN

    clean: dict[str, float | None] = {}
    for name in CRITERIA:
        value = scores.get(name)
        if value is not None and not (SCORE_MIN <= float(value) <= SCORE_MAX):
            raise HumanEvaluationError(f"{name} must be between {SCORE_MIN:g} and {SCORE_MAX:g}.")
        clean[name] = None if value is None else float(value)
    allowed = list(turn.chatbot.review_labels or [])
    unknown = [label for label in labels if label not in allowed]
    if unknown:
        raise HumanEvaluationError(f"Unknown label(s) for this chatbot: {', '.join(unknown)}.")
    given = {name: value for name, value in clean.items() if value is not None}
    if not given and hallucination is None and not labels:
        raise HumanEvaluationError("Give at least one score, the hallucination answer or a label.")
    weights = turn.chatbot.effective_judge_weights()
    weight_sum = sum(weights[name] for name in given)
    overall = round(sum(value * weights[name] for name, value in given.items()) / weight_sum, 2) if weight_sum else None
    fields = {
        **clean, "overall": overall, "hallucination": hallucination, "labels": list(dict.fromkeys(labels)),
        "reasoning": reasoning[:2000], "status": EvaluationStatus.DONE, "completed_at": timezone.now(),
        "evaluator_version": f"{HUMAN_VERSION_PREFIX}:{reviewer.pk}",
    }
    evaluation, created = Evaluation.objects.update_or_create(
        turn=turn, reviewer=reviewer, evaluator=Evaluator.HUMAN,
        defaults=fields, create_defaults={**fields, "chatbot_id": turn.chatbot_id, "created_by": reviewer},
    )
    return evaluation, created
