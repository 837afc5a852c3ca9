"""Judge pipeline throughput through real Celery workers, Redis and PostgreSQL.

A local OpenAI-compatible server answers every judge call after 250 ms (chat_delay). N turns
are ingested through the ingest service (sample rate 1, so every turn is judged); the
after-commit hook enqueues them on the `judge` queue; real worker processes judge them.

Printed figures:
- judgments/s end to end: N / (last judgment done − ingest start)
- judgments/s steady state: between 10 % and 90 % of the judgments done
- chatmon overhead per judgment, two ways:
  * worker CPU ms per judgment (user + system time of the worker processes / N);
  * in-process, serially, against a server answering at once: wall time per judgment minus
    the time spent inside the HTTP call (database, prompt building, parsing, bookkeeping).

Usage (PostgreSQL and Redis required; create the database once, the script migrates it and
deletes its bench chatbots at the end):

    createdb -h 127.0.0.1 -U postgres chatmon_bench_judge

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatmon_bench_judge \\
    REDIS_URL=redis://127.0.0.1:6379/5 \\
    .venv/bin/python bench/judge.py --turns 2000 --workers 2 --concurrency 16 --pool threads
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
os.environ.setdefault("LOG_LEVEL", "WARNING")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its live descendants (prefork children)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            total += proc_cpu_seconds(current)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        stack += [int(c) for c in children]
    return total


def _serve(delay: float, conn: object) -> None:
    """The judge server in its own process, so the bench's own work never slows its answers."""
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer(chat_delay=delay) as server:
        conn.send(server.base_url)  # type: ignore[attr-defined]
        conn.recv()  # type: ignore[attr-defined]  # block until told to stop


