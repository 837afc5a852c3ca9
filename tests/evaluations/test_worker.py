"""The judge wiring for real: a `celery worker -Q judge` process, Redis, PostgreSQL, HTTP.

Needs REDIS_URL and a PostgreSQL test database (the worker is another process, so it must see
the committed rows of the same database). Skipped locally without them, failed in CI.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from django.db import connection

from apps.conversations.models import Turn
from apps.evaluations.models import Evaluation
from apps.evaluations.services import judge_enqueue
from tests.evaluations.conftest import celery_broker, judgment
from tests.factories import make_conversation, make_turn
from tests.support.openai_server import OpenAIServer, ScriptedResponse

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_DB = 5  # this test's own Redis database: flushed before use
WAIT_SECONDS = 90  # a bound on waiting for the worker, not a performance assertion


def _services_or_skip() -> str:
    problems = []
    if not os.environ.get("REDIS_URL"):
        problems.append("REDIS_URL is not set")
    if connection.vendor != "postgresql":
        problems.append("the test database is not PostgreSQL (set DATABASE_URL)")
    if problems:
        message = "real-worker test needs " + " and ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    parts = urlsplit(os.environ["REDIS_URL"])
    return urlunsplit((parts.scheme, parts.netloc, f"/{REDIS_DB}", "", ""))


def _test_database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{credentials}@{host}/{db['NAME']}"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_judge_through_a_real_worker_and_redis(chatbot):
    redis_url = _services_or_skip()
    redis.Redis.from_url(redis_url).flushdb()
    conversation = make_conversation(chatbot)
    turns = [make_turn(conversation, judge_status="pending") for _ in range(3)]

    with OpenAIServer() as server, tempfile.TemporaryFile("w+") as log:
        # The first call is rate limited: the retry must travel through the broker (countdown).
        server.script_chat(ScriptedResponse(status=429, headers={"Retry-After": "1"}))
        server.chat_handler = lambda _request: judgment(relevance=2, accuracy=2, helpfulness=2, clarity=2, safety=9)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatmon.settings",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "REDIS_URL": redis_url,
            "DATABASE_URL": _test_database_url(),
            "JUDGE_BACKEND": "openai",
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": server.base_url,
            "JUDGE_MODEL": "gpt-4o-mini",
            "JUDGE_RETRY_BACKOFF_SECONDS": "0.2",
            "LOG_FORMAT": "plain",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "chatmon", "worker", "-Q", "judge", "--pool", "threads",
             "-c", "4", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"judge-test-{os.getpid()}@%h", "--loglevel", "INFO"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            with celery_broker(redis_url):
                judge_enqueue(turn_ids=[t.pk for t in turns])
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline and worker.poll() is None:
                if Evaluation.objects.filter(turn__in=turns, status="done").count() == len(turns):
                    break
                time.sleep(0.2)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.seek(0)
            worker_log = log.read()

    evaluations = list(Evaluation.objects.filter(turn__in=turns).order_by("turn_id"))
    assert [e.status for e in evaluations] == ["done"] * 3, worker_log[-4000:]
    assert sorted(e.attempts for e in evaluations) == [1, 1, 2]  # one turn went through a retry
    assert "retry: Retry in" in worker_log
    assert len(server.requests_to("/chat/completions")) == 4
    for turn in Turn.objects.filter(pk__in=[t.pk for t in turns]):
        assert turn.judge_status == "done"
        assert turn.flag_reasons == ["judge"]
    assert evaluations[0].llm_call.purpose == "judge"
    conversation.refresh_from_db()
    assert conversation.is_flagged and conversation.min_judge_score is not None
