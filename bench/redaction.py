"""PII redaction quality and cost.

    .venv/bin/python bench/redaction.py [--corpus tests/privacy/redaction_corpus.jsonl] [--seconds 3]
    DATABASE_URL=postgres://…/chatmon_bench_privacy .venv/bin/python bench/redaction.py --ingest 20

3. With --ingest N: turns_ingest (the real service, no HTTP) of N batches of 1,000 ConvAI2
   turns with a sprinkle of PII, for a chatbot with redaction on and one with it off
   (alternating batches, so machine noise hits both alike). Migrates the database first.

1. Quality: precision and recall per kind over the labelled corpus (counts per string:
   found beyond the label are false positives, missing ones false negatives).
2. Cost: redactor throughput (MB/s, turns/s) on ConvAI2-like chat text and on the corpus.
4. Worst case (issue 15): ms of CPU per 32 KB text (INGEST_MAX_TEXT_CHARS) for benign texts
   (chat text; the labelled corpus, dense with PII) and for adversarial texts generated from
   each pattern's structure (at least 10 per pattern: prefixes that almost match, repeated
   without a separator or with one, long digit/separator runs, near-emails, near-keys), and
   whether the worst adversarial text costs within 3× the PII-dense benign text. Skip with
   --no-adversarial.
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
    parser.add_argument("--no-adversarial", action="store_true", help="skip the worst-case section")
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
    if not args.no_adversarial:
        worst_case([r["text"] for r in rows])


TEXT_CHARS = 32_000  # settings.INGEST_MAX_TEXT_CHARS

# One valid example per pattern of apps.privacy.redaction._ALTERNATIVES (same order), and the
# characters its body repeats: the adversarial texts are built from these.
EXAMPLES = [
    ("PEM", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", " A"),
    ("BEARER", "Bearer abcdef0123456789abcdef", "a."),
    ("TOKEN sk-", "sk-proj-4fG7hJ9kL2mN5pQ8rS1tU3vW6xY0zA2bC4dE", "a-"),
    ("TOKEN AWS", "AKIAIOSFODNN7EXAMPLE", "A7"),
    ("TOKEN GitHub", "ghp_" + "a" * 36, "a_"),
    ("TOKEN Slack", "xoxb-1234567890-abcdef", "a-"),
    ("TOKEN Slack hook", "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXX", "a/"),
    ("TOKEN Google", "AIza" + "b" * 35, "b_"),
    ("TOKEN Stripe", "sk_live_" + "c" * 24, "c"),
    ("TOKEN chatmon", "cm_0123abcd_" + "d" * 43, "d-"),
    ("TOKEN JWT", "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2Q", "a."),
    ("ASSIGN", 'api_key: "hunter22hunter22"', "a "),
    ("ASSIGN [SECRET]", "password=[SECRET]", "["),
    ("EMAIL", "jane.doe@mail.example.co.uk", "a."),
    ("IBAN", "GB82 WEST 1234 5698 7654 32", "A1 "),
    ("IPV4", "192.168.100.200", "1."),
    ("IPV6", "2001:db8:85a3::8a2e:370:7334", "a:"),
    ("CARD", "4111 1111 1111 1111", "1 -"),
    ("PHONE +CC", "+44 (20) 7946-0958", "1 (-)"),
    ("PHONE national", "(555) 123-4567 and 0049 30 1234567", "1 .-"),
]
BREAKERS = ["x", "_", "1", ".", "-", "@", ":", " "]


def adversarial_texts(example: str, fill: str) -> list[str]:
    """At least 10 pathological 32 KB texts from one pattern's example and body characters."""
    def to_size(unit: str) -> str:
        return (unit * (TEXT_CHARS // max(len(unit), 1) + 1))[:TEXT_CHARS]

    texts = []
    # Prefixes that almost match (cut at 10 points), each followed by a character that breaks it.
    for i in range(1, 11):
        cut = max(1, len(example) * i // 11)
        texts.append(to_size(example[:cut] + BREAKERS[i % len(BREAKERS)]))
    texts.append(to_size(example))  # glued: every match ends where the next could start
    texts.append(to_size(example + "x"))  # each one fails its "not followed by a word" end
    texts.append(to_size(example[:-1]))
    texts.append(example[: len(example) // 2] + to_size(fill)[: TEXT_CHARS - len(example) // 2])  # one endless body
    texts.append(to_size(fill))  # long runs of the body's characters and separators
    return texts


def family_texts() -> list[tuple[str, str]]:
    """Hand-made worst cases on top of the generated ones: the issue's text and its kin."""
    return [
        ("issue 15 text", ((" 001" + "1" * 20 + "x") * 1300)[:TEXT_CHARS]),
        ("issue 15 +1", ((" +1" + "1" * 20 + "x") * 1300)[:TEXT_CHARS]),
        ("issue 15 +111", ((" +111" + "1" * 20 + "x") * 1300)[:TEXT_CHARS]),
        ("digit/space run", ("1 " * TEXT_CHARS)[:TEXT_CHARS]),
        ("digit/dot run", ("1." * TEXT_CHARS)[:TEXT_CHARS]),
        ("digit/paren run", ("(1) " * TEXT_CHARS)[:TEXT_CHARS]),
        ("near-email domain", ("a" * 64 + "@" + "b." * TEXT_CHARS)[:TEXT_CHARS]),
        ("near-email locals", ("a.%+-" * TEXT_CHARS)[: TEXT_CHARS - 1] + "@"),
        ("near-keys", ("sk-" + "a" * 19 + " AKIA" + "A" * 15 + " ") * (TEXT_CHARS // 44)),
        ("colons", ("a:" * TEXT_CHARS)[:TEXT_CHARS]),
        # The most candidates a 32 KB text can hold: a failing +CC phone every 5 characters (6,400).
        ("densest +CC candidates", ("+111 " * TEXT_CHARS)[:TEXT_CHARS]),
        ("densest IPv6 addresses", ("1::1 " * TEXT_CHARS)[:TEXT_CHARS]),  # 6,400 valid ones
    ]


def cpu_ms(text: str, *, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        redact(text)
        best = min(best, time.process_time() - started)
    return best * 1000


def benign_texts(corpus: list[str]) -> dict[str, list[str]]:
    def chunks(texts: list[str], joiner: str) -> list[str]:
        joined = joiner.join(texts)
        while len(joined) < TEXT_CHARS * 4:
            joined = joiner.join([joined, joined])
        return [joined[i * TEXT_CHARS:(i + 1) * TEXT_CHARS] for i in range(4)]

    return {"chat text": chunks(chat_texts(), " "), "PII corpus": chunks(corpus, " ")}


def worst_case(corpus: list[str]) -> None:
    import statistics

    benign = {name: statistics.median(cpu_ms(t) for t in texts) for name, texts in benign_texts(corpus).items()}
    for name, ms in benign.items():
        print(f"benign {name:22} {ms:8.2f} ms per 32 KB (median of 4 texts)")
    dense = benign["PII corpus"]
    limit = 3 * dense  # the target: adversarial within 3× the (PII-dense) benign cost
    rows = [(name, [(f"{name} #{i}", t) for i, t in enumerate(adversarial_texts(example, fill))])
            for name, example, fill in EXAMPLES]
    rows.append(("hand-made", family_texts()))
    worst, worst_name, total, started, failed = 0.0, "", 0, time.process_time(), []
    for name, texts in rows:
        costs = [(cpu_ms(t), label) for label, t in texts]
        total += len(texts)
        over = [(ms, label) for ms, label in costs if ms > limit]
        failed += over
        top = max(costs)
        print(f"adversarial {name:17} {len(texts):3d} texts: median {statistics.median(ms for ms, _ in costs):7.2f}, "
              f"max {top[0]:7.2f} ms per 32 KB ({top[0] / dense:4.2f}×)  {'FAIL' if over else 'PASS'}")
        if top[0] > worst:
            worst, worst_name = top[0], top[1]
    print(f"{total} adversarial texts in {time.process_time() - started:.1f} CPU-s (each timed best of 3)")
    print(f"worst adversarial: {worst:.2f} ms per 32 KB ({worst_name}) = {worst / dense:.2f}× the PII-dense benign text, "
          f"{worst / benign['chat text']:.1f}× plain chat text")
    for ms, label in sorted(failed, reverse=True):
        print(f"  over 3×: {label}: {ms:.2f} ms = {ms / dense:.2f}×")
    print(f"target: every adversarial text ≤ 3× the PII-dense benign text ({limit:.2f} ms): "
          f"{'PASS' if not failed else f'FAIL ({len(failed)} of {total} texts over)'}")


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
