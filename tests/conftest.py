"""Shared fixtures. Users per access level (Healthchecks' alice/bob/charlie pattern):

- alice: superuser, sees everything
- bob: staff in the Reviewer group, assigned to `chatbot` only
- charlie: staff in the Reviewer group, assigned to nothing
"""

import json
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client

from tests.factories import make_api_key, make_chatbot
from tests.support.browser import browser_page, chromium  # noqa: F401 (real-Chromium fixtures for any test)

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
IN_CI = bool(os.environ.get("CI"))
# Server and worker processes started by tests run chatmon.settings with DEBUG off: they need a
# key that passes chatmon.E001, the same as this process's (tokens made here are checked there).
os.environ.setdefault("SECRET_KEY", settings.SECRET_KEY)


def require_shared_data(*parts: str) -> Path:
    """The path under ../shared/data, or skip with a clear reason when it is absent (never in CI)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI must run with ../shared beside the project")
        pytest.skip(f"{path} is absent (the shared data folder sits beside the project)")
    return path


def require_postgres(why: str) -> None:
    """Skip, with `why`, when the test database is not PostgreSQL; in CI (which runs on
    PostgreSQL) that is a failure instead, so such a test can never silently not run there."""
    from django.db import connection

    if connection.vendor != "postgresql":
        message = f"needs PostgreSQL for {why} (set DATABASE_URL=postgres://…)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _process_caches_reset() -> None:
    # Rolled-back test transactions send no signals, so in-process caches are reset by hand.
    from apps.chatbots.api.authentication import api_key_cache_clear, api_key_last_used_cache_clear
    from apps.core import pricing, queue, resilience
    from apps.risk.scoring import rules_invalidate

    rules_invalidate()
    pricing.prices_forget()
    api_key_last_used_cache_clear()
    api_key_cache_clear()
    queue.broker_breaker.reset()
    resilience._last_logged.clear()


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    _process_caches_reset()
    yield
    cache.clear()
    _process_caches_reset()


@pytest.fixture
def chatbot(db):
    return make_chatbot(name="Shop assistant", slug="shop", allowed_origins=["https://shop.example"])


@pytest.fixture
def other_chatbot(db):
    return make_chatbot(name="HR helper", slug="hr")


@pytest.fixture
def api_key(chatbot):
    """The raw key of `chatbot` (the ApiKey row is `api_key_row`)."""
    return make_api_key(chatbot)[1]


@pytest.fixture
def other_api_key(other_chatbot):
    return make_api_key(other_chatbot)[1]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_superuser("alice", "alice@example.com", "password")


@pytest.fixture
def bob(django_user_model, chatbot):
    user = django_user_model.objects.create_user("bob", "bob@example.com", "password", is_staff=True)
    group, _ = Group.objects.get_or_create(name="Reviewer")
    user.groups.add(group)
    chatbot.reviewers.add(user)
    return user


@pytest.fixture
def charlie(django_user_model):
    user = django_user_model.objects.create_user("charlie", "charlie@example.com", "password", is_staff=True)
    group, _ = Group.objects.get_or_create(name="Reviewer")
    user.groups.add(group)
    return user


# Each logged-in client is its own Client: sharing pytest-django's `client` would leave a test
# that asks for two of them logged in as whichever fixture ran last.
@pytest.fixture
def admin_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def charlie_client(charlie) -> Client:
    client = Client()
    client.force_login(charlie)
    return client


@pytest.fixture
def bot_client(api_key) -> Client:
    """A test client that sends `chatbot`'s API key on every request (and nothing else)."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


@pytest.fixture
def post_json(bot_client):
    """POST a JSON body to a bot endpoint as `chatbot`'s bot."""

    def post(path: str, body, **extra):
        return bot_client.post(path, json.dumps(body), content_type="application/json", **extra)

    return post
