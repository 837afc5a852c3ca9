"""Start-up checks for the keys that sign and hash: a public key is a forgeable one.

SECRET_KEY signs feedback tokens and sessions; END_USER_HASH_KEY keys the HMAC of end-user ids.
With DEBUG off, a missing, default (this repository's development key), placeholder or short key
is an ERROR (chatmon.E001 / chatmon.E002). Where it stops the process:

- `manage.py` commands that run system checks (runserver, migrate, check …): Django raises
  SystemCheckError for any ERROR;
- gunicorn / any WSGI or ASGI server: chatmon/wsgi.py and chatmon/asgi.py call
  `secret_keys_enforce()` while the application loads, so a worker cannot boot (gunicorn halts);
- Celery worker and beat: chatmon/celery.py calls it on `worker_init` / `beat_init`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# The key settings fall back to, and the .env.example value: both are public.
DEVELOPMENT_SECRET_KEY = "django-insecure-chatmon-development-key-change-me-0123456789"
EXAMPLE_SECRET_KEY = "change-me-to-50-random-characters"
MIN_KEY_LENGTH = 50
MIN_UNIQUE_CHARACTERS = 5
# Lower-cased fragments that mark a value someone was meant to replace.
PLACEHOLDER_FRAGMENTS = (
    "change-me", "changeme", "change_me", "django-insecure", "replace-me", "replace_me", "replaceme",
    "placeholder", "your-secret", "your_secret", "secret-key-here", "insecure", "example",
)
GENERATE_HINT = 'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(64))"'


def key_problem(value: str) -> str | None:
    """Why value is not a usable production key, or None when it is."""
    if not value:
        return "is not set"
    if value in (DEVELOPMENT_SECRET_KEY, EXAMPLE_SECRET_KEY):
        return "is the public default from the repository"
    lowered = value.lower()
    if any(fragment in lowered for fragment in PLACEHOLDER_FRAGMENTS):
        return "looks like a placeholder"
    if len(value) < MIN_KEY_LENGTH:
        return f"is shorter than {MIN_KEY_LENGTH} characters"
    if len(set(value)) < MIN_UNIQUE_CHARACTERS:
        return f"has fewer than {MIN_UNIQUE_CHARACTERS} different characters"
    return None


@register(Tags.security)
def secret_keys_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if settings.DEBUG:
        return []
    errors = []
    problem = key_problem(settings.SECRET_KEY)
    if problem:
        errors.append(Error(
            f"SECRET_KEY {problem}; with DEBUG off anyone could forge feedback tokens and sessions.",
            hint=GENERATE_HINT, id="chatmon.E001",
        ))
    # Unset, END_USER_HASH_KEY is SECRET_KEY (checked above); set, it must hold up on its own.
    if settings.END_USER_HASH_KEY != settings.SECRET_KEY:
        problem = key_problem(settings.END_USER_HASH_KEY)
        if problem:
            errors.append(Error(
                f"END_USER_HASH_KEY {problem}; end-user id hashes could be reversed by guessing ids.",
                hint=GENERATE_HINT, id="chatmon.E002",
            ))
    return errors


def secret_keys_enforce() -> None:
    """Raise ImproperlyConfigured with every problem when a key check fails.

    An ordinary exception on purpose: gunicorn halts on a worker that fails to boot (exit
    status 3) but respawns one that exits, which would loop forever.
    """
    errors = secret_keys_check()
    if errors:
        text = "; ".join(f"{error.id}: {error.msg} {error.hint}" for error in errors)
        logger.critical("refusing to start: %s", text)
        raise ImproperlyConfigured(f"chatmon refuses to start: {text}")
