"""The minute check: transitions, notifications, re-notify, minimum samples, failing rules."""

import hashlib
import hmac
import importlib
from datetime import timedelta

from django.core.management import call_command

from apps.alerts.models import AlertEvent, AlertRule, Delivery
from apps.alerts.rules import alert_event_acknowledge
from tests.alerts.conftest import WEBHOOK_SECRET
from tests.factories import make_turn


def _errors(chatbot, at, count, *, has_error=True):
    for _ in range(count):
        make_turn(chatbot=chatbot, timestamp=at, has_error=has_error)


def test_minimum_sample_size_keeps_the_rule_quiet(chatbot, make_rule, run_check, now):
    rule = make_rule(chatbot=chatbot, metric="error_rate", threshold=5, min_samples=3)
    _errors(chatbot, now - timedelta(minutes=1), 2)  # 100 % errors, but only 2 turns

    run_check(now)
    rule.refresh_from_db()
    assert (rule.state, rule.last_value, rule.last_sample_size) == ("ok", 100.0, 2)
    assert not AlertEvent.objects.exists()

    _errors(chatbot, now - timedelta(minutes=1), 1)
    run_check(now)
    rule.refresh_from_db()
    assert rule.state == "firing"
    assert AlertEvent.objects.count() == 1


def test_counts_ignore_the_minimum_sample_size(chatbot, make_rule, run_check, now):
    # Turn volume dropping to zero must alert, whatever the minimum sample size says.
    rule = make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1, min_samples=50)
    run_check(now)
    rule.refresh_from_db()
    assert (rule.state, rule.last_value) == ("firing", 0.0)


def test_ok_to_firing_to_resolved_sends_exactly_two_notifications(
    chatbot, make_rule, run_check, now, receiver, webhook_channel
):
    rule = make_rule(chatbot=chatbot, metric="error_rate", threshold=20, window_minutes=10,
                     channels=[webhook_channel], severity="critical")
    _errors(chatbot, now - timedelta(minutes=2), 3)
    _errors(chatbot, now - timedelta(minutes=2), 1, has_error=False)  # 75 %

    run_check(now)
    run_check(now + timedelta(minutes=1))  # still firing: nothing new

    event = AlertEvent.objects.get()
    assert (event.status, event.value, event.threshold, event.sample_size) == ("firing", 75.0, 20.0, 4)
    assert event.severity == "critical"
    assert [r.json()["kind"] for r in receiver.requests] == ["firing"]

    # The errors leave the window; healthy traffic keeps arriving.
    _errors(chatbot, now + timedelta(minutes=12), 5, has_error=False)
    run_check(now + timedelta(minutes=13))
    run_check(now + timedelta(minutes=14))

    event.refresh_from_db()
    rule.refresh_from_db()
    assert event.status == "resolved"
    assert event.resolved_at == now + timedelta(minutes=13)
    assert rule.state == "ok"
    assert AlertEvent.objects.count() == 1
    assert [r.json()["kind"] for r in receiver.requests] == ["firing", "resolved"]
    assert list(Delivery.objects.order_by("id").values_list("kind", "status", "attempts")) == [
        ("firing", "sent", 1), ("resolved", "sent", 1)
    ]
    body = receiver.requests[1].json()
    assert body["value"] == 0.0
    assert body["event"]["status"] == "resolved"


def test_firing_again_after_resolution_opens_a_new_event(chatbot, make_rule, run_check, now):
    make_rule(chatbot=chatbot, metric="error_rate", threshold=20)
    _errors(chatbot, now - timedelta(minutes=1), 2)
    run_check(now)
    run_check(now + timedelta(minutes=15))  # window empty: resolved
    _errors(chatbot, now + timedelta(minutes=20), 2)
    run_check(now + timedelta(minutes=21))
    assert list(AlertEvent.objects.order_by("id").values_list("status", flat=True)) == ["resolved", "firing"]


def test_renotify_interval_while_firing(chatbot, make_rule, run_check, now, receiver, webhook_channel):
    make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1, renotify_minutes=30,
              channels=[webhook_channel])
    for minutes in (0, 10, 29, 30, 45, 59, 61):
        run_check(now + timedelta(minutes=minutes))

    assert [r.json()["kind"] for r in receiver.requests] == ["firing", "renotify", "renotify"]
    event = AlertEvent.objects.get()
    assert event.notify_count == 3
    assert event.last_notified_at == now + timedelta(minutes=61)


