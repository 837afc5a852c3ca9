"""Redis unreachable (cache, throttles, login lockout and broker at once) under the real web
process: gunicorn with REDIS_URL at a closed port. Every request path still answers and stores;
the failures are counted in /metrics; a publish is tried once per breaker window, not once (with
retries) per request; and when Redis is back the sweeper enqueues the judge work."""

import re
import secrets

import httpx
import pytest
import redis
from django.contrib.auth import get_user_model
from django.db import connection

from apps.conversations.models import Turn
from apps.evaluations.services import judge_sweep
from apps.feedback.models import Feedback
from bench._server import Gunicorn, free_port
from tests.factories import make_api_key, make_chatbot
from tests.otel.conftest import chat_span, json_body, recording_tracer
from tests.support.tcp_proxy import closed_port

pytestmark = pytest.mark.services

SHOP = "https://shop.example"
SAMPLED_INGESTS = 8


def _turn(i: int) -> dict:
    return {"conversation_id": f"c{i % 3}", "turn_id": f"t{i}", "user_message": f"question {i}",
            "bot_response": f"answer {i}", "tokens": {"prompt": 10, "completion": 5}, "cost_usd": "0.001"}


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def _gunicorn_env(redis_url: str) -> dict[str, str]:
    import os

    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatmon.settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",  # plain HTTP to 127.0.0.1
        "STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",
        "JUDGE_BACKEND": "heuristic",
        # One breaker window covers the whole test, so "≤ 1 publish attempt per window" is exact.
        "REDIS_CIRCUIT_BREAKER_SECONDS": "600",
        "LOG_LEVEL": "WARNING",
    }


def test_redis_unreachable_every_request_path_answers_and_stores_then_the_sweeper_catches_up(
    postgres, redis_url, settings
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]  # what gunicorn checks
    chatbot = make_chatbot(judge_sample_rate=1.0, allowed_origins=[SHOP])
    _, raw = make_api_key(chatbot)
    get_user_model().objects.create_superuser("root", "root@example.com", "a long admin password")
    bot = {"Authorization": f"Bearer {raw}"}
    port = free_port()

    with Gunicorn(_gunicorn_env(f"redis://127.0.0.1:{closed_port()}/0"), port=port, workers=1), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        # 1. Ingest, single and batch (each one sampled for the judge: each would publish).
        single = [client.post("/api/v1/ingest/turns", json=_turn(i), headers=bot) for i in range(SAMPLED_INGESTS)]
        assert [r.status_code for r in single] == [201] * SAMPLED_INGESTS, single[0].text
        batch = client.post("/api/v1/ingest/turns", json={"turns": [_turn(100), _turn(101)]}, headers=bot)
        assert batch.status_code == 207 and [r["status"] for r in batch.json()["results"]] == [201, 201], batch.text

        # 2. An OTLP/HTTP export (JSON) of one chat span.
        with recording_tracer() as (tracer, memory):
            chat_span(tracer, conversation="conv-otel-redis-down")
        otlp = client.post("/v1/traces", content=json_body(memory.get_finished_spans()),
                           headers={**bot, "Content-Type": "application/json"})
        assert otlp.status_code == 200, otlp.text

        # 3. A public feedback vote (per-IP and per-token throttles in the cache).
        vote = client.post("/api/v1/feedback", json={"token": single[0].json()["feedback_token"], "rating": "down"},
                           headers={"Origin": SHOP})
        assert vote.status_code == 201, vote.text

        # 4. Admin login (django-axes' cache handler): a wrong password is a form error, the right one logs in.
        client.get("/admin/login/")
        form = {"username": "root", "next": "/admin/", "csrfmiddlewaretoken": client.cookies["csrftoken"]}
        wrong = client.post("/admin/login/?next=/admin/", data={**form, "password": "wrong"})
        assert wrong.status_code == 200 and "correct username and password" in wrong.text
        right = client.post("/admin/login/?next=/admin/", data={**form, "password": "a long admin password"})
        assert right.status_code == 302 and right.headers["location"] == "/admin/", right.text
        assert client.get("/admin/").status_code == 200

        # 5. /metrics: the failures are counted; the dead broker was tried once in this window,
        # every later publish was skipped instead of waiting (and retrying) on it.
        metrics = client.get("/metrics").text
        assert _metric(metrics, "chatmon_redis_failures_total", kind="cache") >= 1
        assert _metric(metrics, "chatmon_redis_failures_total", kind="broker") == 1
        assert _metric(metrics, "chatmon_enqueue_total", result="failed") == 1
        assert _metric(metrics, "chatmon_enqueue_total", result="sent") == 0
        assert _metric(metrics, "chatmon_enqueue_total", result="skipped") >= SAMPLED_INGESTS + 2 - 1

    pending = Turn.objects.filter(chatbot=chatbot, judge_status="pending")
    assert pending.count() == SAMPLED_INGESTS + 2 + 1  # single + batch + the OTLP span's turn
    assert Feedback.objects.filter(turn__chatbot=chatbot, rating="down").count() == 1

    # 6. Redis is back (the real one): the sweeper enqueues every turn whose enqueue was skipped.
    from tests.evaluations.conftest import celery_broker

    client = redis.Redis.from_url(redis_url)
    client.delete("judge")
    with celery_broker(redis_url):
        assert judge_sweep(older_than_minutes=0) == pending.count()
    assert client.llen("judge") == pending.count()
    client.delete("judge")
