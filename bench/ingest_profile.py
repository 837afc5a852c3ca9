"""In-process profile of the ingest path: cProfile of single-turn POSTs through the Django test
client (middleware, DRF, authentication, throttle, service, response) or of 1,000-turn batches
through `turns_ingest_batch`, on PostgreSQL with Redis as the cache.

    .venv/bin/python bench/ingest_profile.py single 400      # 400 single-turn requests
    .venv/bin/python bench/ingest_profile.py batch 4         # 4 batches of 1,000 turns
    .venv/bin/python bench/ingest_profile.py otlp 400        # 400 one-span OTLP /v1/traces exports
    .venv/bin/python bench/ingest_profile.py otlp 10 --spans 512   # 10 exports of 512 spans

Prints CPU per item (under the profiler, so inflated) and the top functions by internal and by
cumulative time; the raw profile is written to /tmp/ingest-<mode>.prof (open with pstats or
snakeviz). For a profile of gunicorn under load use py-spy:
`py-spy record -o out.svg --pid <worker pid>` while bench/ingest.py runs.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time

from _server import bench_env, database_recreate, django_setup, manage
from ingest import make_batches
from ingest_otlp import make_otlp_exports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["single", "batch", "otlp"])
    parser.add_argument("count", type=int, help="requests (single, otlp) or 1,000-turn batches (batch)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/chatmon_bench_profile")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--keep", action="store_true", help="reuse the database instead of recreating it")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--rich", action="store_true", help="batch turns with steps, hallucinated, release, rating")
    parser.add_argument("--spans", type=int, default=1, help="spans per OTLP export (otlp mode)")
    args = parser.parse_args()

    env = bench_env(args.database_url, args.redis_url)
    if not args.keep:
        database_recreate(args.database_url)
        manage(env, "migrate", "--noinput")
    django_setup(env)
    import redis
    from django.test import Client

    from apps.chatbots.models import Chatbot
    from apps.chatbots.services import api_key_create
    from apps.ingest.services import turns_ingest_batch
    from chatmon.startup import collector_freeze

    collector_freeze()  # as the web process does at start (chatmon/wsgi.py)
    redis.Redis.from_url(args.redis_url).flushdb()
    chatbot, _ = Chatbot.objects.get_or_create(slug="bench", defaults={
        "name": "Bench", "model": "gpt-4o-mini", "judge_sample_rate": 0.1, "pii_redaction_enabled": True})
    _, key = api_key_create(chatbot=chatbot, name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    tag = str(time.time_ns())

    def single(i: int) -> None:
        body = json.dumps({
            "conversation_id": f"single-{i % 500}-{i % 8}", "turn_id": f"{tag}-{i}",
            "user_message": "Where is my order? It was supposed to arrive yesterday.",
            "bot_response": "Your order shipped on Monday and should arrive tomorrow before noon.",
            "latency_ms": 850, "model": "gpt-4o-mini", "tokens": {"prompt": 420, "completion": 35}})
        response = client.post("/api/v1/ingest/turns", body, content_type="application/json")
        if response.status_code != 201:
            raise SystemExit(f"{response.status_code}: {response.content[:300]!r}")

    warm = 50 if args.spans < 50 else 2
    exports = make_otlp_exports(args.count + warm, size=args.spans) if args.mode == "otlp" else []

    def otlp(i: int) -> None:
        response = client.post("/v1/traces", exports[i], content_type="application/x-protobuf")
        if response.status_code != 200:
            raise SystemExit(f"{response.status_code}: {response.content[:300]!r}")

    profile = cProfile.Profile()
    if args.mode in ("single", "otlp"):
        send = single if args.mode == "single" else otlp
        warm = warm if args.mode == "otlp" else 50
        for i in range(warm):  # warm-up: caches, connections
            send(i)
        cpu, wall = time.process_time(), time.perf_counter()
        profile.enable()
        for i in range(warm, warm + args.count):
            send(i)
        profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{args.mode}: {args.count} requests, {cpu / args.count * 1000:.2f} CPU-ms per request under cProfile, "
              f"{wall / args.count * 1000:.2f} ms wall")
    else:
        batches = [json.loads(b)["turns"] for b in make_batches(args.count + 1, 1000, with_tokens=True, tag=tag, rich=args.rich)]
        turns_ingest_batch(chatbot=chatbot, items=batches[0])
        cpu, wall = time.process_time(), time.perf_counter()
        profile.enable()
        for batch in batches[1:]:
            turns_ingest_batch(chatbot=chatbot, items=batch)
        profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"batch: {args.count} × 1,000 turns, {cpu / args.count:.3f} CPU-s per 1,000 under cProfile "
              f"(this process only), {wall / args.count:.3f} s wall per 1,000")
    out = f"/tmp/ingest-{args.mode}.prof"
    profile.dump_stats(out)
    stats = pstats.Stats(out)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
