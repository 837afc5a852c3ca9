"""Ingest throughput over HTTP: gunicorn + PostgreSQL + Redis, driven from separate processes.

    .venv/bin/python bench/ingest.py                      # defaults below
    .venv/bin/python bench/ingest.py --redaction off      # compare with PII redaction off

Prints batch turns/s (1,000-turn batches) and single-turn requests/s with p50/p99 latency, against
issue 22's targets (≥ 7,000 turns/s batched; ≥ 450 req/s single with p99 ≤ 50 ms at 16 connections,
p50 ≤ 8 ms at one), each with the CPU seconds per 1,000 items of gunicorn and of the PostgreSQL
backends serving it, and the ratio to PostgreSQL COPY (../shared/tools/copy_limit.py) in the same run.

    .venv/bin/python bench/ingest.py --threads 4          # gthread workers instead of sync
Single-turn load comes from `wrk` (Debian package) when installed, else from a Python client.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _server import (
    Gunicorn,
    bench_env,
    copy_limit_rows_per_s,
    database_recreate,
    django_setup,
    manage,
    nearest_rank,
    post_bodies,
    postgres_backend_cpu_seconds,
    threads_run,
    wrk_run,
)

WORDS = ["order", "refund", "shipping", "delivery", "account", "password", "card", "payment", "invoice", "return", "size", "colour", "discount", "warranty", "store", "hours", "contact", "support", "tracking", "label", "address", "change", "cancel"]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "?"


def _rich_fields(rng: random.Random, turn: dict) -> None:
    """The payload issue 18 adds, as a bot with tools sends it: two steps (a SQL query with its
    row count, a tool call), the bot's own hallucination check, an inline rating now and then, a
    release; scores ride on the turn (`hallucinated` is stored as a bot-reported score)."""
    order = rng.randrange(10_000, 99_999)
    turn["steps"] = [
        {"kind": "sql", "name": "orders_by_id", "input": f"SELECT status, eta FROM orders WHERE id = {order}",
         "output": "shipped", "rows": 1, "duration_ms": rng.randrange(2, 40), "success": True},
        {"kind": "tool", "name": "track_parcel", "input": json.dumps({"order": order}),
         "output": "in transit", "duration_ms": rng.randrange(50, 400), "success": rng.random() > 0.03},
    ]
    turn["hallucinated"] = rng.random() < 0.04
    turn["release"] = rng.choice(["2.3", "2.4"])
    if rng.random() < 0.1:
        turn["rating"] = rng.choice(["up", "down"])


def make_batches(count: int, size: int, *, with_tokens: bool, seed: int = 1, tag: str = "bench",
                 rich: bool = False) -> list[bytes]:
    rng = random.Random(seed)
    batches = []
    for b in range(count):
        turns = []
        for i in range(size):
            conversation = f"{tag}-{b}-{i // 10}"
            turn = {
                "conversation_id": conversation, "turn_id": f"{conversation}-{i % 10}", "user_id": f"user-{rng.randrange(5000)}",
                "channel": "website", "user_message": _sentence(rng, rng.randrange(6, 30)),
                "bot_response": _sentence(rng, rng.randrange(15, 80)), "latency_ms": rng.randrange(300, 4000),
                "fallback_used": rng.random() < 0.05, "error": rng.random() < 0.02, "intent": rng.choice(WORDS),
                "model": "gpt-4o-mini", "metadata": {"locale": "en-GB", "page": "/help"},
            }
            if with_tokens:
                turn["tokens"] = {"prompt": rng.randrange(50, 800), "completion": rng.randrange(20, 300)}
            if rich:
                _rich_fields(rng, turn)
            turns.append(turn)
        batches.append(json.dumps({"turns": turns}).encode())
    return batches


def run_batches(port: int, key: str, batches: list[bytes], clients: int) -> tuple[float, int, list[float]]:
    elapsed, durations = post_bodies(port, key, batches, clients=clients, path="/api/v1/ingest/turns",
                                     content_type="application/json", ok_status=207)
    return elapsed, len(batches), durations


WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local id = string.format("%s-%d-%d", "{tag}", math.random(1, 1000000000), counter)
  local body = '{"conversation_id": "single-' .. (counter % 500) .. '-' .. math.random(1, 8) .. '", "turn_id": "' .. id ..
    '", "user_message": "Where is my order? It was supposed to arrive yesterday.", ' ..
    '"bot_response": "Your order shipped on Monday and should arrive tomorrow before noon.", ' ..
    '"latency_ms": 850, "model": "gpt-4o-mini", "tokens": {"prompt": 420, "completion": 35}}'
  return wrk.format("POST", "/api/v1/ingest/turns", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer {key}"}, body)
end
"""


