"""The experiment wiring for real: a `celery worker -Q judge` process, Redis, PostgreSQL, HTTP.

The CI command, not eager, publishes the run's chunks and polls; the worker runs them (one call is
rate limited, so a chunk's retry travels through the broker) and the command prints the verdict.
Needs REDIS_URL and PostgreSQL (the worker is another process); skipped locally without, failed in CI.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from django.core.management import call_command

from apps.datasets.models import ExperimentItemResult, ExperimentRun
from apps.datasets.services import dataset_items_create
from tests.evaluations.conftest import celery_broker
from tests.evaluations.test_worker import _services_or_skip, _test_database_url
from tests.support.openai_server import OpenAIServer, ScriptedResponse

from .conftest import ANSWERS, shop_model

BASE_DIR = Path(__file__).resolve().parents[2]


def _own_redis_db() -> str:
    _services_or_skip()
    parts = urlsplit(os.environ["REDIS_URL"])
    return urlunsplit(
        (parts.scheme, parts.netloc, parts.path or "/0", "", "")
    )  # this session's own db number


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_run_experiment_through_a_real_worker(dataset, targets, settings):
    redis_url = _own_redis_db()
    redis.Redis.from_url(redis_url).flushdb()
    dataset_items_create(
        dataset=dataset, items=[{"input": q, "expected_answer": a} for q, a in ANSWERS.items()]
    )
    with OpenAIServer(chat_handler=shop_model) as server, tempfile.TemporaryFile("w+") as log:
        server.script_chat(ScriptedResponse(status=429, headers={"Retry-After": "1"}))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatmon.settings",
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "REDIS_URL": redis_url,
            "DATABASE_URL": _test_database_url(),
            "JUDGE_BACKEND": "openai",
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": server.base_url,
            "JUDGE_RETRY_BACKOFF_SECONDS": "0.2",
            "EXPERIMENT_CHUNK_SIZE": "2",
            "EXPERIMENT_CONCURRENCY": "2",
            "LOG_FORMAT": "plain",
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "chatmon",
                "worker",
                "-Q",
                "judge",
                "--pool",
                "threads",
                "-c",
                "2",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"experiment-test-{os.getpid()}@%h",
                "--loglevel",
                "INFO",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        out = io.StringIO()
        try:
            settings.JUDGE_BACKEND = "openai"
            settings.OPENAI_API_KEY = "test-key"
            settings.OPENAI_BASE_URL = server.base_url
            settings.EXPERIMENT_CHUNK_SIZE = 2
            with celery_broker(redis_url):
                call_command(
                    "run_experiment",
                    "--dataset",
                    dataset.slug,
                    "--target",
                    "prompt:v1",
                    "--timeout",
                    "90",
                    stdout=out,
                )
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.seek(0)
            worker_log = log.read()
    run = ExperimentRun.objects.get()
    assert (run.status, run.done, run.failed) == ("done", 4, 0), worker_log[-4000:]
    assert "PASSED" in out.getvalue()
    assert sorted(ExperimentItemResult.objects.values_list("attempts", flat=True)) == [1, 1, 1, 2]
    assert "retry: Retry in" in worker_log
    assert "experiment_chunk_run" in worker_log
