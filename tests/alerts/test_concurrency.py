"""Exactly once under concurrency: real threads, each with its own PostgreSQL connection."""

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections

from apps.alerts.models import AlertEvent, Delivery
from apps.alerts.selectors import rule_metric_compute
from apps.alerts.services import _rule_event_open, alert_rules_check, risk_turns_notify
from tests.conftest import IN_CI
from tests.factories import make_turn

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def _postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("concurrency tests need PostgreSQL in CI (set DATABASE_URL)")
        pytest.skip("concurrency tests need PostgreSQL (DATABASE_URL=postgres://…)")


def _race(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run `work` in `count` threads released together; return results (or raised exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work()
        except Exception as exc:  # surfaced to the test
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_concurrent_checks_create_one_event(chatbot, make_rule, now, receiver, webhook_channel):
    make_rule(chatbot=chatbot, metric="error_rate", threshold=10, channels=[webhook_channel])
    for _ in range(3):
        make_turn(chatbot=chatbot, timestamp=now - timedelta(minutes=1), has_error=True)

    for round_ in range(5):  # several rounds: the interleaving differs each time
        results = _race(2, lambda r=round_: alert_rules_check(now=now + timedelta(seconds=r)))
        assert not [r for r in results if isinstance(r, Exception)], results

    assert AlertEvent.objects.count() == 1
    assert Delivery.objects.count() == 1
    receiver.wait_for(1)
    assert len(receiver.requests) == 1


def test_concurrent_resolutions_notify_once(chatbot, make_rule, now, receiver, webhook_channel):
    make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1, channels=[webhook_channel])
    alert_rules_check(now=now)
    make_turn(chatbot=chatbot, timestamp=now + timedelta(minutes=1))

    results = _race(2, lambda: alert_rules_check(now=now + timedelta(minutes=2)))
    assert not [r for r in results if isinstance(r, Exception)], results

    assert AlertEvent.objects.get().status == "resolved"
    assert sorted(Delivery.objects.values_list("kind", flat=True)) == ["firing", "resolved"]
    assert len(receiver.wait_for(2)) == 2


def test_the_database_refuses_a_second_open_event(chatbot, make_rule, now):
    # Even a check that raced past the rule lock cannot open a second event: the partial
    # unique constraint decides, and the loser sees None.
    rule = make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1)
    result = rule_metric_compute(rule=rule, now=now)
    results = _race(4, lambda: _rule_event_open(rule=rule, result=result, now=now))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r is not None for r in results) == 1
    assert AlertEvent.objects.count() == 1


def test_concurrent_risk_reports_send_one_alert(chatbot, webhook_channel, receiver, now):
    chatbot.alert_on_risk = True
    chatbot.save()
    webhook_channel.chatbots.add(chatbot)
    turns = [make_turn(chatbot=chatbot, risk_score=90, is_flagged=True) for _ in range(3)]

    results = _race(3, lambda: risk_turns_notify(turn_ids=[t.pk for t in turns], now=now))
    assert not [r for r in results if isinstance(r, Exception)], results

    assert AlertEvent.objects.count() == 3
    assert Delivery.objects.count() == 1
    assert receiver.wait_for(1)[0].json()["count"] == 3
