"""PII redaction quality and cost.

    .venv/bin/python bench/redaction.py [--corpus tests/privacy/redaction_corpus.jsonl] [--seconds 3]

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

from apps.privacy.redaction import KINDS, redact  # noqa: E402


def corpus_evaluate(rows: list[dict]) -> dict[str, dict[str, float]]:
    table = {kind: {"tp": 0, "fp": 0, "fn": 0} for kind in KINDS}
    for row in rows:
        _, found = redact(row["text"])
        for kind in KINDS:
            want, got = row["expect"].get(kind, 0), found.get(kind, 0)
            table[kind]["tp"] += min(want, got)
            table[kind]["fp"] += max(0, got - want)
            table[kind]["fn"] += max(0, want - got)
    for counts in table.values():
        tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
        counts["precision"] = tp / (tp + fp) if tp + fp else 1.0
        counts["recall"] = tp / (tp + fn) if tp + fn else 1.0
    return table


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
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.corpus).read_text().splitlines() if line.strip()]
    positives = sum(1 for r in rows if r["expect"])
    print(f"corpus: {len(rows)} strings ({positives} with PII, {len(rows) - positives} without)")
    print(f"{'kind':8} {'labelled':>8} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}")
    for kind, c in corpus_evaluate(rows).items():
        print(f"{kind:8} {c['tp'] + c['fn']:8d} {c['tp']:4d} {c['fp']:4d} {c['fn']:4d} {c['precision']:9.3f} {c['recall']:7.3f}")
    for name, texts in (("chat text (ConvAI2 messages)", chat_texts()), ("corpus strings", [r["text"] for r in rows])):
        per_second, mb = throughput(texts, args.seconds)
        avg = sum(len(t) for t in texts) / len(texts)
        print(f"redactor on {name}: {per_second:,.0f} texts/s, {mb:.1f} MB/s (avg {avg:.0f} chars)")


if __name__ == "__main__":
    main()
