"""Benchmark: one full alert check over 1,000,000 turns, 10 chatbots, 50 rules (PostgreSQL).

    .venv/bin/python bench/alerts.py                  # builds the data once, then times checks
    .venv/bin/python bench/alerts.py --reset          # rebuild the database from scratch
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatmon_bench_alerts (default)

The data lives in its own database (created and migrated by this script). Turns are spread
evenly over the last 24 hours (≈ 11.6 turns/s in total, a busy deployment), with realistic
shares of errors, fallbacks, slow answers, ratings and judge scores. Rules mix every metric,
windows of 5 min to 24 h, per-chatbot and all-chatbots scopes. Rules have no channels, so the
figure is the check itself (queries and transitions), not webhook latency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _server import database_prepare  # noqa: E402 - bench/ is on sys.path when run as a script

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/chatmon_bench_alerts"
TURNS = 1_000_000
CHATBOTS = 10
RULES = 50
WINDOWS = [5, 10, 15, 60, 1440]
METRICS = [
    ("error_rate", "gt", 5), ("fallback_rate", "gt", 10), ("fallback_count", "gt", 5), ("latency_p95", "gt", 3000),
    ("slow_share", "gt", 10), ("thumbs_down_rate", "gt", 30), ("judge_average", "lt", 6),
    ("hallucination_rate", "gt", 5), ("flagged_turns", "gt", 20), ("cost_usd", "gt", 50), ("turn_volume", "lt", 1),
]




def data_generate(days: float) -> None:
    from django.db import connection
    from django.utils import timezone

    from apps.chatbots.models import Chatbot
    from apps.conversations.models import Conversation, Turn

    oldest = Turn.objects.order_by("timestamp").values_list("timestamp", flat=True).first()
    if oldest is not None and Turn.objects.count() >= TURNS:
        spread_days = (timezone.now() - oldest).total_seconds() / 86400
        if abs(spread_days - days) < 0.2 * days + 0.05:
            print(f"data: {TURNS:,} turns over {days:g} day(s) already present (use --reset to rebuild)")
            return
    # TRUNCATE, not ORM deletes: a bench database, and no per-row signals over a million rows.
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE chatbots_chatbot, conversations_conversation, conversations_turn CASCADE")
    bots = [Chatbot.objects.create(name=f"Bench bot {i}", slug=f"bench-{i}") for i in range(CHATBOTS)]
    # 1,000 conversations per chatbot; turns are spread over them round-robin.
    conversations = Conversation.objects.bulk_create(
        Conversation(chatbot=bot, external_id=f"bench-{bot.pk}-{n}") for bot in bots for n in range(1000)
    )
    first_conversation = min(c.pk for c in conversations)
    first_bot = min(b.pk for b in bots)
    now = timezone.now()
    step_ms = days * 86_400_000 / TURNS
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # g / 1000 % 10 picks the chatbot, its conversation follows; the timestamp steps back
        # evenly over 24 h. Shares: 3 % errors, 6 % fallbacks, ~8 % slower than 3 s,
        # 10 % rated (30 % of them thumbs-down), 20 % judged (4 % hallucinations), 1 % flagged.
        cursor.execute(
            """
            INSERT INTO conversations_turn (
                conversation_id, chatbot_id, external_id, sequence, timestamp, user_message, bot_response,
                latency_ms, fallback_used, has_error, error, intent, model, prompt_tokens, completion_tokens,
                tokens_estimated, cost_usd, total_tokens, total_cost_usd, risk_score, risk_level, risk_reasons,
                is_flagged, flag_reasons, thumbs_up, thumbs_down, judge_status, judge_overall,
                judge_hallucination, pii_found, metadata, created_at
            )
            SELECT
                %(conv)s + (g %% %(bots)s) * 1000 + (g / %(bots)s) %% 1000,
                %(bot)s + (g %% %(bots)s),
                NULL, g / 10000, %(now)s - (g * %(step)s * interval '1 millisecond'),
                'How do I reset my password?', 'Open Settings, then Security.',
                CASE WHEN g %% 13 = 0 THEN 3000 + (g %% 5000) ELSE 200 + (g * 7919) %% 2500 END,
                g %% 17 = 0, g %% 33 = 0, '', 'account', 'gpt-4o-mini', 120, 60, false,
                0.00012, 180, 0.00012, (g * 31) %% 100,
                CASE WHEN (g * 31) %% 100 >= 75 THEN 'critical' WHEN (g * 31) %% 100 >= 50 THEN 'high'
                     WHEN (g * 31) %% 100 >= 25 THEN 'medium' ELSE 'low' END,
                '[]'::jsonb, g %% 100 = 0, '[]'::jsonb,
                CASE WHEN g %% 10 = 1 AND g %% 30 <> 1 THEN 1 ELSE 0 END,
                CASE WHEN g %% 30 = 1 THEN 1 ELSE 0 END,
                CASE WHEN g %% 5 = 0 THEN 'done' ELSE '' END,
                CASE WHEN g %% 5 = 0 THEN (g %% 11)::float ELSE NULL END,
                CASE WHEN g %% 5 = 0 THEN g %% 25 = 0 ELSE NULL END,
                '{}'::jsonb, '{}'::jsonb, %(now)s
            FROM generate_series(0::bigint, %(turns)s - 1) AS g
            """,
            {"conv": first_conversation, "bot": first_bot, "bots": CHATBOTS, "now": now, "turns": TURNS,
             "step": step_ms},
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE conversations_turn")  # what autovacuum does to a live table
    print(f"data: inserted {TURNS:,} turns over {days:g} day(s) in {time.perf_counter() - started:.1f} s")


# Proposed for conversations.Turn (owned by the conversations app): the columns the alert metrics
# read, carried in the (chatbot, timestamp) and (timestamp) indexes so checks are index-only scans.
COVERING_COLUMNS = (
    "has_error, fallback_used, latency_ms, is_flagged, thumbs_up, thumbs_down, judge_overall, "
    "judge_hallucination, total_cost_usd"
)


def covering_indexes(create: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if create:
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS bench_turn_chatbot_time_alerts ON conversations_turn "
                f"(chatbot_id, timestamp) INCLUDE ({COVERING_COLUMNS})"
            )
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS bench_turn_time_alerts ON conversations_turn "
                f"(timestamp) INCLUDE ({COVERING_COLUMNS})"
            )
            cursor.execute("VACUUM ANALYZE conversations_turn")
        else:
            cursor.execute("DROP INDEX IF EXISTS bench_turn_chatbot_time_alerts")
            cursor.execute("DROP INDEX IF EXISTS bench_turn_time_alerts")


def rules_create() -> None:
    from apps.alerts.models import AlertEvent, AlertRule
    from apps.chatbots.models import Chatbot

    AlertEvent.objects.all().delete()
    AlertRule.objects.all().delete()
    bots = list(Chatbot.objects.order_by("pk"))
    rules = []
    for i in range(RULES):
        metric, comparison, threshold = METRICS[i % len(METRICS)]
        # Every 10th rule watches all chatbots together (the heaviest scans).
        chatbot = None if i % 10 == 9 else bots[i % len(bots)]
        rules.append(AlertRule(
            name=f"bench {i} {metric}", chatbot=chatbot, metric=metric, comparison=comparison,
            threshold=threshold, window_minutes=WINDOWS[i % len(WINDOWS)], min_samples=10,
        ))
    AlertRule.objects.bulk_create(rules)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reset", action="store_true", help="drop and rebuild the benchmark database")
    parser.add_argument("--repeat", type=int, default=5, help="timed full checks (default 5)")
    parser.add_argument("--days", type=float, default=1.0, help="spread the turns over this many days (default 1)")
    parser.add_argument("--covering-indexes", action="store_true",
                        help="add the proposed covering indexes on Turn (dropped again without this flag)")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    database_prepare(url, args.reset)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
    os.environ.pop("REDIS_URL", None)  # no broker: nothing to send anyway (rules have no channels)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from apps.alerts.models import AlertRule
    from apps.alerts.rules import alert_rules_check
    from apps.alerts.selectors import rule_metric_compute

    call_command("migrate", verbosity=0)
    data_generate(args.days)
    covering_indexes(args.covering_indexes)
    rules_create()
    print(f"setup: {TURNS:,} turns over {args.days:g} day(s), {CHATBOTS} chatbots, {RULES} rules, "
          f"covering indexes {'on' if args.covering_indexes else 'off'}")

    alert_rules_check()  # warm-up: caches, plans, the first transitions (events opened)
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            outcomes = alert_rules_check()
        timings.append(time.perf_counter() - started)
    firing = sum(o.state == "firing" for o in outcomes)
    errors = [o for o in outcomes if o.error]
    print(f"rules: {len(outcomes)} checked, {firing} firing, {len(errors)} errors; {len(queries)} queries per check")
    print(
        f"full check: median {statistics.median(timings) * 1000:.0f} ms, "
        f"min {min(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms over {args.repeat} runs"
    )

    # The slowest individual rule queries, with the plan of the slowest.
    now = timezone.now()
    per_rule = []
    for rule in AlertRule.objects.select_related("chatbot"):
        started = time.perf_counter()
        rule_metric_compute(rule=rule, now=now)
        per_rule.append((time.perf_counter() - started, rule))
    per_rule.sort(key=lambda item: item[0], reverse=True)
    for seconds, rule in per_rule[:5]:
        scope = rule.chatbot.slug if rule.chatbot else "all"
        print(f"  {seconds * 1000:6.1f} ms  {rule.metric:<20} window {rule.window_minutes:>5} min  {scope}")
    slowest = per_rule[0][1]
    with connection.cursor() as cursor, CaptureQueriesContext(connection) as captured:
        rule_metric_compute(rule=slowest, now=now)
        sql = captured.captured_queries[-1]["sql"]
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        print("plan of the slowest rule query:")
        for (line,) in cursor.fetchall():
            print("   ", line)


if __name__ == "__main__":
    main()