def test_no_renotify_when_interval_is_zero_or_acknowledged(
    chatbot, make_rule, run_check, now, receiver, webhook_channel, alice
):
    quiet = make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1, renotify_minutes=0,
                      channels=[webhook_channel])
    acked = make_rule(chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1, renotify_minutes=5,
                      channels=[webhook_channel])
    run_check(now)
    assert alert_event_acknowledge(event_id=AlertEvent.objects.get(rule=acked).pk, user=alice)
    run_check(now + timedelta(minutes=30))
    assert [r.json()["rule"]["id"] for r in receiver.requests] == [quiet.pk, acked.pk]

    # Acknowledged still resolves, and the resolution is announced.
    make_turn(chatbot=chatbot, timestamp=now + timedelta(minutes=31))
    run_check(now + timedelta(minutes=32))
    assert AlertEvent.objects.get(rule=acked).status == "resolved"
    assert sorted(r.json()["kind"] for r in receiver.requests) == ["firing", "firing", "resolved", "resolved"]


def test_a_failing_rule_is_reported_and_does_not_stop_the_others(chatbot, make_rule, run_check, now):
    broken = make_rule(chatbot=chatbot, name="broken", metric="error_rate")
    AlertRule.objects.filter(pk=broken.pk).update(metric="no_such_metric")  # e.g. a stale row
    healthy = make_rule(chatbot=chatbot, name="volume", metric="turn_volume", comparison="lt", threshold=1)

    outcomes = run_check(now)

    broken.refresh_from_db()
    healthy.refresh_from_db()
    assert broken.state == "error"
    assert "unknown metric" in broken.last_error
    assert broken.last_checked_at == now
    assert healthy.state == "firing"
    assert {o.name: o.state for o in outcomes} == {"broken": "error", "volume": "firing"}

    # Fixed: the next check clears the error.
    AlertRule.objects.filter(pk=broken.pk).update(metric="error_rate")
    run_check(now + timedelta(minutes=1))
    broken.refresh_from_db()
    assert (broken.state, broken.last_error) == ("ok", "")


def test_disabled_rules_and_presets_are_not_checked(make_rule, run_check, now):
    # The preset rules come from a data migration, disabled and without channels. Run it again
    # (it is idempotent) because a transactional test elsewhere may have flushed the tables.
    from django.apps import apps

    importlib.import_module("apps.alerts.migrations.0003_preset_rules").create_presets(apps, None)
    presets = AlertRule.objects.filter(name__startswith="Preset:")
    assert presets.count() == 3
    assert not presets.filter(is_enabled=True).exists()
    assert set(presets.values_list("metric", flat=True)) == {"fallback_count", "error_rate", "slow_share"}
    make_rule(metric="turn_volume", comparison="lt", threshold=1, is_enabled=False)
    assert run_check(now) == []
    assert not AlertEvent.objects.exists()


def test_rule_for_all_chatbots_and_webhook_body(chatbot, other_chatbot, make_rule, run_check, now, receiver, webhook_channel):
    rule = make_rule(name="Fallbacks everywhere", chatbot=None, metric="fallback_count", threshold=2,
                     window_minutes=10, channels=[webhook_channel])
    for bot in (chatbot, other_chatbot):
        make_turn(chatbot=bot, timestamp=now - timedelta(minutes=3), fallback_used=True)
    make_turn(chatbot=chatbot, timestamp=now - timedelta(minutes=3), fallback_used=True)

    run_check(now)

    request = receiver.requests[0]
    body = request.json()
    expected_signature = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-chatmon-signature"], expected_signature)
    assert request.headers["x-chatmon-timestamp"].isdigit()
    event = AlertEvent.objects.get()
    assert body["rule"] == {"id": rule.pk, "name": "Fallbacks everywhere"}
    assert (body["metric"], body["value"], body["threshold"], body["window_minutes"]) == ("fallback_count", 3.0, 2.0, 10)
    assert body["chatbot"] is None
    assert body["links"]["event"] == f"https://chatmon.example/admin/alerts/alertevent/{event.pk}/change/"
    assert body["links"]["rule"] == f"https://chatmon.example/admin/alerts/alertrule/{rule.pk}/change/"
    assert body["delivery_id"] == Delivery.objects.get().pk


def test_check_alerts_command_prints_each_rule(chatbot, make_rule, capsys, now):
    make_rule(name="Errors on shop", chatbot=chatbot, metric="error_rate", threshold=5)
    make_rule(name="Silence", chatbot=chatbot, metric="turn_volume", comparison="lt", threshold=1)
    _errors(chatbot, timezone_now_minus(1), 1, has_error=False)

    call_command("check_alerts")

    out = capsys.readouterr().out
    assert "Errors on shop: value=0 turns=1 state=ok" in out
    assert "Silence: value=1 turns=1 state=ok" in out


def timezone_now_minus(minutes: int):
    from django.utils import timezone

    return timezone.now() - timedelta(minutes=minutes)
