"""Serving processes freeze their start-up objects out of the cyclic garbage collector
(chatmon/startup.py): web (WSGI and ASGI) at import, Celery when the worker and each prefork
child start. Each case runs in a fresh interpreter, as a server starts."""

import subprocess
import sys

import pytest

from tests.core.test_secret_keys import GOOD_KEY, ROOT, _production_env

pytestmark = pytest.mark.slow

REPORT = "import gc, sys; print(gc.get_freeze_count(), 'apps.ingest.api.views' in sys.modules)"
STARTS = {
    "wsgi": "import chatmon.wsgi",
    "asgi": "import chatmon.asgi",
    # What celery.worker.WorkController does first: import the task modules (Django is set up
    # then), then send worker_init.
    "celery worker": "from celery import signals; from chatmon.celery import app; app.loader.init_worker(); "
                     "signals.worker_init.send(sender=None)",
}


def _started(code: str, **env: str) -> tuple[int, bool]:
    result = subprocess.run(
        [sys.executable, "-c", f"{code}; {REPORT}"], cwd=ROOT, env=_production_env(SECRET_KEY=GOOD_KEY, **env),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    frozen, views_loaded = result.stdout.split()
    return int(frozen), views_loaded == "True"


@pytest.mark.parametrize("start", STARTS.values(), ids=STARTS.keys())
def test_start_up_objects_are_frozen_with_the_views_loaded(start):
    frozen, views_loaded = _started(start)
    assert frozen > 50_000  # Django, the apps and the URLconf's views: a few hundred thousand objects
    assert views_loaded  # the URLconf was imported before the freeze, not at the first request


def test_freezing_can_be_turned_off():
    assert _started(STARTS["wsgi"], GC_FREEZE_AT_START="0") == (0, False)
