"""Benchmark: what the conversation channel trigger (review migration 0008) costs an UPDATE of
conversations, the statement ingest's summary write runs once per batch.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatmon_bench_dash .venv/bin/python bench/conversation_trigger.py 100

Needs the database bench/admin.py builds (200,000 conversations). Times `UPDATE … WHERE id =
ANY(<N ids>)` (N from the command line, default 100) 400 times with the trigger, then with it
dropped, three rounds alternating, and prints the medians in ms; the trigger is re-created at
the end of each round.
"""

import os
import statistics
import sys
import time

import psycopg

URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chatmon_bench_admin")
SIZE = int(sys.argv[1]) if len(sys.argv) > 1 else 100
CREATE = """CREATE TRIGGER review_conversation_channel_updated AFTER UPDATE ON conversations_conversation
    REFERENCING OLD TABLE AS old_conversations NEW TABLE AS new_conversations
    FOR EACH STATEMENT EXECUTE FUNCTION review_conversation_channel_changed()"""


def run(conn: psycopg.Connection, n: int = 400) -> float:
    times = []
    for i in range(n):
        ids = list(range(1 + i * SIZE, 1 + (i + 1) * SIZE))
        begun = time.perf_counter()
        with conn.transaction():
            conn.execute("UPDATE conversations_conversation SET turn_count = turn_count WHERE id = ANY(%s)", [ids])
        times.append((time.perf_counter() - begun) * 1000)
    return statistics.median(times)


def main() -> None:
    results: dict[str, list[float]] = {"with trigger": [], "without": []}
    with psycopg.connect(URL, autocommit=True) as conn:
        for _ in range(3):
            results["with trigger"].append(run(conn))
            conn.execute("DROP TRIGGER review_conversation_channel_updated ON conversations_conversation")
            try:
                results["without"].append(run(conn))
            finally:
                conn.execute(CREATE)
    print(f"UPDATE of {SIZE} conversations, median ms per statement (3 rounds), load {os.getloadavg()[0]:.1f}:")
    for name, values in results.items():
        print(f"  {name:12} " + " / ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
