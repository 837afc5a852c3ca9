"""PII redaction quality and cost.

    .venv/bin/python bench/redaction.py [--corpus tests/privacy/redaction_corpus.jsonl] [--seconds 3]
    DATABASE_URL=postgres://…/chatmon_bench_privacy .venv/bin/python bench/redaction.py --ingest 20

3. With --ingest N: turns_ingest (the real service, no HTTP) of N batches of 1,000 ConvAI2
   turns with a sprinkle of PII, for a chatbot with redaction on and one with it off
   (alternating batches, so machine noise hits both alike). Migrates the database first.

1. Quality: precision and recall per kind over the labelled corpus (counts per string:
   found beyond the label are false positives, missing ones false negatives).
2. Cost: redactor throughput (MB/s, turns/s) on ConvAI2-like chat text and on the corpus.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")

from apps.privacy.redaction import redact, redaction_scores  # noqa: E402


def throughput(texts: list[str], seconds: float) -> tuple[float, float]:
    size = sum(len(t) for t in texts)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for text in texts:
            redact(text)
        done += 1
    elapsed = time.perf_counter() - started
    return done * len(texts) / elapsed, done * size / elapsed / 1e6


def chat_texts() -> list[str]:
    path = ROOT.parent / "shared" / "data" / "convai2"
    texts: list[str] = []
    for file in sorted(path.glob("*.json"))[:1]:
        data = json.loads(file.read_text())
        for dialog in data[:300]:
            for message in dialog.get("dialog", []):
                texts.append(message.get("text", ""))
    return texts or ["hi , how are you doing ? i am getting ready to do some cheetah chasing to stay in shape ."] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(ROOT / "tests" / "privacy" / "redaction_corpus.jsonl"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--ingest", type=int, default=0, help="batches of 1,000 turns per setting (needs a database)")
    args = parser.parse_args()
    if args.ingest:
        ingest_compare(args.ingest)
        return
    rows = [json.loads(line) for line in Path(args.corpus).read_text().splitlines() if line.strip()]
    positives = sum(1 for r in rows if r["expect"])
    print(f"corpus: {len(rows)} strings ({positives} with PII, {len(rows) - positives} without)")
    print(f"{'kind':8} {'labelled':>8} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}")
    for kind, c in redaction_scores(rows).items():
        print(f"{kind:8} {c['tp'] + c['fn']:8d} {c['tp']:4d} {c['fp']:4d} {c['fn']:4d} {c['precision']:9.3f} {c['recall']:7.3f}")
    for name, texts in (("chat text (ConvAI2 messages)", chat_texts()), ("corpus strings", [r["text"] for r in rows])):
        per_second, mb = throughput(texts, args.seconds)
        avg = sum(len(t) for t in texts) / len(texts)
        print(f"redactor on {name}: {per_second:,.0f} texts/s, {mb:.1f} MB/s (avg {avg:.0f} chars)")


def ingest_compare(batches: int) -> None:
    import random

    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    from apps.chatbots.models import Chatbot
    from apps.ingest.services import turns_ingest
    from apps.ingest.validation import parse_turn

    call_command("migrate", verbosity=0)
    stamp = int(time.time())
    bots = {
        on: Chatbot.objects.create(name=f"bench {on}", slug=f"bench-redact-{on}-{stamp}", pii_redaction_enabled=on,
                                   judge_enabled=False)
        for on in (True, False)
    }
    texts = chat_texts()
    pii = ["mail me at jane.doe@example.com", "my card is 4111 1111 1111 1111", "call +44 20 7946 0958",
           "order 50231 from 10.0.0.7"]
    rng = random.Random(1)
    timings: dict[bool, list[float]] = {True: [], False: []}
    now = timezone.now().isoformat()
    for b in range(batches):
        for on in (True, False):
            raw = [{"conversation_id": f"{stamp}-{b}-{i // 10}", "turn_id": str(i),
                    "user_message": texts[rng.randrange(len(texts))] + (" " + rng.choice(pii) if i % 10 == 0 else ""),
                    "bot_response": texts[rng.randrange(len(texts))], "timestamp": now,
                    "tokens": {"prompt": 20, "completion": 20}} for i in range(1000)]
            turns = [parse_turn(r) for r in raw]
            started = time.perf_counter()
            turns_ingest(chatbot=bots[on], turns=turns)
            timings[on].append(time.perf_counter() - started)
    for on in (True, False):
        total = sum(timings[on])
        print(f"turns_ingest, redaction {'on ' if on else 'off'}: {1000 * batches / total:,.0f} turns/s "
              f"({batches} batches of 1,000)")
    print(f"redaction cost: {100 * (sum(timings[True]) / sum(timings[False]) - 1):.1f}% more time per batch")


if __name__ == "__main__":
    main()
