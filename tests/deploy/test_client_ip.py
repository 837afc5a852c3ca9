"""The client IP behind the rate limits cannot be chosen by the client with the default settings.

TRUSTED_PROXY_COUNT defaults to 0 (clients connect to gunicorn directly): X-Forwarded-For is
ignored. Behind the shipped nginx it is 1, and nginx replaces the header (tests/deploy/test_nginx.py).
"""

import json
import secrets

import pytest
from django.conf import settings as django_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def ip_limit_of_three(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "feedback_ip": "3/min"},
    }


def _post(client, **headers) -> int:
    body = json.dumps({"token": secrets.token_urlsafe(16), "rating": "up"})
    return client.post("/api/v1/feedback", body, content_type="application/json", **headers).status_code


def test_default_trusts_no_proxy():
    assert django_settings.REST_FRAMEWORK["NUM_PROXIES"] == 0


def test_random_x_forwarded_for_does_not_dodge_the_feedback_limit(client, ip_limit_of_three):
    statuses = [_post(client, HTTP_X_FORWARDED_FOR=f"203.0.113.{index}") for index in range(1, 6)]
    assert statuses[3:] == [429, 429], statuses


def test_behind_one_proxy_the_last_address_counts(client, settings, ip_limit_of_three):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # nginx sends exactly one address (the peer it saw): different peers are different clients.
    assert [_post(client, HTTP_X_FORWARDED_FOR=f"203.0.113.{index}") for index in range(1, 6)].count(429) == 0
    assert [_post(client, HTTP_X_FORWARDED_FOR="198.51.100.7") for _ in range(4)][-1] == 429
