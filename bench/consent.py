"""CPU cost of consent at ingest, in process (no HTTP): turns_ingest of 1,000-turn batches with
steps and LLM calls, for a full and a no_content conversation mix, and one withdrawal.

    DATABASE_URL=sqlite:////tmp/consent-bench.sqlite3 .venv/bin/python bench/consent.py --batches 3

Prints CPU-seconds per 1,000 turns (this process: the database's own CPU is not counted on
PostgreSQL; on SQLite it is in-process and counted) and per 1,000 turns withheld by a withdrawal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("REDIS_URL", "")
os.environ.setdefault("OPENAI_API_KEY", "")


def _turns(batch: int, consent: str) -> list:
    from apps.ingest.validation import parse_turn

    return [parse_turn({
        "conversation_id": f"b{batch}-c{i // 10}", "turn_id": f"t{i}", "user_id": f"user-{i // 10}",
        "user_message": f"Where is my order {i}? It was due on Monday, email me at jo{i}@example.com",
        "bot_response": "Your order ships tomorrow from our Berlin warehouse.",
        "steps": [{"kind": "sql", "input": f"SELECT * FROM orders WHERE id = {i}", "output": "1 row", "rows": 1}],
        "llm_calls": [{"call_id": f"c{i}", "input": "prompt", "output": "answer", "input_tokens": 40,
                       "output_tokens": 12}],
        **({"consent": consent} if consent else {}),
    }) for i in range(1000)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.chatbots.models import Chatbot
    from apps.ingest.services import turns_ingest
    from apps.privacy.services import end_user_consent_set

    chatbot, _ = Chatbot.objects.get_or_create(slug="bench-consent", defaults={"name": "bench", "judge_enabled": False})
    for label, consent in (("full", ""), ("no_content", "no_content")):
        spent = 0.0
        for batch in range(args.batches):
            turns = _turns(batch + (1000 if consent else 0), consent)
            started = time.process_time()
            turns_ingest(chatbot=chatbot, turns=turns)
            spent += time.process_time() - started
        print(f"ingest {label:<10} {spent / args.batches:.3f} CPU-s per 1,000 turns ({args.batches} batches)")
    started = time.process_time()
    withheld = 0
    for user in range(100):  # 100 end users × 10 turns of the first full batch
        withheld += end_user_consent_set(chatbot=chatbot, user_id=f"user-{user}", consent="no_content").withheld.get(
            "turns", 0)
    spent = time.process_time() - started
    print(f"withdrawal no_content {spent / max(withheld, 1) * 1000:.3f} CPU-s per 1,000 turns withheld "
          f"({withheld} turns, 100 requests)")


if __name__ == "__main__":
    main()
