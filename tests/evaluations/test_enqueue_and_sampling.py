"""Sampling and enqueueing through the real ingest path, the sweeper, and a broker outage."""

import contextlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery.signals import before_task_publish
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.conversations.models import Turn
from apps.evaluations.models import Evaluation
from apps.evaluations.sampling import turn_is_sampled
from apps.evaluations.services import judge_enqueue
from apps.evaluations.tasks import judge_fan_out, judge_sweep
from tests.evaluations.conftest import celery_broker
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db


def ingest(bot_client, django_capture_on_commit_callbacks, count: int, conversation: str = "c-1") -> list[int]:
    turns = [{"conversation_id": conversation, "turn_id": f"t-{n}", "user_message": f"question {n} about shipping",
              "bot_response": f"answer {n}: shipping takes two days"} for n in range(count)]
    with django_capture_on_commit_callbacks(execute=True):
        response = bot_client.post("/api/v1/ingest/turns", {"turns": turns}, content_type="application/json")
    assert response.status_code == 207, response.content
    return [r["id"] for r in response.json()["results"]]


@pytest.mark.parametrize("rate", [0.0, 0.5, 1.0])
def test_sample_rate_decides_which_turns_are_judged(rate, chatbot, bot_client, django_capture_on_commit_callbacks):
    chatbot.judge_sample_rate = rate
    chatbot.save()

    ids = ingest(bot_client, django_capture_on_commit_callbacks, 40)

    expected = {
        turn.pk for turn in Turn.objects.filter(pk__in=ids).select_related("conversation")
        if turn_is_sampled(chatbot_id=chatbot.pk, turn_key=f"{turn.conversation.external_id}:{turn.external_id}", sample_rate=rate)
    }
    judged = set(Evaluation.objects.filter(status="done").values_list("turn_id", flat=True))
    assert judged == expected
    assert set(Turn.objects.filter(judge_status="done").values_list("pk", flat=True)) == expected
    assert set(Turn.objects.filter(judge_status="").values_list("pk", flat=True)) == set(ids) - expected
    if rate == 0.0:
        assert judged == set()
    elif rate == 1.0:
        assert judged == set(ids)
    else:
        assert 0 < len(judged) < 40


def test_sampling_is_deterministic_and_grows_with_the_rate():
    keys = [f"conv-{n // 5}:turn-{n}" for n in range(2000)]
    half = {k for k in keys if turn_is_sampled(chatbot_id=7, turn_key=k, sample_rate=0.5)}
    again = {k for k in keys if turn_is_sampled(chatbot_id=7, turn_key=k, sample_rate=0.5)}
    tenth = {k for k in keys if turn_is_sampled(chatbot_id=7, turn_key=k, sample_rate=0.1)}

    assert half == again
    assert tenth < half
    assert 850 < len(half) < 1150
    assert 120 < len(tenth) < 280
    assert all(turn_is_sampled(chatbot_id=7, turn_key=k, sample_rate=1.0) for k in keys[:50])
    assert not any(turn_is_sampled(chatbot_id=7, turn_key=k, sample_rate=0.0) for k in keys[:50])


def test_judge_off_means_nothing_is_sampled(chatbot, bot_client, django_capture_on_commit_callbacks):
    chatbot.judge_enabled = False
    chatbot.save()

    ingest(bot_client, django_capture_on_commit_callbacks, 5)

    assert not Evaluation.objects.exists()
    assert not Turn.objects.exclude(judge_status="").exists()


