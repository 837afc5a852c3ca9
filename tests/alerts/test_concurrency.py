"""Exactly once under concurrency: real threads, each with its own PostgreSQL connection."""

from datetime import timedelta

import pytest

from apps.alerts.models import AlertEvent, Delivery
from apps.alerts.risk_alerts import risk_turns_notify
from apps.alerts.rules import _rule_event_open, alert_rules_check
from apps.alerts.selectors import rule_metric_compute
from tests.conftest import require_postgres
from tests.factories import make_turn
from tests.support.threads import raised, run_together

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def _postgres_only(transactional_db):
    require_postgres("concurrent alert checks")


def test_two_concurrent_checks_create_one_event(chatbot, make_rule, now, receiver, webhook_channel):
    make_rule(chatbot=chatbot, metric="error_rate", threshold=10, channels=[webhook_channel])
    for _ in range(3):
        make_turn(chatbot=chatbot, timestamp=now - timedelta(minutes=1), has_error=True)

    for round_ in range(5):  # several rounds: the interleaving differs each time
        results = run_together(2, lambda _index, r=round_: alert_rules_check(now=now + timedelta(seconds=r)))
        assert not raised(results), results

    assert AlertEvent.objects.count() == 1
    assert Delivery.objects.count() == 1
    receiver.wait_for(1)
    assert len(receiver.requests) == 1


def test_concurrent_resolutions_notify_once(chatbot, make_rule, now, receiver, webhook_channel):
    make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1, channels=[webhook_channel])
    alert_rules_check(now=now)
    make_turn(chatbot=chatbot, timestamp=now + timedelta(minutes=1))

    results = run_together(2, lambda _index: alert_rules_check(now=now + timedelta(minutes=2)))
    assert not raised(results), results

    assert AlertEvent.objects.get().status == "resolved"
    assert sorted(Delivery.objects.values_list("kind", flat=True)) == ["firing", "resolved"]
    assert len(receiver.wait_for(2)) == 2


def test_the_database_refuses_a_second_open_event(chatbot, make_rule, now):
    # Even a check that raced past the rule lock cannot open a second event: the partial
    # unique constraint decides, and the loser sees None.
    rule = make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1)
    result = rule_metric_compute(rule=rule, now=now)
    results = run_together(4, lambda _index: _rule_event_open(rule=rule, result=result, now=now))
    assert not raised(results), results
    assert sum(r is not None for r in results) == 1
    assert AlertEvent.objects.count() == 1


def test_concurrent_risk_reports_send_one_alert(chatbot, webhook_channel, receiver, now):
    chatbot.alert_on_risk = True
    chatbot.save()
    webhook_channel.chatbots.add(chatbot)
    turns = [make_turn(chatbot=chatbot, risk_score=90, is_flagged=True) for _ in range(3)]

    results = run_together(3, lambda _index: risk_turns_notify(turn_ids=[t.pk for t in turns], now=now))
    assert not raised(results), results

    assert AlertEvent.objects.count() == 3
    assert Delivery.objects.count() == 1
    assert receiver.wait_for(1)[0].json()["count"] == 3


def test_two_workers_checking_the_same_run_open_one_theme_event(chatbot):
    """Two deliveries of the theme check of one clustering run (a redelivered task, two workers)
    at once: one event, one delivery — the rule's row lock and one_theme_event_per_run."""
    from django.utils import timezone

    from apps.alerts.models import AlertRule, NotificationChannel
    from apps.alerts.theme_alerts import theme_rules_check
    from apps.clustering import tasks as clustering_tasks
    from apps.clustering.runs import cluster_run_create
    from tests.clustering.conftest import THEMES
    from tests.factories import make_conversation

    def failing_turns(messages, hours_ago):
        conversation = make_conversation(chatbot)
        at = timezone.now() - timedelta(hours=hours_ago)
        for i, text in enumerate(messages):
            make_turn(conversation, user_message=text, thumbs_down=1, timestamp=at - timedelta(minutes=i))

    def finished_run():
        run = cluster_run_create(chatbot=chatbot, days=7)
        clustering_tasks.cluster_run_execute(run.pk)
        run.refresh_from_db()
        assert run.status == "done"
        return run

    failing_turns(THEMES["refund"], 30)
    failing_turns(THEMES["password"], 30)
    finished_run()
    failing_turns(THEMES["delivery"], 1)  # the new theme
    second = finished_run()
    assert second.clusters.filter(is_new=True).exists()
    # The rule exists only now, so the runs' own checks (eager) found nothing to fire.
    channel = NotificationChannel.objects.create(name="Log", kind="log", config={})
    rule = AlertRule.objects.create(name="New failure theme", chatbot=chatbot, metric="new_failure_theme",
                                    comparison="gte", threshold=3, window_minutes=60)
    rule.channels.set([channel])

    results = run_together(2, lambda _index: theme_rules_check(run_id=second.pk))

    assert not raised(results), results
    assert sorted(len(opened) for opened in results) == [0, 1]
    event = AlertEvent.objects.get()
    assert (event.rule_id, event.cluster_run_id, event.status) == (rule.pk, second.pk, "firing")
    assert Delivery.objects.filter(event=event).count() == 1
    rule.refresh_from_db()
    assert rule.state == "firing"
