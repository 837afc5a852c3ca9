"""Experiment throughput: a 1,000-item dataset against a local OpenAI-compatible server that
answers every call after 250 ms (the target model, the judge's rubric and the reference grader
are all served by it: three calls per item).

Runs in one process with eager tasks (the embedded mode, no broker): the run's chunks execute one
after another, each with EXPERIMENT_CONCURRENCY calls in flight. With real workers the chunks
also run side by side. The server runs in its own process so its work never slows the bench.

Printed figures: items/s end to end (run created → last result stored), this process's CPU
seconds per 1,000 items (the server's excluded), LLM calls stored.

    .venv/bin/python bench/experiments.py --items 1000 --concurrency 50 --chunk 100
    .venv/bin/python bench/experiments.py --items 1000 --pinned   # target with its own base URL

Uses a throw-away SQLite file unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
os.environ["REDIS_URL"] = ""
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("OPENAI_API_KEY", "bench-key")

RUBRIC_START = "You are a strict, fair quality reviewer"
REFERENCE_START = "You compare a chatbot's answer with a reference"


def bench_model(request: dict[str, Any]) -> str:
    messages = request.get("messages", [])
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    if system.startswith(RUBRIC_START):
        return json.dumps(
            {
                "accuracy": 8,
                "relevance": 9,
                "clarity": 8,
                "helpfulness": 8,
                "safety": 10,
                "hallucination": False,
                "reasoning": "Answers the question.",
            }
        )
    if system.startswith(REFERENCE_START):
        payload = json.loads(messages[-1]["content"])
        return json.dumps(
            {
                "correctness": 8,
                "correctness_reason": "Same facts.",
                "properties": [
                    {"property": p, "passed": True, "reason": "present"}
                    for p in payload["properties"]
                ],
            }
        )
    return f"Your order ships tomorrow; returns are free within 30 days. ({messages[-1]['content'][:40]})"


def _serve(delay: float, conn: Any) -> None:
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer(chat_handler=bench_model, chat_delay=delay) as server:
        conn.send(server.base_url)
        conn.recv()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50, help="EXPERIMENT_CONCURRENCY")
    parser.add_argument("--chunk", type=int, default=100, help="EXPERIMENT_CHUNK_SIZE")
    parser.add_argument("--delay", type=float, default=0.25, help="server answer delay, seconds")
    parser.add_argument(
        "--pinned",
        action="store_true",
        help="the target has its own base URL (the staff-set path: checked and pinned per request)",
    )
    args = parser.parse_args()

    import multiprocessing

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(args.delay, child), daemon=True)
    server.start()
    base_url = parent.recv()
    database = None
    if not os.environ.get("DATABASE_URL"):
        handle, database = tempfile.mkstemp(suffix=".sqlite3")
        os.close(handle)
        os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ["OPENAI_BASE_URL"] = base_url
    os.environ["JUDGE_BACKEND"] = "openai"
    if args.pinned:
        os.environ["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    os.environ["EXPERIMENT_CONCURRENCY"] = str(args.concurrency)
    os.environ["EXPERIMENT_CHUNK_SIZE"] = str(args.chunk)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from apps.chatbots.models import Chatbot
        from apps.conversations.choices import CallPurpose
        from apps.conversations.models import LLMCall
        from apps.datasets.experiments import experiment_run_create
        from apps.datasets.models import Dataset, ExperimentTarget
        from apps.datasets.services import dataset_items_create

        stamp = int(time.time())
        chatbot = Chatbot.objects.create(name=f"bench {stamp}", slug=f"bench-exp-{stamp}")
        dataset = Dataset.objects.create(chatbot=chatbot, name="bench", slug=f"bench-{stamp}")
        dataset_items_create(
            dataset=dataset,
            items=[
                {
                    "external_id": f"i{n}",
                    "input": f"Where is my order {n}, and can I return it?",
                    "context": [],
                    "expected_answer": "It ships tomorrow and returns are free within 30 days.",
                    "expected_properties": ["must mention the 30-day window"],
                    "tags": [],
                    "metadata": {},
                }
                for n in range(args.items)
            ],
        )
        target = ExperimentTarget.objects.create(
            name=f"bench:{stamp}",
            chatbot=chatbot,
            kind="model",
            model="bench-model",
            system_prompt="You are the shop assistant.",
            base_url=base_url if args.pinned else "",
        )
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        run = experiment_run_create(dataset=dataset, target=target)
        elapsed = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        run.refresh_from_db()
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
            cpu_after.ru_stime - cpu_before.ru_stime
        )
        calls = LLMCall.objects.filter(purpose=CallPurpose.EXPERIMENT, chatbot=chatbot).count()
        print(f"items: {run.total}  done: {run.done}  failed: {run.failed}  status: {run.status}")
        print(
            f"concurrency {args.concurrency}, chunk {args.chunk}, server delay {args.delay * 1000:.0f} ms"
        )
        print(f"end to end: {elapsed:.1f} s  →  {run.total / elapsed:.1f} items/s")
        print(
            f"CPU (this process): {cpu:.1f} s  →  {cpu / run.total * 1000:.1f} CPU-s per 1,000 items"
        )
        print(f"LLM calls stored (purpose experiment): {calls}")
    finally:
        parent.send("stop")
        server.join(timeout=10)
        if database is not None:
            os.unlink(database)


if __name__ == "__main__":
    main()