def run_single_wrk(port: int, key: str, seconds: int, connections: int) -> dict[str, float]:
    script = WRK_SCRIPT.replace("{key}", key).replace("{tag}", f"t{int(time.time())}")
    return wrk_run(script, port=port, seconds=seconds, connections=connections)


def run_single_python(port: int, key: str, seconds: int, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = 0
        while time.perf_counter() < stop:
            i += 1
            body = json.dumps({"conversation_id": f"single-{n}-{i % 20}", "turn_id": f"py-{n}-{i}-{time.time_ns()}",
                               "user_message": "Where is my order?", "bot_response": "It arrives tomorrow.",
                               "tokens": {"prompt": 420, "completion": 35}})
            started = time.perf_counter()
            conn.request("POST", "/api/v1/ingest/turns", body, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 201:
                errors[0] += 1

    elapsed = threads_run(connections, client)
    latencies.sort()
    pick = lambda q: nearest_rank(latencies, q) * 1000  # noqa: E731
    return {"requests": len(latencies), "errors": errors[0], "p50_ms": pick(0.5), "p90_ms": pick(0.9),
            "p99_ms": pick(0.99), "rps": len(latencies) / elapsed, "client": "python"}


def py_spy_start(server: Gunicorn, directory: str | None, phase: str) -> subprocess.Popen | None:
    """py-spy recording gunicorn's workers (collapsed stacks, 200 samples/s) until stopped."""
    if not directory:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    assert server.process is not None
    return subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(server.process.pid), "--subprocesses", "--rate", "200",
                             "--format", "raw", "--output", str(Path(directory) / f"{phase}.txt"), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def py_spy_stop(spy: subprocess.Popen | None) -> None:
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
        spy.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/chatmon_bench_ingest")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (> 1: gthread)")
    parser.add_argument("--worker-class", default="", help="gunicorn worker class (default: sync, or gthread with --threads)")
    parser.add_argument("--one-connection-seconds", type=int, default=5,
                        help="single turns from 1 connection for this long (p50 end to end); 0 skips")
    parser.add_argument("--py-spy", metavar="DIR", help="record gunicorn with py-spy during each phase into "
                        "DIR/batch.txt and DIR/single.txt (collapsed stacks; summarise with bench/py_spy_summary.py)")
    parser.add_argument("--copy-rows", type=int, default=100_000, help="rows for copy_limit.py (0 skips)")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batch-clients", type=int, default=3)
    parser.add_argument("--count-tokens", action="store_true", help="omit token counts so the server counts them")
    parser.add_argument("--rich", action="store_true",
                        help="turns carry two steps (sql, tool), hallucinated, a release and sometimes a rating")
    parser.add_argument("--single-seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--judge-sample-rate", type=float, default=0.1)
    parser.add_argument("--redaction", choices=["on", "off"], default="on")
    parser.add_argument("--without", choices=["text-index", "turn-triggers", "both"],
                        help="drop the trigram index on turn text and/or the dashboard rollup's turn-change "
                             "triggers after migrating, to measure what they cost ingest")
    args = parser.parse_args()

    env = bench_env(args.database_url, args.redis_url)
    database_recreate(args.database_url)
    manage(env, "migrate", "--noinput")
    django_setup(env)
    if args.without:
        from django.db import connection

        with connection.cursor() as cursor:
            if args.without in ("text-index", "both"):
                cursor.execute("DROP INDEX turn_text_trgm")
            if args.without in ("turn-triggers", "both"):
                for event in ("inserted", "updated", "deleted"):
                    cursor.execute(f"DROP TRIGGER review_turn_{event} ON conversations_turn")
    from apps.chatbots.models import Chatbot
    from apps.chatbots.services import api_key_create

    chatbot = Chatbot.objects.create(name="Bench", slug="bench", model="gpt-4o-mini",
                                     judge_sample_rate=args.judge_sample_rate,
                                     pii_redaction_enabled=args.redaction == "on")
    _, key = api_key_create(chatbot=chatbot, name="bench")
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()

    batches = make_batches(args.batches, args.batch_size, with_tokens=not args.count_tokens, rich=args.rich)
    print(f"machine: {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores; "
          f"gunicorn {args.workers} workers; PostgreSQL {args.database_url.rsplit('/', 1)[1]}; broker {args.redis_url}")
    print(f"without: {args.without or 'nothing dropped'}; judge sample rate {args.judge_sample_rate}; PII redaction {args.redaction}; "
          f"token counts {'counted by the server' if args.count_tokens else 'sent by the bot'}")
    database = args.database_url.rsplit("/", 1)[1]
    copy_rate = copy_limit_rows_per_s(args.database_url, args.copy_rows) if args.copy_rows else None

    def cpu_now(server: Gunicorn) -> tuple[float, dict[int, float]]:
        return server.cpu_seconds(), postgres_backend_cpu_seconds(database)

    def cpu_per_1000(server: Gunicorn, before: tuple[float, dict[int, float]], items: int) -> str:
        web = server.cpu_seconds() - before[0]
        after = postgres_backend_cpu_seconds(database)
        db = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after.items())
        return (f"CPU-s per 1,000: web {web / items * 1000:.3f}, PostgreSQL backends {db / items * 1000:.3f}, "
                f"together {(web + db) / items * 1000:.3f}")

    single_one = None
    print(f"gunicorn: {args.workers} workers × {args.threads} threads, class {args.worker_class or ('gthread' if args.threads > 1 else 'sync')}; "
          f"load average at start {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
    with Gunicorn(env, port=args.port, workers=args.workers, threads=args.threads, worker_class=args.worker_class) as server:
        run_batches(args.port, key, make_batches(2, args.batch_size, with_tokens=True, seed=99, tag="warmup"), 1)  # warm-up
        before = cpu_now(server)
        spy = py_spy_start(server, args.py_spy, "batch")
        elapsed, count, durations = run_batches(args.port, key, batches, args.batch_clients)
        py_spy_stop(spy)
        turns = count * args.batch_size
        durations.sort()
        rate = turns / elapsed
        print(f"batch ingest: {turns} turns in {elapsed:.2f} s = {rate:,.0f} turns/s "
              f"(target ≥ 7,000); per 1,000-turn request p50 {durations[len(durations) // 2] * 1000:.0f} ms; "
              f"{cpu_per_1000(server, before, turns)}")
        if copy_rate:
            print(f"PostgreSQL COPY of turn-shaped rows, same run (copy_limit.py): {copy_rate:,.0f} rows/s; "
                  f"batch ingest is {rate / copy_rate:.1%} of it")
        runner = run_single_wrk if shutil.which("wrk") else run_single_python
        before = cpu_now(server)
        spy = py_spy_start(server, args.py_spy, "single")
        single = runner(args.port, key, args.single_seconds, args.connections)
        py_spy_stop(spy)
        print(f"single-turn ingest ({single['client']}, {args.connections} connections, {args.single_seconds} s): "
              f"{single['rps']:,.0f} req/s (target ≥ 450), p50 {single['p50_ms']:.1f} ms, p90 {single['p90_ms']:.1f} ms, "
              f"p99 {single['p99_ms']:.1f} ms (target ≤ 50), non-2xx {single['errors']}; "
              f"{cpu_per_1000(server, before, max(1, single['requests']))}")
        if args.one_connection_seconds:
            before = cpu_now(server)
            single_one = runner(args.port, key, args.one_connection_seconds, 1)
            print(f"single-turn ingest, 1 connection ({args.one_connection_seconds} s): {single_one['rps']:,.0f} req/s, "
                  f"p50 {single_one['p50_ms']:.1f} ms (target ≤ 8), p99 {single_one['p99_ms']:.1f} ms; "
                  f"{cpu_per_1000(server, before, max(1, single_one['requests']))}")

    from apps.conversations.models import Turn

    stored = Turn.objects.filter(chatbot=chatbot).count()
    expected = turns + 2 * args.batch_size + single["requests"] + (single_one["requests"] if single_one else 0)
    in_flight = args.connections + (1 if single_one else 0)  # wrk stops with one request open per connection
    verdict = "ok" if expected <= stored <= expected + in_flight else "MISMATCH"
    print(f"stored turns: {stored} (acknowledged {expected}; up to {in_flight} more were in flight when wrk "
          f"stopped): {verdict}")


if __name__ == "__main__":
    main()
