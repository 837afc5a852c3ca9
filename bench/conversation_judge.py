"""Conversation judge throughput through real Celery workers, Redis and PostgreSQL.

A local OpenAI-compatible server (its own process) answers every conversation-judge call after
250 ms. N conversations of T turns are ingested through the ingest service with their last
activity in the past (the turn judge off, so only the conversation judge calls the server);
then one idle sweep (`conversation_judge_sweep`, as the beat schedule runs it) creates their
pending evaluations and enqueues them; real worker processes judge them.

Printed figures:
- conversations/s: N / (last evaluation done − sweep start)
- sweep seconds (selecting the idle conversations, creating the rows, enqueueing)
- worker CPU seconds per 1,000 conversations (user + system time of the worker processes)

Usage (PostgreSQL and Redis required; the script migrates the database and deletes its bench
chatbot at the end):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatmon_bench \\
    REDIS_URL=redis://127.0.0.1:6379/5 \\
    .venv/bin/python bench/conversation_judge.py --conversations 1000 --turns 6 --workers 2 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
os.environ.setdefault("LOG_LEVEL", "WARNING")

REPLY = json.dumps(
    {
        "goal_completion": 8,
        "resolution": 7,
        "user_frustration": 9,
        "policy_adherence": 10,
        "human_handoff": 10,
        "handoff_needed": False,
        "failed_turn": None,
        "reasoning": "Turn 3: the delivery date was vague.",
    }
)


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            total += proc_cpu_seconds(current)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        stack += [int(c) for c in children]
    return total


def _reply(_request: dict) -> str:
    return REPLY


def _serve(delay: float, conn: object) -> None:
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer(chat_handler=_reply, chat_delay=delay) as server:
        conn.send(server.base_url)  # type: ignore[attr-defined]
        conn.recv()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=6, help="turns per conversation")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork"])
    parser.add_argument("--delay", type=float, default=0.25)
    args = parser.parse_args()
    if not os.environ.get("REDIS_URL") or not os.environ.get("DATABASE_URL", "").startswith(
        "postgres"
    ):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL")

    import multiprocessing

    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models import Max
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from apps.chatbots.models import Chatbot
    from apps.evaluations.conversation_judge import conversation_judge_sweep
    from apps.evaluations.models import ConversationEvaluation
    from apps.ingest.services import turns_ingest
    from apps.ingest.validation import parse_turn

    run_id = int(time.time())
    chatbot = Chatbot.objects.create(
        name=f"bench conversation judge {run_id}",
        slug=f"bench-cj-{run_id}",
        judge_sample_rate=0.0,
        conversation_judge_sample_rate=1.0,
        conversation_idle_minutes=1,
        judge_model="gpt-4o-mini",
    )
    past = timezone.now() - timedelta(minutes=30)
    payloads = [
        {
            "conversation_id": f"r{run_id}-c{c}",
            "turn_id": f"r{run_id}-c{c}-t{t}",
            "timestamp": (past + timedelta(seconds=t)).isoformat(),
            "user_message": f"Hello, where is my order number {c}? It was due last week (message {t}).",
            "bot_response": f"Your order {c} left our warehouse yesterday and should arrive within two days.",
            "latency_ms": 900,
            "model": "gpt-4o-mini",
        }
        for c in range(args.conversations)
        for t in range(args.turns)
    ]
    for i in range(0, len(payloads), 600):
        turns_ingest(chatbot=chatbot, turns=[parse_turn(p) for p in payloads[i : i + 600]])

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(args.delay, child), daemon=True)
    server.start()
    base_url = parent.recv()
    try:
        with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
            env = {
                **os.environ,
                "JUDGE_BACKEND": "openai",
                "OPENAI_API_KEY": "bench-key",
                "OPENAI_BASE_URL": base_url,
                "LOG_LEVEL": "WARNING",
            }
            os.environ.update({"JUDGE_BACKEND": "openai", "OPENAI_API_KEY": "bench-key"})
            from django.conf import settings

            settings.JUDGE_BACKEND, settings.OPENAI_API_KEY = "openai", "bench-key"
            workers = [
                subprocess.Popen(
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
                        args.pool,
                        "-c",
                        str(args.concurrency),
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "-n",
                        f"bench-cj-{run_id}-{i}@%h",
                        "--loglevel",
                        "WARNING",
                    ],
                    cwd=BASE_DIR,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                for i in range(args.workers)
            ]
            try:
                from chatmon.celery import app

                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    replies = app.control.ping(timeout=1.0) or []
                    if (
                        sum(
                            1
                            for r in replies
                            for name in r
                            if name.startswith(f"bench-cj-{run_id}")
                        )
                        >= args.workers
                    ):
                        break
                else:
                    log.seek(0)
                    sys.exit("workers did not start:\n" + log.read()[-3000:])
                cpu_before = sum(tree_cpu_seconds(w.pid) for w in workers)
                started_wall = timezone.now()
                started = time.monotonic()
                swept = conversation_judge_sweep(limit=args.conversations)
                sweep_seconds = time.monotonic() - started
                rows = ConversationEvaluation.objects.filter(chatbot=chatbot)
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    if rows.filter(status__in=["done", "failed"]).count() >= args.conversations:
                        break
                    time.sleep(0.1)
                cpu = sum(tree_cpu_seconds(w.pid) for w in workers) - cpu_before
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    try:
                        worker.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        worker.kill()
        done = rows.filter(status="done").count()
        failed = rows.filter(status="failed").count()
        last = rows.aggregate(last=Max("completed_at"))["last"]
        elapsed = (last - started_wall).total_seconds() if last else float("nan")
        print(
            f"conversations: {args.conversations} × {args.turns} turns; swept {swept}; done {done}, failed {failed}"
        )
        print(
            f"workers: {args.workers} × {args.pool} -c {args.concurrency}; server delay {args.delay * 1000:.0f} ms"
        )
        print(f"sweep: {sweep_seconds:.2f} s")
        print(
            f"conversations/s: {done / elapsed:.1f}  ({elapsed:.1f} s from the sweep to the last done)"
        )
        print(
            f"worker CPU: {cpu:.1f} s = {cpu * 1000 / max(done, 1):.1f} CPU-seconds per 1,000 conversations"
        )
    finally:
        parent.send("stop")
        server.join(timeout=10)
        Chatbot.objects.filter(pk=chatbot.pk).delete()


if __name__ == "__main__":
    main()
