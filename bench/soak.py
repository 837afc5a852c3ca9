"""Load and soak check: replay ConvAI2 conversations against gunicorn + PostgreSQL + Redis + a
Celery worker, with feedback clicks mixed in, then verify the database holds exactly what was
accepted.

    .venv/bin/python bench/soak.py --seconds 180 --clients 4

Environment: SOAK_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/chatmon_bench_soak,
created if missing), SOAK_REDIS_URL (default redis://127.0.0.1:6379/10, flushed first).

1. Migrate the soak database; create a chatbot and an API key.
2. Start gunicorn (2 workers) and a Celery worker (all queues; heuristic judge).
3. `--clients` threads loop over the ConvAI2 dialogues: each human/bot pair is one turn
   (a fresh conversation id per replay), and every `--feedback-every`-th answer gets a
   thumbs up/down through the public feedback endpoint with its token.
4. Report requests, errors (anything not 2xx), p50/p99 latency per endpoint; then compare the
   rows in PostgreSQL with the turns and votes that were answered 2xx.
"""

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request

from _server import (  # bench/ is on sys.path when run as a script
    ROOT,
    CeleryWorker,
    Gunicorn,
    bench_env,
    database_prepare,
    django_setup,
    free_port,
    nearest_rank,
    threads_run,
)

DATA = ROOT.parent / "shared" / "data" / "convai2"
DATABASE_URL = os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chatmon_bench_soak")
REDIS_URL = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/10")


def dialogues() -> list[list[tuple[str, str]]]:
    result = []
    for file in sorted(DATA.glob("*.json")):
        for dialog in json.loads(file.read_text()):
            messages = [m["text"] for m in dialog.get("dialog", []) if m.get("text")]
            pairs = [(messages[i], messages[i + 1]) for i in range(0, len(messages) - 1, 2)]
            if pairs:
                result.append(pairs)
    return result


def request(url: str, body: dict, headers: dict[str, str]) -> tuple[int, dict, float]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **headers}, method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError:
        status, raw = 0, b""
    elapsed = time.perf_counter() - started
    try:
        return status, json.loads(raw or b"{}"), elapsed
    except ValueError:
        return status, {}, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--feedback-every", type=int, default=5)
    args = parser.parse_args()

    env = bench_env(
        DATABASE_URL, REDIS_URL, FEEDBACK_RATE_LIMIT_IP="1000000/min", FEEDBACK_RATE_LIMIT_TOKEN="1000/min",
        JUDGE_BACKEND="heuristic", OPENAI_API_KEY="",
    )
    database_prepare(DATABASE_URL, reset=False)
    django_setup(env)
    import redis
    from django.core.management import call_command

    from apps.chatbots.models import Chatbot
    from apps.chatbots.services import api_key_create
    from apps.conversations.models import Turn
    from apps.feedback.models import Feedback

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(REDIS_URL).flushdb()
    stamp = int(time.time())
    chatbot = Chatbot.objects.create(name=f"soak {stamp}", slug=f"soak-{stamp}", judge_sample_rate=0.2)
    _, raw_key = api_key_create(chatbot=chatbot, name="soak")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Gunicorn(env, port=port, workers=2), CeleryWorker(env, queues="default,judge,alerts,analysis"):
        all_dialogues = dialogues()
        lock = threading.Lock()
        stats: dict[str, list[float]] = {"ingest": [], "feedback": []}
        errors: dict[str, int] = {}
        accepted_turns: set[tuple[str, str]] = set()
        accepted_votes: set[int] = set()
        deadline = time.monotonic() + args.seconds

        def client(number: int) -> None:
            rng = random.Random(number)
            replay = 0
            headers = {"Authorization": f"Bearer {raw_key}"}
            while time.monotonic() < deadline:
                dialogue = all_dialogues[rng.randrange(len(all_dialogues))]
                conversation = f"{stamp}-{number}-{replay}"
                replay += 1
                for index, (user, bot) in enumerate(dialogue):
                    if time.monotonic() >= deadline:
                        return
                    turn_id = str(index)
                    status, body, elapsed = request(f"{base}/api/v1/ingest/turns", {
                        "conversation_id": conversation, "turn_id": turn_id, "user_id": f"user-{number}-{replay}",
                        "user_message": user, "bot_response": bot, "latency_ms": rng.randint(200, 3000),
                    }, headers)
                    with lock:
                        stats["ingest"].append(elapsed)
                        if status in (200, 201):
                            accepted_turns.add((conversation, turn_id))
                        else:
                            errors[f"ingest {status}"] = errors.get(f"ingest {status}", 0) + 1
                    if status == 201 and rng.randrange(args.feedback_every) == 0:
                        status, _, elapsed = request(f"{base}/api/v1/feedback", {
                            "token": body["feedback_token"], "rating": rng.choice(["up", "down"]),
                        }, {})
                        with lock:
                            stats["feedback"].append(elapsed)
                            if status in (200, 201):
                                accepted_votes.add(body["id"])
                            else:
                                errors[f"feedback {status}"] = errors.get(f"feedback {status}", 0) + 1

        elapsed = threads_run(args.clients, client)
        total = sum(len(v) for v in stats.values())
        print(f"soak: {elapsed:.0f} s, {args.clients} clients, {total} requests ({total / elapsed:.0f}/s), "
              f"errors: {sum(errors.values())} {errors or ''}")
        for name, values in stats.items():
            if values:
                values.sort()
                p99 = nearest_rank(values, 0.99)
                print(f"  {name}: {len(values)} requests, p50 {statistics.median(values) * 1000:.1f} ms, "
                      f"p99 {p99 * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms")
        stored_turns = set(Turn.objects.filter(chatbot=chatbot).values_list("conversation__external_id", "external_id"))
        stored_votes = set(Feedback.objects.filter(chatbot=chatbot).values_list("turn_id", flat=True))
        print(f"  database: {len(stored_turns)} turns stored / {len(accepted_turns)} accepted "
              f"({'exact' if stored_turns == accepted_turns else 'MISMATCH'}), "
              f"{len(stored_votes)} votes stored / {len(accepted_votes)} accepted "
              f"({'exact' if stored_votes == accepted_votes else 'MISMATCH'})")
        if stored_turns != accepted_turns or stored_votes != accepted_votes or errors:
            sys.exit(1)


if __name__ == "__main__":
    main()
