"""With DEBUG off, a public, placeholder or weak SECRET_KEY / END_USER_HASH_KEY stops chatmon.

The check is a system check (ids chatmon.E001 / chatmon.E002, so `manage.py` commands stop on
it); gunicorn and Celery, which run no system checks, call it while they start.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apps.core.checks import DEVELOPMENT_SECRET_KEY, EXAMPLE_SECRET_KEY, secret_keys_check

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = secrets.token_urlsafe(64)
EXAMPLE_FILE_KEY = next(
    line.split("=", 1)[1].strip() for line in (ROOT / ".env.example").read_text().splitlines()
    if line.startswith("SECRET_KEY=")
)

BAD_KEYS = {
    "development default": DEVELOPMENT_SECRET_KEY,
    ".env.example value": EXAMPLE_FILE_KEY,
    "placeholder": "change-me-" + "q" * 60,
    "changeme": "changeme" * 8,
    "short": secrets.token_urlsafe(30)[:40],
    "one character": "a" * 80,
}


def _ids(settings) -> list[str]:
    return [error.id for error in secret_keys_check()]


def test_the_known_public_keys_are_the_ones_the_repository_ships():
    # Unset, SECRET_KEY falls back to DEVELOPMENT_SECRET_KEY; .env.example holds the other.
    assert f'"SECRET_KEY", "{DEVELOPMENT_SECRET_KEY}"' in (ROOT / "chatmon" / "settings" / "__init__.py").read_text()
    assert EXAMPLE_FILE_KEY == EXAMPLE_SECRET_KEY


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_secret_key_is_an_error_with_debug_off(settings, key):
    settings.DEBUG = False
    settings.SECRET_KEY = key
    settings.END_USER_HASH_KEY = key  # unset: it follows SECRET_KEY
    assert _ids(settings) == ["chatmon.E001"]
    with pytest.raises(SystemCheckError, match="chatmon.E001"):
        call_command("check")


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_end_user_hash_key_is_an_error_when_set(settings, key):
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_KEY
    settings.END_USER_HASH_KEY = key
    assert _ids(settings) == ["chatmon.E002"]


def test_good_keys_pass(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_KEY
    settings.END_USER_HASH_KEY = secrets.token_urlsafe(64)
    assert _ids(settings) == []
    settings.END_USER_HASH_KEY = GOOD_KEY
    assert _ids(settings) == []


def test_debug_on_accepts_the_development_key(settings):
    settings.DEBUG = True
    settings.SECRET_KEY = DEVELOPMENT_SECRET_KEY
    settings.END_USER_HASH_KEY = "short"
    assert _ids(settings) == []


def _production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "END_USER_HASH_KEY", "DEBUG")}
    env.update({"DJANGO_SETTINGS_MODULE": "chatmon.settings", "DEBUG": "0", "DATABASE_URL": "",
                "REDIS_URL": "", **extra})
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    "env", [{}, {"SECRET_KEY": EXAMPLE_FILE_KEY}, {"SECRET_KEY": GOOD_KEY, "END_USER_HASH_KEY": "change-me"}],
    ids=["unset", "example", "weak hash key"],
)
def test_gunicorn_does_not_start_with_a_bad_key(env):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "chatmon.wsgi:application", "--bind", "127.0.0.1:0", "--workers", "1"],
        cwd=ROOT, env=_production_env(**env), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "chatmon.E00" in result.stderr and "Worker failed to boot" in result.stderr


@pytest.mark.slow
def test_celery_worker_does_not_start_with_the_default_key():
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "chatmon", "worker", "--pool", "solo", "-Q", "nothing"],
        cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "chatmon.E001" in result.stdout + result.stderr


@pytest.mark.slow
def test_wsgi_application_loads_with_a_good_key():
    result = subprocess.run(
        [sys.executable, "-c", "import chatmon.wsgi"], cwd=ROOT, env=_production_env(SECRET_KEY=GOOD_KEY),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