@contextlib.contextmanager
def published_tasks() -> Iterator[list[tuple[str, str, tuple]]]:
    """(task name, queue, args) of every task message sent to the broker meanwhile."""
    sent: list[tuple[str, str, tuple]] = []

    def record(sender: str, body: tuple, routing_key: str, **_kwargs: object) -> None:
        sent.append((sender, routing_key, tuple(body[0])))

    before_task_publish.connect(record, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(record)


def test_large_batches_fan_out_to_one_task_per_turn(chatbot, django_capture_on_commit_callbacks):
    conversation = make_conversation(chatbot)
    turn_ids = [make_turn(conversation, judge_status="pending").pk for _ in range(45)]

    # Through an in-memory broker: the caller sends one message for the batch, not 45 …
    with celery_broker("memory://"), published_tasks() as sent:
        with django_capture_on_commit_callbacks(execute=True):
            judge_enqueue(turn_ids=turn_ids)
        assert sent == [("apps.evaluations.tasks.judge_fan_out", "judge", (turn_ids,))]
        # … and the worker running that message sends one turn_judge per turn.
        sent.clear()
        judge_fan_out(turn_ids)
    assert sent == [("apps.evaluations.tasks.turn_judge", "judge", (turn_id,)) for turn_id in turn_ids]

    # Eager (embedded mode): the same path judges every turn.
    with django_capture_on_commit_callbacks(execute=True):
        judge_enqueue(turn_ids=turn_ids)
    assert Evaluation.objects.filter(status="done").count() == 45
    assert not Turn.objects.filter(judge_status="pending").exists()


def test_small_batches_are_sent_turn_by_turn(chatbot, django_capture_on_commit_callbacks):
    turn_ids = [make_turn(make_conversation(chatbot), judge_status="pending").pk for _ in range(3)]

    with celery_broker("memory://"), published_tasks() as sent, django_capture_on_commit_callbacks(execute=True):
        judge_enqueue(turn_ids=turn_ids)

    assert sent == [("apps.evaluations.tasks.turn_judge", "judge", (turn_id,)) for turn_id in turn_ids]


def test_sweeper_picks_up_a_turn_whose_task_was_lost(chatbot, settings, django_capture_on_commit_callbacks):
    settings.JUDGE_SWEEP_AFTER_MINUTES = 10
    conversation = make_conversation(chatbot)
    lost = make_turn(conversation, judge_status="pending")
    recent = make_turn(conversation, judge_status="pending")
    held = make_turn(conversation, judge_status="pending")
    not_sampled = make_turn(conversation)
    old = timezone.now() - timedelta(minutes=30)
    Turn.objects.filter(pk__in=[lost.pk, held.pk, not_sampled.pk]).update(created_at=old)
    # A worker is busy with this one right now.
    Evaluation.objects.create(
        turn=held, chatbot=chatbot, evaluator="heuristic", evaluator_version="heuristic-v1",
        attempts=1, claimed_until=timezone.now() + timedelta(minutes=1),
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert judge_sweep.delay().get() == 1

    assert Evaluation.objects.get(turn=lost).status == "done"
    assert not Evaluation.objects.filter(turn=recent).exists()  # its task may still be queued
    assert Evaluation.objects.get(turn=held).status == "pending"
    assert not Evaluation.objects.filter(turn=not_sampled).exists()
    assert judge_sweep.delay().get() == 0


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_broker_outage_is_logged_not_raised_and_swept_later(chatbot, caplog, settings, django_capture_on_commit_callbacks):
    settings.JUDGE_SWEEP_AFTER_MINUTES = 0
    turn = make_turn(make_conversation(chatbot), judge_status="pending")
    failures = _sample("chatmon_redis_failures_total", kind="broker")
    skipped = _sample("chatmon_enqueue_total", task="apps.evaluations.tasks.judge_fan_out", result="skipped")

    with celery_broker("redis://127.0.0.1:1/0"), django_capture_on_commit_callbacks(execute=True):  # port 1: closed
        judge_enqueue(turn_ids=[turn.pk])
        # The fan-out path too: the breaker is open now, so it is skipped without trying.
        judge_enqueue(turn_ids=list(range(turn.pk, turn.pk + 30)))

    assert _sample("chatmon_redis_failures_total", kind="broker") == failures + 1
    assert _sample("chatmon_enqueue_total", task="apps.evaluations.tasks.judge_fan_out", result="skipped") == skipped + 1
    assert [r.msg for r in caplog.records if r.name == "chatmon.redis"] != []  # logged once, not raised
    turn.refresh_from_db()
    assert turn.judge_status == "pending"
    assert not Evaluation.objects.exists()

    # Broker back (here: eager again): the sweeper finds the turn.
    with django_capture_on_commit_callbacks(execute=True):
        assert judge_sweep.delay().get() == 1
    turn.refresh_from_db()
    assert turn.judge_status == "done"
