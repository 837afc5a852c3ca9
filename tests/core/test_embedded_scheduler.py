"""The embedded scheduler (`manage.py demo_server`): it runs the beat schedule's tasks in process,
and its guard keeps it out of gunicorn, Celery and the tests."""

import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core import scheduler
from apps.core.scheduler import embedded_scheduler_refusal, embedded_scheduler_start

RUNSERVER = ["manage.py", "demo_server", "127.0.0.1:8000"]


def test_the_guard_allows_the_dev_server_only():
    assert embedded_scheduler_refusal(enabled=True, argv=RUNSERVER, environ={}, modules={}) is None
    assert embedded_scheduler_refusal(enabled=False, argv=RUNSERVER, environ={}, modules={}) == "EMBEDDED_SCHEDULER is off"


@pytest.mark.parametrize(("argv", "environ", "modules"), [
    (["/srv/.venv/bin/gunicorn", "chatmon.wsgi:application"], {}, {}),
    (["manage.py"], {"SERVER_SOFTWARE": "gunicorn/23.0.0"}, {}),
    (["python"], {}, {"gunicorn.arbiter": object()}),
    (["/srv/.venv/bin/celery", "-A", "chatmon", "beat"], {}, {}),
    (["python"], {}, {"celery.apps.worker": object()}),
    (["/srv/.venv/bin/pytest"], {}, {"pytest": object()}),
    (["manage.py", "demo_server"], {"PYTEST_CURRENT_TEST": "tests/x.py::test (call)"}, {}),
])
def test_the_guard_refuses_gunicorn_celery_and_tests(argv, environ, modules):
    reason = embedded_scheduler_refusal(enabled=True, argv=argv, environ=environ, modules=modules)
    assert reason is not None and any(word in reason for word in ("gunicorn", "celery", "tests"))


def test_it_does_not_start_in_this_test_process_even_when_switched_on(settings):
    settings.EMBEDDED_SCHEDULER = True
    assert "pytest" in sys.modules
    assert embedded_scheduler_start() is None
    assert scheduler._started is None


def test_the_test_settings_switch_it_off(settings):
    assert settings.EMBEDDED_SCHEDULER is False


@pytest.mark.django_db
def test_a_tick_runs_due_entries_once_and_reports_the_next_wait(monkeypatch):
    ran = []
    monkeypatch.setattr(scheduler, "_task_run", ran.append)
    entries = scheduler._entries({
        "every-minute": {"task": "apps.alerts.tasks.alert_rules_check", "schedule": 60.0},
        "every-5-minutes": {"task": "apps.evaluations.tasks.judge_sweep", "schedule": 300.0},
    })
    entries[0].last_run_at = timezone.now() - timedelta(seconds=61)
    wait = scheduler.scheduler_tick(entries)
    assert ran == ["apps.alerts.tasks.alert_rules_check"]
    assert 1 <= wait <= scheduler.MAX_SLEEP_SECONDS
    scheduler.scheduler_tick(entries)
    assert ran == ["apps.alerts.tasks.alert_rules_check"]  # not due again yet


@pytest.mark.django_db
def test_a_scheduled_task_runs_for_real(django_capture_on_commit_callbacks):
    """What the thread calls: the real task, applied in process (here the alert check)."""
    from apps.alerts.models import AlertRule

    rule = AlertRule.objects.create(name="Errors", metric="turn_volume", comparison="lt", threshold=1, min_samples=0)
    with django_capture_on_commit_callbacks(execute=True):
        scheduler._task_run("apps.alerts.tasks.alert_rules_check")
    rule.refresh_from_db()
    assert rule.state == "firing" and rule.last_checked_at is not None
