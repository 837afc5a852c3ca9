"""A real Celery worker is SIGKILLed in the middle of a judge task: the broker redelivers the
unacknowledged task (acks late), a new worker runs it again, and exactly one Evaluation exists."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.db import connection

from apps.evaluations.models import Evaluation
from tests.evaluations.conftest import judgment
from tests.factories import make_chatbot, make_conversation, make_turn
from tests.support.openai_server import OpenAIServer, ScriptedResponse

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]


def _worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "chatmon", "worker", "-Q", "judge", "-c", "1",
         "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("WORKER_LOG", os.devnull), "a"),  # noqa: SIM115 - closed with the process
    )


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_worker_killed_mid_judgment_the_task_runs_again_and_one_evaluation_exists(postgres, redis_url):
    from apps.evaluations.tasks import turn_judge
    from tests.evaluations.conftest import celery_broker

    redis.Redis.from_url(redis_url).flushdb()
    chatbot = make_chatbot()
    turn = make_turn(make_conversation(chatbot), judge_status="pending")
    db = connection.settings_dict
    with OpenAIServer() as server:
        # The first judge request hangs (the worker dies while waiting); later ones answer.
        server.script_chat(ScriptedResponse(delay=120, content=judgment()), ScriptedResponse(content=judgment()))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatmon.settings",
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "REDIS_URL": redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_VISIBILITY_TIMEOUT": "3",  # redeliver unacknowledged tasks quickly
            "JUDGE_CLAIM_SECONDS": "2",  # the dead worker's claim runs out quickly
            "JUDGE_BACKEND": "openai", "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": server.base_url,
            "OPENAI_TIMEOUT_SECONDS": "300", "JUDGE_MAX_ATTEMPTS": "3",
        }
        first = _worker(env)
        try:
            with celery_broker(redis_url):
                turn_judge.apply_async(args=(turn.pk,))
            assert _wait(lambda: len(server.requests_to("/chat/completions")) >= 1, 60), "the worker never called the judge"
            _kill(first)  # SIGKILL, mid-request: no ack was sent
            second = _worker(env)
            try:
                assert _wait(lambda: Evaluation.objects.filter(turn=turn, status="done").exists(), 150), \
                    f"not redelivered: {list(Evaluation.objects.values('status', 'attempts', 'error'))}, {len(server.requests_to('/chat/completions'))} judge calls"
            finally:
                _kill(second)
        finally:
            _kill(first)
    assert Evaluation.objects.filter(turn=turn).count() == 1
    assert len(server.requests_to("/chat/completions")) >= 2
    turn.refresh_from_db()
    assert turn.judge_status == "done"