class ServerProcess:
    def __init__(self, delay: float) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(delay, child), daemon=True)

    def __enter__(self) -> str:
        self._process.start()
        return self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="-c per worker process")
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "gevent", "eventlet"])
    parser.add_argument("--prefetch", type=int, default=4, help="worker_prefetch_multiplier")
    parser.add_argument("--delay", type=float, default=0.25, help="judge server answer delay, seconds")
    parser.add_argument("--batch", type=int, default=500, help="turns per ingest batch")
    parser.add_argument("--serial", type=int, default=200, help="turns for the in-process overhead run")
    args = parser.parse_args()

    if not os.environ.get("REDIS_URL") or not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("set DATABASE_URL (PostgreSQL) and REDIS_URL")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db.models import Max, Min

    call_command("migrate", verbosity=0)

    from apps.chatbots.models import Chatbot
    from apps.conversations.models import LLMCall
    from apps.evaluations.models import Evaluation
    from apps.ingest.services import turns_ingest
    from apps.ingest.validation import parse_turn

    run_id = int(time.time())
    chatbot = Chatbot.objects.create(
        name=f"bench judge {run_id}", slug=f"bench-judge-{run_id}", judge_sample_rate=1.0, judge_model="gpt-4o-mini",
    )

    def turn_payloads(count: int, prefix: str) -> list[dict]:
        return [
            {
                "conversation_id": f"{prefix}-c{n // 5}",
                "turn_id": f"{prefix}-t{n}",
                "user_message": f"Hello, where is my order number {n}? It was due last week and I need it.",
                "bot_response": f"Your order {n} left our warehouse yesterday and should arrive within two days.",
                "latency_ms": 900,
                "model": "gpt-4o-mini",
                "tokens": {"prompt": 120, "completion": 40},
            }
            for n in range(count)
        ]

    try:
        with ServerProcess(args.delay) as base_url, tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
            env = {
                **os.environ,
                "JUDGE_BACKEND": "openai",
                "OPENAI_API_KEY": "bench-key",
                "OPENAI_BASE_URL": base_url,
                "CELERY_WORKER_PREFETCH_MULTIPLIER": str(args.prefetch),
                "LOG_LEVEL": "WARNING",
            }
            workers = [
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "chatmon", "worker", "-Q", "judge", "--pool", args.pool,
                     "-c", str(args.concurrency), "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "-n", f"bench-judge-{run_id}-{i}@%h", "--loglevel", "WARNING"],
                    cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                )
                for i in range(args.workers)
            ]
            try:
                from chatmon.celery import app

                # Wait until every worker answers a ping (startup is not part of the figure).
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    replies = app.control.ping(timeout=1.0) or []
                    if sum(1 for r in replies for name in r if name.startswith(f"bench-judge-{run_id}")) >= args.workers:
                        break
                else:
                    log.seek(0)
                    sys.exit("workers did not start:\n" + log.read()[-3000:])
                cpu_before = sum(tree_cpu_seconds(w.pid) for w in workers)

                started = time.monotonic()
                payloads = turn_payloads(args.turns, f"r{run_id}")
                for i in range(0, len(payloads), args.batch):
                    turns_ingest(chatbot=chatbot, turns=[parse_turn(p) for p in payloads[i : i + args.batch]])
                ingested = time.monotonic() - started
                evaluations = Evaluation.objects.filter(chatbot=chatbot)
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    finished = evaluations.filter(status__in=["done", "failed"]).count()
                    if finished >= args.turns:
                        break
                    time.sleep(0.1)
                elapsed = time.monotonic() - started
                cpu_used = sum(tree_cpu_seconds(w.pid) for w in workers) - cpu_before
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    try:
                        worker.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        worker.kill()

        done = evaluations.filter(status="done").count()
        failed = evaluations.filter(status="failed").count()
        window = evaluations.aggregate(first=Min("created_at"), last=Max("completed_at"))
        processing = (window["last"] - window["first"]).total_seconds()
        completions = sorted(evaluations.filter(status="done").values_list("completed_at", flat=True))
        steady = None
        if len(completions) >= 20:
            lo, hi = completions[len(completions) // 10], completions[len(completions) * 9 // 10]
            span = (hi - lo).total_seconds()
            steady = (len(completions) * 8 // 10) / span if span > 0 else None
        model_ms = LLMCall.objects.filter(chatbot=chatbot, purpose="judge").aggregate(
            lo=Min("duration_ms"), hi=Max("duration_ms")
        )
        calls_ms = sorted(LLMCall.objects.filter(chatbot=chatbot, purpose="judge").values_list("duration_ms", flat=True))
        model_ms["p50"] = calls_ms[len(calls_ms) // 2] if calls_ms else None

        # Overhead, in-process and serial, against a server that answers at once.
        from django.conf import settings

        from apps.conversations.models import Turn
        from apps.evaluations.services import turn_judge

        with ServerProcess(0.0) as base_url:
            settings.JUDGE_BACKEND = "openai"
            settings.OPENAI_API_KEY = "bench-key"
            settings.OPENAI_BASE_URL = base_url
            serial_chatbot = Chatbot.objects.create(
                name=f"bench judge serial {run_id}", slug=f"bench-judge-serial-{run_id}", judge_enabled=False,
            )
            turns_ingest(chatbot=serial_chatbot, turns=[parse_turn(p) for p in turn_payloads(args.serial, f"s{run_id}")])
            Turn.objects.filter(chatbot=serial_chatbot).update(judge_status="pending")
            serial_chatbot.judge_enabled = True
            serial_chatbot.save()
            ids = list(Turn.objects.filter(chatbot=serial_chatbot).order_by("pk").values_list("pk", flat=True))
            turn_judge(turn_id=ids[0])  # warm up: client, connection pool, price cache
            cpu0, t0 = time.process_time(), time.perf_counter()
            for turn_id in ids[1:]:
                turn_judge(turn_id=turn_id)
            serial_wall = time.perf_counter() - t0
            serial_cpu = time.process_time() - cpu0
            http_ms = sum(
                LLMCall.objects.filter(chatbot=serial_chatbot, turn_id__in=ids[1:]).values_list("duration_ms", flat=True)
            )
            serial_n = len(ids) - 1

        print(f"turns judged:            {done} done, {failed} failed of {args.turns}")
        print(f"workers:                 {args.workers} x --pool {args.pool} -c {args.concurrency} "
              f"(prefetch {args.prefetch}), judge server delay {args.delay * 1000:.0f} ms "
              f"(measured per call: min {model_ms['lo']}, median {model_ms['p50']}, max {model_ms['hi']} ms)")
        print(f"ingest of {args.turns} turns: {ingested:.2f} s (batches of {args.batch})")
        print(f"end to end:              {elapsed:.2f} s -> {done / elapsed:.1f} judgments/s (ingest start to last judgment)")
        print(f"processing window:       {processing:.2f} s -> {done / processing:.1f} judgments/s (first claim to last judgment)")
        if steady:
            print(f"steady state (10-90 %):  {steady:.1f} judgments/s")
        print(f"worker CPU per judgment: {cpu_used / max(done, 1) * 1000:.1f} ms "
              f"({cpu_used:.1f} CPU-s over {elapsed:.1f} s wall)")
        print(f"in-process serial:       {serial_wall / serial_n * 1000:.1f} ms wall per judgment, of which "
              f"{http_ms / serial_n:.1f} ms inside the HTTP call -> chatmon overhead "
              f"{(serial_wall * 1000 - http_ms) / serial_n:.1f} ms per judgment, {serial_cpu / serial_n * 1000:.1f} ms CPU "
              f"({serial_n} turns)")
    finally:
        Chatbot.objects.filter(slug__startswith="bench-judge-").filter(slug__endswith=str(run_id)).delete()


if __name__ == "__main__":
    main()
