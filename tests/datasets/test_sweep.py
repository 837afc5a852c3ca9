"""Lost experiment chunks: a run queued while the broker was down (its chunk messages never
reach a worker) and a chunk whose worker died holding it are completed by the beat sweep, each
item run exactly once (the same results, the same model calls, as an undisturbed run)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from apps.conversations.choices import CallPurpose
from apps.conversations.models import LLMCall
from apps.core.queue import broker_breaker
from apps.datasets import tasks
from apps.datasets.choices import ResultStatus, RunStatus
from apps.datasets.experiments import _claim, experiment_run_create
from apps.datasets.models import ExperimentItemResult, ExperimentRun
from apps.datasets.services import dataset_items_create
from tests.evaluations.conftest import celery_broker
from tests.support.tcp_proxy import closed_port

from .conftest import ANSWERS

pytestmark = pytest.mark.django_db(transaction=True)

# Per item: the target's answer, the judge's rubric grade, the reference grade.
CALLS_PER_ITEM = 3


@pytest.fixture
def items(dataset):
    return dataset_items_create(
        dataset=dataset, items=[{"input": q, "expected_answer": a} for q, a in ANSWERS.items()]
    )


def _lost_run(dataset, target) -> ExperimentRun:
    """Create the run while the broker is unreachable: the chunk messages are never delivered."""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.1,
    }
    try:
        with celery_broker(f"redis://127.0.0.1:{closed_port()}/0"):
            run = experiment_run_create(dataset=dataset, target=target)
    finally:
        broker_breaker.reset()
    return run


def _age(run: ExperimentRun, minutes: float) -> None:
    ExperimentRun.objects.filter(pk=run.pk).update(
        started_at=timezone.now() - timedelta(minutes=minutes)
    )


def _model_requests(server) -> int:
    return len(server.requests_to("/chat/completions"))


def test_beat_runs_the_sweep(model_settings):
    entry = settings.CELERY_BEAT_SCHEDULE["experiment-runs-sweep"]
    assert entry["task"] == tasks.experiment_runs_sweep.name
    assert entry["schedule"] <= 60 * settings.EXPERIMENT_SWEEP_AFTER_MINUTES


def test_a_run_queued_while_the_broker_was_down_is_completed_once(
    dataset, items, targets, shop_server
):
    run = _lost_run(dataset, targets["v1"])
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.done == 0
    assert set(run.results.values_list("status", flat=True)) == {ResultStatus.PENDING}
    assert _model_requests(shop_server) == 0

    # Young: its messages may still be on the way, the sweep leaves it alone.
    assert tasks.experiment_runs_sweep.apply().result["results_requeued"] == 0
    assert _model_requests(shop_server) == 0

    _age(run, settings.EXPERIMENT_SWEEP_AFTER_MINUTES + 1)
    report = tasks.experiment_runs_sweep.apply().result
    assert report == {"finished": 0, "runs_requeued": 1, "results_requeued": len(ANSWERS)}
    run.refresh_from_db()
    assert (run.status, run.done, run.failed) == (RunStatus.DONE, len(ANSWERS), 0)
    results = list(run.results.all())
    assert len(results) == len(ANSWERS)
    assert all(r.status == ResultStatus.DONE and r.attempts == 1 for r in results)
    assert all(r.output == ANSWERS[r.item.input] for r in results)
    assert _model_requests(shop_server) == CALLS_PER_ITEM * len(ANSWERS)
    calls = LLMCall.objects.filter(purpose=CallPurpose.EXPERIMENT)
    assert calls.count() == CALLS_PER_ITEM * len(ANSWERS)

    # The lost messages turn up after all, and the sweep runs again: nothing runs twice.
    first, last = min(r.pk for r in results), max(r.pk for r in results)
    tasks.experiment_chunk_run.apply(args=(run.pk, first, last))
    assert tasks.experiment_runs_sweep.apply().result == {
        "finished": 0,
        "runs_requeued": 0,
        "results_requeued": 0,
    }
    assert _model_requests(shop_server) == CALLS_PER_ITEM * len(ANSWERS)
    assert calls.count() == CALLS_PER_ITEM * len(ANSWERS)


def test_a_chunk_held_by_a_dead_worker_is_resumed_after_its_claim_expires(
    dataset, items, targets, shop_server
):
    run = _lost_run(dataset, targets["v1"])
    results = list(run.results.order_by("pk"))
    # A worker claimed the first two results and died; the other two it never got to.
    token, held = _claim(run_id=run.pk, first_id=results[0].pk, last_id=results[1].pk)
    assert [r.pk for r in held] == [r.pk for r in results[:2]]
    # While the claim holds, nobody else can take those results (compare-and-set).
    assert _claim(run_id=run.pk, first_id=results[0].pk, last_id=results[-1].pk)[1] == list(
        run.results.filter(pk__in=[r.pk for r in results[2:]])
    )
    ExperimentItemResult.objects.filter(pk__in=[r.pk for r in results[2:]]).update(
        status=ResultStatus.PENDING, claim=None, claimed_until=None
    )
    _age(run, settings.EXPERIMENT_SWEEP_AFTER_MINUTES + 1)

    # The claim has not expired: the run counts as in progress, nothing is re-enqueued.
    assert tasks.experiment_runs_sweep.apply().result["results_requeued"] == 0
    assert _model_requests(shop_server) == 0

    ExperimentItemResult.objects.filter(claim=token).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    report = tasks.experiment_runs_sweep.apply().result
    assert report["runs_requeued"] == 1 and report["results_requeued"] == len(ANSWERS)
    run.refresh_from_db()
    assert (run.status, run.done) == (RunStatus.DONE, len(ANSWERS))
    assert not run.results.exclude(claim=None).exists()
    assert _model_requests(shop_server) == CALLS_PER_ITEM * len(ANSWERS)
    assert LLMCall.objects.filter(purpose=CallPurpose.EXPERIMENT).count() == (
        CALLS_PER_ITEM * len(ANSWERS)
    )


def test_a_stale_claim_does_not_overwrite_the_result_of_the_task_that_took_over(
    dataset, items, targets, shop_server
):
    run = _lost_run(dataset, targets["v1"])
    result = run.results.order_by("pk").first()
    stale_token, _ = _claim(run_id=run.pk, first_id=result.pk, last_id=result.pk)
    ExperimentItemResult.objects.filter(pk=result.pk).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    # Another task takes the expired claim over and finishes the item.
    tasks.experiment_chunk_run.apply(args=(run.pk, result.pk, result.pk))
    result.refresh_from_db()
    assert result.status == ResultStatus.DONE and result.claim is None
    # The first task's write-back (keyed on its token) changes nothing.
    assert (
        ExperimentItemResult.objects.filter(pk=result.pk, claim=stale_token).update(
            status=ResultStatus.FAILED
        )
        == 0
    )


def test_a_run_whose_results_are_all_written_is_finished(dataset, items, targets, shop_server):
    run = _lost_run(dataset, targets["v1"])
    tasks.experiment_chunk_run.apply(
        args=(run.pk, run.results.order_by("pk").first().pk, run.results.order_by("pk").last().pk)
    )
    # A worker that died between its last write and the recount.
    ExperimentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, finished_at=None, done=0
    )
    assert tasks.experiment_runs_sweep.apply().result["finished"] == 1
    run.refresh_from_db()
    assert (run.status, run.done) == (RunStatus.DONE, len(ANSWERS))
    assert run.finished_at is not None
