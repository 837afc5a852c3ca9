"""Risk rules on real chat text: per-rule searches against the one-alternation prefilter (issue 22).

    .venv/bin/python bench/risk_rules.py              # ConvAI2 volunteers, default rules, 3 rounds

Scores every user/bot pair of ConvAI2 (../shared/data/convai2, human–bot chats) with the seeded
default rules (apps/risk/migrations/0002_default_rules.py, compiled without a database) both
ways, checks the verdicts are identical, and prints CPU-s per 1,000 turns for each path (best of
the rounds: the machine is shared) and how many turns matched a rule.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONVAI2 = ROOT.parent / "shared" / "data" / "convai2" / "data_volunteers.json"


def turns_load(limit: int) -> list[tuple[str, str]]:
    pairs = []
    for dialog in json.loads(CONVAI2.read_text()):
        texts = [message["text"] for message in dialog["dialog"]]
        pairs += list(zip(texts[0::2], texts[1::2], strict=False))
    return pairs[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
    os.environ.update({"DEBUG": "1", "DATABASE_URL": "", "REDIS_URL": ""})
    import django

    django.setup()
    from apps.risk.models import DetectionRule
    from apps.risk.scoring import Rules, compile_rule, risk_score

    seeded = importlib.import_module("apps.risk.migrations.0002_default_rules").RULES
    compiled = [
        compile_rule(DetectionRule(pk=index + 1, **fields)) for index, fields in enumerate(seeded)
    ]
    with_prefilter, per_rule = Rules(compiled), list(compiled)
    turns = turns_load(args.turns)

    def score_all(rules: list) -> tuple[float, list]:
        started = time.process_time()
        verdicts = [
            risk_score(
                chatbot_id=1, user_message=u, bot_response=b, model="gpt-4o-mini", rules=rules
            )
            for u, b in turns
        ]
        return time.process_time() - started, verdicts

    best = {"per-rule searches": float("inf"), "prefilter": float("inf")}
    for _ in range(args.rounds):
        slow_seconds, slow = score_all(per_rule)
        fast_seconds, fast = score_all(with_prefilter)
        if slow != fast:
            raise SystemExit("verdicts differ between the two paths")
        best["per-rule searches"] = min(best["per-rule searches"], slow_seconds)
        best["prefilter"] = min(best["prefilter"], fast_seconds)
    matched = sum(v.score > 0 for v in fast)
    print(
        f"{len(turns):,} ConvAI2 turns, {len(compiled)} default rules, {matched} turns matched a rule; verdicts identical"
    )
    for name, seconds in best.items():
        print(f"{name:>18}: {seconds * 1000 / len(turns):.4f} CPU-s per 1,000 turns")


if __name__ == "__main__":
    main()
