"""Experiment runs: create, fan out, execute in chunks, re-run failures, mark a baseline, gate.

A run's items are executed by `experiment_chunk_run` tasks, one per chunk of results
(EXPERIMENT_CHUNK_SIZE), each with EXPERIMENT_CONCURRENCY calls in flight:

1. Claim the chunk's pending results (and running ones whose claim expired: a dead worker)
   under row locks skipped by other workers, so two tasks never work on one result.
2. In threads, pure I/O: ask the target, grade the output (rubric + reference criteria).
   Threads never touch the database.
3. Back in the task: store each result and its model calls (LLMCall, purpose "experiment",
   priced); a transient error (the judge's rules) puts the result back to pending with one more
   attempt, until EXPERIMENT_MAX_ATTEMPTS, then it fails; a permanent one fails it at once.
4. Recount the run from its results (one aggregate) and finish it when nothing is left; return
   the retry delay if some results wait for another attempt (the task retries itself).

Claims are compare-and-set: a claim writes a fresh token on results still claimable, and the
task works on (and writes back) only the results carrying its token, so a duplicate message, a
sweep's re-enqueue or a second worker never runs an item twice, on PostgreSQL or SQLite.

Lost chunks (the broker was down when the run was queued, a worker died mid-chunk) are found by
`experiment_runs_sweep` (beat, every few minutes; see its docstring).
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count, F, Q
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.choices import CallPurpose
from apps.conversations.llm_calls import llm_calls_store
from apps.core.llm import ModelCall
from apps.core.queue import enqueue_on_commit
from apps.evaluations.backends import JudgeError
from apps.evaluations.services import judge_retry_delay

from .choices import ResultStatus, RunStatus, TargetKind
from .grading import Grade, grader_version, output_grade
from .models import (
    Dataset,
    DatasetItemVersion,
    ExperimentItemResult,
    ExperimentRun,
    ExperimentTarget,
)
from .targets import ItemInput, TargetError, target_answer

logger = logging.getLogger(__name__)


class ExperimentError(ValueError):
    """A run that cannot be created as asked (the message says why)."""


def grading_chatbot(*, dataset: Dataset, target: ExperimentTarget) -> Chatbot:
    """Whose judge rubric grades: the dataset's chatbot, else the target's, else the defaults."""
    return dataset.chatbot or target.chatbot or Chatbot(name="shared dataset", slug="shared")


def grader_kind() -> str:
    return settings.JUDGE_BACKEND


def experiment_run_create(
    *,
    dataset: Dataset,
    target: ExperimentTarget,
    actor: Any = None,
    answers: dict[str, str] | None = None,
    note: str = "",
    grader: str | None = None,
) -> ExperimentRun:
    """Create a run over the dataset's current item versions and queue its chunks after commit.

    `grader`: the judge backend kind (default JUDGE_BACKEND; the demo forces "heuristic").

    `answers` (uploaded-answers targets): output per item, keyed by the item's upload id or its
    chatmon id; an item without one fails with that reason.
    """
    if target.chatbot_id and dataset.chatbot_id and target.chatbot_id != dataset.chatbot_id:
        raise ExperimentError("the target belongs to another chatbot than the dataset")
    if target.kind == TargetKind.UPLOADED and not answers:
        raise ExperimentError(
            'an uploaded-answers target needs the answers (JSONL of {"id", "output"})'
        )
    if target.kind != TargetKind.UPLOADED and answers:
        raise ExperimentError("answers can only be given for an uploaded-answers target")
    chatbot = grading_chatbot(dataset=dataset, target=target)
    kind = grader or grader_kind()
    versions = list(
        DatasetItemVersion.objects.filter(item__dataset=dataset, number=F("item__version"))
        .select_related("item")
        .order_by("item_id")
    )
    if not versions:
        raise ExperimentError("the dataset has no items")
    with transaction.atomic():
        run = ExperimentRun.objects.create(
            dataset=dataset,
            target=target,
            grader=kind,
            grader_version=grader_version(chatbot=chatbot, kind=kind),
            total=len(versions),
            status=RunStatus.RUNNING,
            started_at=timezone.now(),
            note=note[:300],
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        rows = []
        for version in versions:
            provided = None
            if answers is not None:
                provided = (
                    answers.get(version.item.external_id) if version.item.external_id else None
                )
                provided = provided if provided is not None else answers.get(str(version.item_id))
            rows.append(
                ExperimentItemResult(
                    run=run,
                    item_id=version.item_id,
                    item_version=version,
                    output=provided or "",
                    provided_output=provided is not None,
                )
            )
        ExperimentItemResult.objects.bulk_create(rows, batch_size=1000)
        _chunks_enqueue(
            run=run, result_ids=list(run.results.order_by("pk").values_list("pk", flat=True))
        )
    return run


def _chunks_enqueue(*, run: ExperimentRun, result_ids: list[int]) -> int:
    from .tasks import experiment_chunk_run

    size = max(1, settings.EXPERIMENT_CHUNK_SIZE)
    chunks = [result_ids[i : i + size] for i in range(0, len(result_ids), size)]
    for chunk in chunks:
        enqueue_on_commit(experiment_chunk_run, run.pk, chunk[0], chunk[-1])
    return len(chunks)


def experiment_failed_rerun(*, run: ExperimentRun) -> int:
    """Put the run's failed results (and pending ones no task holds) back in the queue."""
    with transaction.atomic():
        stale = Q(status=ResultStatus.PENDING) | Q(
            status=ResultStatus.RUNNING, claimed_until__lt=timezone.now()
        )
        ids = list(
            run.results.filter(Q(status=ResultStatus.FAILED) | stale)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not ids:
            return 0
        ExperimentItemResult.objects.filter(pk__in=ids).update(
            status=ResultStatus.PENDING,
            attempts=0,
            error="",
            claimed_until=None,
            claim=None,
            finished_at=None,
        )
        ExperimentRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
        _run_recount(run_id=run.pk)
        _chunks_enqueue(run=run, result_ids=ids)
    return len(ids)


def experiment_baseline_set(*, run: ExperimentRun) -> None:
    """Mark `run` as its dataset's baseline (the one the gate's `--baseline latest` means)."""
    with transaction.atomic():
        ExperimentRun.objects.filter(dataset_id=run.dataset_id, is_baseline=True).exclude(
            pk=run.pk
        ).update(is_baseline=False)
        ExperimentRun.objects.filter(pk=run.pk).update(is_baseline=True)
    run.is_baseline = True


# --- execution -----------------------------------------------------------------------------------


@dataclass
class _Work:
    result_id: int
    item_id: int
    attempts: int
    item: ItemInput
    expected_answer: str
    expected_properties: list[str]
    provided: str | None


@dataclass
class _Outcome:
    output: str = ""
    grade: Grade | None = None
    error: str = ""
    permanent: bool = True
    retry_after: float | None = None
    target_calls: list[ModelCall] | None = None
    judge_calls: list[ModelCall] | None = None
    duration_ms: int = 0


def _item_run(work: _Work, target: ExperimentTarget, chatbot: Chatbot, kind: str) -> _Outcome:
    started = time.perf_counter()
    outcome = _Outcome(target_calls=[], judge_calls=[])
    try:
        answer = target_answer(target=target, item=work.item, provided=work.provided)
        outcome.output = answer.output
        outcome.target_calls = answer.calls
        outcome.grade = output_grade(
            chatbot=chatbot,
            kind=kind,
            item=work.item,
            expected_answer=work.expected_answer,
            expected_properties=work.expected_properties,
            output=answer.output,
        )
        outcome.judge_calls = outcome.grade.calls
    except TargetError as exc:
        outcome.error, outcome.permanent, outcome.retry_after = (
            f"target: {exc.message}",
            exc.permanent,
            exc.retry_after,
        )
        outcome.target_calls = exc.calls
    except JudgeError as exc:
        outcome.error, outcome.permanent, outcome.retry_after = (
            f"grading: {exc.message}",
            exc.permanent,
            exc.retry_after,
        )
        outcome.judge_calls = exc.calls
    outcome.duration_ms = int((time.perf_counter() - started) * 1000)
    return outcome


def _claim_seconds() -> int:
    """How long a chunk may hold its results: every call of the chunk at the slowest, plus slack."""
    return max(
        60,
        int(
            settings.OPENAI_TIMEOUT_SECONDS
            * 3
            * settings.EXPERIMENT_CHUNK_SIZE
            / max(1, settings.EXPERIMENT_CONCURRENCY)
        )
        + 30,
    )


def _claimable(now: Any) -> Q:
    return Q(status=ResultStatus.PENDING) | Q(status=ResultStatus.RUNNING, claimed_until__lt=now)


def _claim(
    *, run_id: int, first_id: int, last_id: int
) -> tuple[uuid.UUID, list[ExperimentItemResult]]:
    """Claim the chunk's claimable results; returns the claim's token and the results it holds.

    Row locks skipped by other workers (PostgreSQL) keep concurrent tasks off each other's rows;
    the compare-and-set update (still claimable → running with this token) decides on every
    database, so only the results that carry the token afterwards belong to this task.
    """
    now = timezone.now()
    token = uuid.uuid4()
    with transaction.atomic():
        candidates = list(
            ExperimentItemResult.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(_claimable(now), run_id=run_id, pk__gte=first_id, pk__lte=last_id)
            .values_list("pk", flat=True)
        )
        if not candidates:
            return token, []
        claimed = ExperimentItemResult.objects.filter(_claimable(now), pk__in=candidates).update(
            status=ResultStatus.RUNNING,
            claimed_until=now + timedelta(seconds=_claim_seconds()),
            claim=token,
        )
        if not claimed:
            return token, []
        rows = list(
            ExperimentItemResult.objects.filter(claim=token, status=ResultStatus.RUNNING)
            .select_related("item_version")
            .order_by("pk")
        )
    return token, rows


def experiment_chunk_run(*, run_id: int, first_result_id: int, last_result_id: int) -> float | None:
    """Run one chunk (the module docstring's steps); returns seconds until a retry is due, or None."""
    run = (
        ExperimentRun.objects.select_related("dataset__chatbot", "target__chatbot")
        .filter(pk=run_id)
        .first()
    )
    if run is None or run.status not in (RunStatus.RUNNING, RunStatus.PENDING):
        return None
    token, claimed = _claim(run_id=run_id, first_id=first_result_id, last_id=last_result_id)
    if not claimed:
        _run_recount(run_id=run_id)
        return None
    chatbot = grading_chatbot(dataset=run.dataset, target=run.target)
    work = [
        _Work(
            result_id=r.pk,
            item_id=r.item_id,
            attempts=r.attempts,
            item=ItemInput(input=r.item_version.input, context=list(r.item_version.context or [])),
            expected_answer=r.item_version.expected_answer,
            expected_properties=list(r.item_version.expected_properties or []),
            provided=r.output if r.provided_output else None,
        )
        for r in claimed
    ]
    with ThreadPoolExecutor(
        max_workers=max(1, min(settings.EXPERIMENT_CONCURRENCY, len(work)))
    ) as pool:
        outcomes = list(pool.map(lambda w: _item_run(w, run.target, chatbot, run.grader), work))
    retry_in: float | None = None
    now = timezone.now()
    chatbot_id = chatbot.pk
    with transaction.atomic():
        for w, outcome in zip(work, outcomes, strict=True):
            attempt = w.attempts + 1
            fields: dict[str, Any] = {
                "attempts": attempt,
                "duration_ms": outcome.duration_ms,
                "claimed_until": None,
                "claim": None,
            }
            if outcome.grade is not None:
                fields.update(
                    status=ResultStatus.DONE,
                    output=outcome.output,
                    scores=outcome.grade.scores,
                    properties=outcome.grade.properties,
                    score=outcome.grade.score,
                    reasoning=outcome.grade.reasoning,
                    reference_reasoning=outcome.grade.reference_reasoning,
                    error="",
                    finished_at=now,
                )
            elif not outcome.permanent and attempt < settings.EXPERIMENT_MAX_ATTEMPTS:
                delay = judge_retry_delay(attempt=attempt, retry_after=outcome.retry_after)
                retry_in = delay if retry_in is None else min(retry_in, delay)
                fields.update(
                    status=ResultStatus.PENDING, error=f"attempt {attempt}: {outcome.error}"[:2000]
                )
            else:
                fields.update(
                    status=ResultStatus.FAILED,
                    error=outcome.error[:2000],
                    finished_at=now,
                    output=outcome.output,
                )
            # Only while this task still holds the claim: had it expired and another task taken
            # the result over, that task's answer is the one kept (the calls made here still count).
            ExperimentItemResult.objects.filter(pk=w.result_id, claim=token).update(**fields)
            metadata = {"experiment_run": run.pk, "dataset_item": w.item_id, "attempt": attempt}
            for calls, function in (
                (outcome.target_calls, "experiment.target"),
                (outcome.judge_calls, "experiment.grade"),
            ):
                for call in calls or []:
                    call.metadata = {**call.metadata, **metadata}
                if calls:
                    llm_calls_store(
                        calls=calls,
                        purpose=CallPurpose.EXPERIMENT,
                        function_name=function,
                        chatbot_id=chatbot_id,
                    )
        _run_recount(run_id=run_id)
    return retry_in


def _run_recount(*, run_id: int) -> None:
    """Counters, average and status of the run, from its results (whatever task finished last)."""
    counts = ExperimentItemResult.objects.filter(run_id=run_id).aggregate(
        done=Count("pk", filter=Q(status=ResultStatus.DONE)),
        failed=Count("pk", filter=Q(status=ResultStatus.FAILED)),
        open=Count("pk", filter=Q(status__in=(ResultStatus.PENDING, ResultStatus.RUNNING))),
        average=Avg("score", filter=Q(status=ResultStatus.DONE)),
    )
    fields: dict[str, Any] = {
        "done": counts["done"],
        "failed": counts["failed"],
        "average_score": round(counts["average"], 3) if counts["average"] is not None else None,
    }
    if not counts["open"]:
        fields["status"] = RunStatus.DONE if counts["done"] else RunStatus.FAILED
        ExperimentRun.objects.filter(pk=run_id, finished_at__isnull=True).update(
            finished_at=timezone.now()
        )
    ExperimentRun.objects.filter(pk=run_id).update(**fields)


def experiment_runs_sweep(
    *, now: Any = None, stalled_minutes: float | None = None
) -> dict[str, int]:
    """Finish or resume running runs whose chunks were lost (beat: `experiment-runs-sweep`).

    1. A running run with no open result (every result done or failed) is recounted, which
       finishes it (a task that died between its last write and the recount).
    2. A running run started more than `stalled_minutes` (EXPERIMENT_SWEEP_AFTER_MINUTES) ago that
       has made no progress for that long — no result finished since, no claim still held — lost
       its chunks: the broker was down when it was queued, or the worker holding a chunk died.
       Its pending results and those whose claim expired are enqueued again in chunks.
    3. Re-enqueueing is safe however often it happens: execution claims each result with a
       compare-and-set (`_claim`), so a message that turns up late, or twice, finds nothing to do.

    Returns {"finished": runs finished, "runs_requeued": runs resumed, "results_requeued": n}.
    """
    now = now or timezone.now()
    minutes = (
        settings.EXPERIMENT_SWEEP_AFTER_MINUTES if stalled_minutes is None else stalled_minutes
    )
    cutoff = now - timedelta(minutes=minutes)
    report = {"finished": 0, "runs_requeued": 0, "results_requeued": 0}
    open_statuses = (ResultStatus.PENDING, ResultStatus.RUNNING)
    for run in ExperimentRun.objects.filter(status=RunStatus.RUNNING).order_by("pk"):
        results = ExperimentItemResult.objects.filter(run_id=run.pk)
        if not results.filter(status__in=open_statuses).exists():
            _run_recount(run_id=run.pk)
            report["finished"] += 1
            continue
        if run.started_at is not None and run.started_at >= cutoff:
            continue  # young: its own messages may still be on the way
        progressing = Q(finished_at__gte=cutoff) | Q(
            status=ResultStatus.RUNNING, claimed_until__gte=now
        )
        if results.filter(progressing).exists():
            continue
        ids = list(results.filter(_claimable(now)).order_by("pk").values_list("pk", flat=True))
        if ids:
            logger.warning("experiment.sweep", extra={"run": run.pk, "results": len(ids)})
            _chunks_enqueue(run=run, result_ids=ids)
            report["runs_requeued"] += 1
            report["results_requeued"] += len(ids)
    return report


# --- the CI gate ---------------------------------------------------------------------------------


@dataclass
class GateResult:
    run: ExperimentRun
    baseline: ExperimentRun | None
    comparison: Any  # selectors.Comparison, or None without a baseline
    passed: bool
    reasons: list[str]
    timed_out: bool = False


def experiment_run_wait(
    *, run: ExperimentRun, timeout_seconds: float, poll_seconds: float = 2.0
) -> bool:
    """Poll until the run is finished (a worker runs it); False when the timeout passed first."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        run.refresh_from_db()
        if run.status in (RunStatus.DONE, RunStatus.FAILED):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_seconds)


def experiment_gate(
    *, run: ExperimentRun, baseline_spec: str, max_drop: float, max_regressions: int
) -> GateResult:
    """Compare a finished run with its baseline: fails when the average score dropped by more
    than `max_drop` (0–10 scale), more than `max_regressions` items regressed, or items failed."""
    from .selectors import baseline_for, runs_compare

    baseline = baseline_for(dataset=run.dataset, spec=baseline_spec, exclude=run.pk)
    reasons: list[str] = []
    if run.status != RunStatus.DONE or run.failed:
        reasons.append(f"{run.failed} of {run.total} item(s) could not be run or graded")
    if baseline is None:
        if baseline_spec != "latest":
            raise ExperimentError(f"no run {baseline_spec} of dataset {run.dataset.slug}")
        # The first run of a dataset has nothing to regress from: it passes (and can be marked baseline).
        return GateResult(
            run=run, baseline=None, comparison=None, passed=not reasons, reasons=reasons
        )
    comparison = runs_compare(base=baseline, candidate=run)
    if comparison.average_drop is not None and comparison.average_drop > max_drop:
        reasons.append(
            f"the average score dropped by {comparison.average_drop:.2f} (allowed {max_drop:.2f})"
        )
    if len(comparison.regressed) > max_regressions:
        reasons.append(f"{len(comparison.regressed)} item(s) regressed (allowed {max_regressions})")
    return GateResult(
        run=run, baseline=baseline, comparison=comparison, passed=not reasons, reasons=reasons
    )
