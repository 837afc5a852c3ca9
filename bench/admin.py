"""Benchmark: the admin dashboard, the review queue and the stats API over 1,000,000 turns.

    .venv/bin/python bench/admin.py                  # builds the data once, then times the pages
    .venv/bin/python bench/admin.py --reset          # rebuild the database from scratch
    .venv/bin/python bench/admin.py --repeat 9       # more timed requests per page (median, max)
    .venv/bin/python bench/admin.py --live           # without the hourly rollup (every figure from the turns)
    .venv/bin/python bench/admin.py --turns 10000000 --retention-days 1   # 10 M turns; then time purging a day
    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatmon_bench_admin (default)

The data lives in its own PostgreSQL database (created and migrated here) and is generated
with INSERT … SELECT generate_series: 5 chatbots, 200,000 conversations of 5 turns spread
evenly over the last 30 days (1,000,000 turns, ≈ 33,000 a day), 500,000 LLM calls, ~2 % of
turns flagged (≈ 20,000 flagged conversations in mixed review states), ratings, judge scores,
errors and fallbacks at realistic shares (`--turns N`: N / 5 conversations and N / 2 LLM calls, the
same shares over the same 30 days). Pages are requested through Django's test client as
a logged-in superuser and as a reviewer of one chatbot: the figures include URL routing,
middleware, the admin, template rendering and every query, but no network or WSGI server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _server import database_prepare  # noqa: E402 - bench/ is on sys.path when run as a script

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/chatmon_bench_admin"
TURNS = 1_000_000  # default; --turns sets another size
TURNS_PER_CONVERSATION = 5
CHATBOTS = 5
DAYS = 30




def _insert(cursor, table: str, columns: dict[str, str], source: str, params: list) -> None:
    """INSERT INTO table (...) SELECT <expressions> <source>, filling any other NOT NULL column
    without a database default with a neutral value, so new model fields do not break the bench."""
    cursor.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL""",
        [table],
    )
    neutral = {"integer": "0", "bigint": "0", "smallint": "0", "numeric": "0", "boolean": "false",
               "jsonb": "'{}'::jsonb", "double precision": "0", "timestamp with time zone": "now()"}
    filled = dict(columns)
    for name, data_type in cursor.fetchall():
        if name not in filled and name != "id":
            filled[name] = neutral.get(data_type, "''")
    names = ", ".join(filled)
    expressions = ", ".join(filled.values())
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {expressions} {source}", params)


def data_generate(turns: int) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.utils import timezone

    from apps.alerts.models import AlertEvent, AlertRule
    from apps.chatbots.models import Chatbot
    from apps.clustering.models import Cluster, ClusterRun
    from apps.conversations.models import Conversation, LLMCall, Turn

    User = get_user_model()
    admin_user, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    reviewer, _ = User.objects.get_or_create(username="bench-reviewer", defaults={"is_staff": True})
    reviewer.groups.add(Group.objects.get(name="Reviewer"))

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'conversations_turn'")
        estimate = cursor.fetchone()[0]
    conversations = turns // TURNS_PER_CONVERSATION
    # Within 10 %: a --retention-days run purges the oldest days (the highest ids) and keeps the rest.
    if turns * 0.9 <= estimate <= turns * 1.05 and Turn.objects.filter(pk=1).exists():
        print(f"data: ~{estimate:,} turns already present (use --reset to rebuild)")
        return

    started = time.perf_counter()
    LLMCall.objects.all().delete()
    Turn.objects.all().delete()
    Conversation.objects.all().delete()
    ClusterRun.objects.all().delete()
    AlertEvent.objects.all().delete()
    AlertRule.objects.all().delete()
    Chatbot.objects.all().delete()
    bots = [Chatbot.objects.create(name=f"Bench bot {i}", slug=f"bench-{i}") for i in range(CHATBOTS)]
    bots[0].reviewers.add(reviewer)
    first_bot = min(b.pk for b in bots)
    now = timezone.now()
    span_seconds = DAYS * 24 * 3600

    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        # Conversation g (1-based): chatbot g % 5, started evenly back over 30 days; summary filled below.
        _insert(cursor, "conversations_conversation", {
            "id": "g",
            "chatbot_id": "%s + (g %% %s)",
            "external_id": "'bench-' || g",
            "end_user_hash": "md5(g::text)",
            "channel": "(ARRAY['website','whatsapp','api'])[1 + g %% 3]",
            # Four releases, one a week back from now (conversation g is older as g grows).
            "release": f"(ARRAY['2.4','2.3','2.2','2.1'])[1 + ((g - 1) * 4) / {conversations}]",
            "started_at": "%s::timestamptz - make_interval(secs => (g::float8 / %s) * %s)",
            "last_activity_at": "%s::timestamptz - make_interval(secs => (g::float8 / %s) * %s) + interval '8 minutes'",
            "metadata": "'{}'::jsonb",
            "review_status": "(ARRAY['new','new','in_review','resolved','false_positive'])[1 + (g / 10) %% 5]",
            "review_note": "''",
            "flag_reasons": "'[]'::jsonb",
            "created_at": "%s::timestamptz",
        }, "FROM generate_series(1, %s) AS g",
            [first_bot, CHATBOTS, now, conversations, span_seconds, now, conversations, span_seconds, now, conversations])
        print(f"data: {conversations:,} conversations in {time.perf_counter() - started:.1f}s")

        # Turn g: conversation (g-1)/5+1, sequence (g-1)%5, two minutes apart. Every 50th turn is
        # risky and flagged (so every 10th conversation); errors 1 %, fallbacks 2.4 %, thumbs-down
        # 4.3 %, thumbs-up 9 %, judged 25 %.
        _insert(cursor, "conversations_turn", {
            "id": "g",
            "conversation_id": "(g - 1) / 5 + 1",
            "chatbot_id": "%s + (((g - 1) / 5 + 1) %% %s)",
            "external_id": "'t' || g",
            "sequence": "(g - 1) %% 5",
            "timestamp": "%s::timestamptz - make_interval(secs => ((((g - 1) / 5 + 1))::float8 / %s) * %s)"
                         " + make_interval(mins => 2 * ((g - 1) %% 5))",
            "user_message": "'Where is my order number ' || g || '? It has not arrived yet.'",
            "bot_response": "'Your order ' || g || ' ships tomorrow from our warehouse.'",
            "latency_ms": "200 + (g * 37) %% 3000",
            "fallback_used": "g %% 41 = 0",
            "has_error": "g %% 97 = 0",
            "error": "CASE WHEN g %% 97 = 0 THEN 'upstream timeout' ELSE '' END",
            "intent": "(ARRAY['order_status','refund','shipping','returns','billing','product_info','complaint',"
                      "'other'])[1 + (g * 7) %% 8]",
            "model": "(ARRAY['gpt-4o-mini','gpt-4o','claude-3-5-haiku'])[1 + g %% 3]",
            "release": f"(ARRAY['2.4','2.3','2.2','2.1'])[1 + (((g - 1) / 5) * 4) / {conversations}]",
            "prompt_tokens": "60 + g %% 400",
            "completion_tokens": "40 + g %% 100",
            "total_tokens": "100 + g %% 400 + g %% 100",
            "cost_usd": "(100 + g %% 400 + g %% 100) * 0.0000006",
            "total_cost_usd": "(100 + g %% 400 + g %% 100) * 0.0000006",
            "risk_score": "CASE WHEN g %% 50 = 0 THEN 70 + g %% 30 ELSE (g * 13) %% 45 END",
            "risk_level": "CASE WHEN g %% 50 = 0 THEN (CASE WHEN 70 + g %% 30 >= 75 THEN 'critical' ELSE 'high' END)"
                          " WHEN (g * 13) %% 45 >= 25 THEN 'medium' ELSE 'low' END",
            "risk_reasons": "CASE WHEN g %% 50 = 0 THEN '[{\"rule\": \"Threats\", \"points\": 70}]'::jsonb ELSE '[]'::jsonb END",
            "is_flagged": "g %% 50 = 0",
            "flag_reasons": "CASE WHEN g %% 50 = 0 THEN '[\"risk\"]'::jsonb ELSE '[]'::jsonb END",
            "thumbs_up": "CASE WHEN g %% 11 = 0 THEN 1 ELSE 0 END",
            "thumbs_down": "CASE WHEN g %% 23 = 0 THEN 1 ELSE 0 END",
            "judge_status": "CASE WHEN g %% 4 = 0 THEN 'done' ELSE '' END",
            "judge_overall": "CASE WHEN g %% 4 = 0 THEN ((g * 17) %% 101) / 10.0 END",
            "judge_hallucination": "CASE WHEN g %% 4 = 0 THEN g %% 31 = 0 END",
            "pii_found": "'{}'::jsonb",
            "metadata": "'{}'::jsonb",
            "created_at": "%s::timestamptz",
        }, "FROM generate_series(1, %s) AS g", [first_bot, CHATBOTS, now, conversations, span_seconds, now, turns])
        print(f"data: {turns:,} turns in {time.perf_counter() - started:.1f}s")

        # One LLM call for every other turn, at the turn's time: two models, three functions.
        _insert(cursor, "conversations_llmcall", {
            "chatbot_id": "t.chatbot_id",
            "conversation_id": "t.conversation_id",
            "turn_id": "t.id",
            "purpose": "'bot'",
            "function_name": "(ARRAY['answer','classify','rewrite'])[1 + t.id %% 3]",
            "provider": "'openai'",
            "model": "(ARRAY['gpt-4o-mini','gpt-4o'])[1 + t.id %% 2]",
            "input_tokens": "t.prompt_tokens",
            "output_tokens": "t.completion_tokens",
            "cost_usd": "t.cost_usd",
            "duration_ms": "t.latency_ms - 50",
            "input_text": "''",
            "output_text": "''",
            "success": "t.id %% 113 <> 0",
            "error": "''",
            "timestamp": "t.timestamp",
            "metadata": "'{}'::jsonb",
            "created_at": "t.created_at",
        }, "FROM conversations_turn t WHERE t.id %% 2 = 0", [])
        print(f"data: LLM calls in {time.perf_counter() - started:.1f}s")

        cursor.execute("""
            UPDATE conversations_conversation c SET
                turn_count = a.turns, total_tokens = a.tokens, cost_usd = a.cost, error_count = a.errors,
                fallback_count = a.fallbacks, thumbs_up = a.up, thumbs_down = a.down, max_risk_score = a.max_risk,
                min_judge_score = a.min_judge, is_flagged = a.flagged,
                flag_reasons = CASE WHEN a.flagged THEN '["risk"]'::jsonb ELSE '[]'::jsonb END,
                flagged_at = CASE WHEN a.flagged THEN c.started_at END,
                review_status = CASE WHEN a.flagged THEN c.review_status ELSE 'new' END
            FROM (SELECT conversation_id, count(*) AS turns, sum(total_tokens) AS tokens, sum(total_cost_usd) AS cost,
                         count(*) FILTER (WHERE has_error) AS errors, count(*) FILTER (WHERE fallback_used) AS fallbacks,
                         sum(thumbs_up) AS up, sum(thumbs_down) AS down, max(risk_score) AS max_risk,
                         min(judge_overall) AS min_judge, bool_or(is_flagged) AS flagged
                  FROM conversations_turn GROUP BY conversation_id) a
            WHERE a.conversation_id = c.id
        """)
        # The latest turn's signals (engagement drop-off), as apps/conversations/services.py keeps them.
        cursor.execute("""
            UPDATE conversations_conversation c SET
                last_turn_at = l.at, last_turn_fallback = l.fallback, last_turn_error = l.error,
                last_turn_thumbs_down = l.down
            FROM (SELECT t.conversation_id, t.timestamp AS at, bool_or(t.fallback_used) AS fallback,
                         bool_or(t.has_error) AS error, bool_or(t.thumbs_down > 0) AS down
                  FROM conversations_turn t
                  JOIN (SELECT conversation_id, max(timestamp) AS latest FROM conversations_turn GROUP BY 1) x
                    ON x.conversation_id = t.conversation_id AND t.timestamp = x.latest
                  GROUP BY 1, 2) l
            WHERE l.conversation_id = c.id
        """)
        for table in ("conversations_conversation", "conversations_turn", "conversations_llmcall"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        print(f"data: conversation summaries in {time.perf_counter() - started:.1f}s")

    for bot in bots:
        run = ClusterRun.objects.create(chatbot=bot, status="done", window_start=now, window_end=now, backend="tfidf",
                                        finished_at=now)
        Cluster.objects.bulk_create(
            Cluster(run=run, index=i, label=f"{bot.slug} complaint {i}", size=100 - i * 7, share=(100 - i * 7) / 1000,
                    keywords=["late", "refund"], avg_judge_score=3.5) for i in range(12)
        )
        rule = AlertRule.objects.create(name=f"{bot.slug} errors", chatbot=bot, metric="error_rate", threshold=0.01)
        AlertEvent.objects.create(rule=rule, chatbot=bot, status="firing", metric="error_rate", value=0.02,
                                  threshold=0.01, started_at=now)
    with connection.cursor() as cursor:
        # Fresh statistics and visibility map, as autovacuum would give a long-running deployment.
        cursor.execute("VACUUM ANALYZE")
    print(f"data: ready in {time.perf_counter() - started:.1f}s")


def rollup_refresh(live: bool, turns: int) -> None:
    """Bring the hourly rollup up to date, as beat does every minute, and time it: the first run
    sums the whole history; then a steady-state run after a minute's worth of changes (judge
    scores on 2,400 recent turns, votes on 600 turns spread over the month)."""
    from django.db import connection
    from django.utils import timezone

    from apps.conversations.models import Turn
    from apps.review.models import HourlyStatsState
    from apps.review.rollup import hourly_stats_refresh

    if live:
        HourlyStatsState.objects.update(materialized_until=None)
        print("rollup: off (--live): every figure grouped from the turns")
        return
    started = time.perf_counter()
    while (result := hourly_stats_refresh())["materialized_until"] < timezone.now().replace(minute=0, second=0, microsecond=0):
        pass
    print(f"rollup: refresh summed {result['hours']:,} hours in {time.perf_counter() - started:.2f}s")
    recent = list(Turn.objects.filter(timestamp__gte=timezone.now() - timedelta(hours=2)).values_list("pk", flat=True)[:2400])
    spread = list(Turn.objects.filter(pk__in=range(1, turns, turns // 600)).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        for pk in recent:
            cursor.execute("UPDATE conversations_turn SET judge_overall = 7.5 WHERE id = %s", [pk])
        for pk in spread:
            cursor.execute("UPDATE conversations_turn SET thumbs_up = thumbs_up + 1 WHERE id = %s", [pk])
    started = time.perf_counter()
    result = hourly_stats_refresh()
    print(f"rollup: steady-state refresh after {len(recent) + len(spread):,} turn updates: {result['stale_marks']:,} "
          f"stale marks, {result['hours']:,} hours re-summed in {time.perf_counter() - started:.2f}s")


def retention_time(days: int) -> None:
    """Time the nightly retention purge deleting the oldest `days` of the DAYS generated (every
    chatbot's retention_days set to DAYS - days): what deleting rows costs, the argument for
    monthly partitions (docs/SCALING.md). Destructive: the next run rebuilds the data."""
    from django.db import connection
    from django.utils import timezone

    from apps.chatbots.models import Chatbot
    from apps.conversations.models import Turn
    from apps.privacy.services import retention_purge

    turns_before = Turn.objects.count()
    Chatbot.objects.update(retention_days=DAYS - days)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        wal_before = cursor.fetchone()[0]
        started, cpu = time.perf_counter(), time.process_time()
        report = retention_purge(now=timezone.now())
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_before])
        wal = cursor.fetchone()[0]
    deleted = turns_before - Turn.objects.count()
    print(f"retention: purged the oldest {days} of {DAYS} days: {deleted:,} turns "
          f"({report['deleted'].get('conversations', 0):,} conversations, {sum(report['deleted'].values()):,} rows in all) "
          f"in {elapsed:.1f} s = {deleted / max(elapsed, 1e-9):,.0f} turns/s; python cpu {cpu:.1f} s; "
          f"WAL {wal / 2**20:,.0f} MiB")


def time_pages(repeat: int, only: str = "") -> list[tuple[str, str, float, float]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.conversations.models import Conversation

    User = get_user_model()
    admin_client, reviewer_client = Client(), Client()
    admin_client.force_login(User.objects.get(username="bench-admin"))
    reviewer_client.force_login(User.objects.get(username="bench-reviewer"))
    flagged = list(Conversation.objects.filter(is_flagged=True).order_by("-last_activity_at").values_list("pk", flat=True)[:501])[-1]
    bot0 = User.objects.get(username="bench-reviewer").reviewed_chatbots.get().pk

    pages = [
        ("superuser", "/admin/?range=24h"),
        ("superuser", "/admin/?range=7d"),
        ("superuser", "/admin/?range=30d"),
        ("superuser", f"/admin/?range=24h&chatbot={bot0}"),
        *[("superuser", f"/admin/?range={span}&by={by}") for span in ("24h", "30d")
          for by in ("model", "intent", "channel", "release")],
        ("superuser", "/admin/review/flaggedconversation/"),
        ("superuser", "/admin/review/flaggedconversation/?o=-3"),
        ("superuser", "/admin/review/flaggedconversation/?review_status__exact=new"),
        ("superuser", f"/admin/review/flaggedconversation/?chatbot={bot0}&risk=critical"),
        ("superuser", "/admin/review/flaggedconversation/?q=bench-1234"),
        ("superuser", "/admin/review/flaggedconversation/?q=warehouse"),  # in every turn
        ("superuser", "/admin/conversations/conversation/"),
        ("superuser", "/admin/conversations/turn/"),
        ("superuser", "/admin/conversations/llmcall/"),
        ("superuser", f"/admin/conversations/conversation/{flagged}/change/"),
        ("superuser", "/api/v1/stats/overview?hours=24"),
        ("superuser", "/api/v1/stats/overview?hours=168"),
        ("superuser", "/api/v1/stats/overview?hours=720"),
        *[("superuser", f"/api/v1/stats/overview?hours=720&breakdown={by}")
          for by in ("chatbot", "model", "intent", "channel", "release")],
        ("superuser", "/api/v1/stats/engagement?hours=24"),
        ("superuser", "/api/v1/stats/engagement?hours=720"),
        ("superuser", "/api/v1/stats/llm-calls?hours=24"),
        ("superuser", "/api/v1/stats/llm-calls?hours=720"),
        ("superuser", "/api/v1/conversations/?is_flagged=true&review_status=new"),
        ("superuser", "/api/v1/turns/"),
        ("superuser", f"/api/v1/conversations/{flagged}/"),
        ("reviewer", "/admin/?range=24h"),
        ("reviewer", "/admin/?range=30d"),
        ("reviewer", "/admin/?range=30d&by=release"),
        ("reviewer", "/admin/review/flaggedconversation/"),
        ("reviewer", "/admin/conversations/turn/"),
        ("reviewer", "/api/v1/stats/overview?hours=24"),
        ("reviewer", "/api/v1/stats/engagement?hours=720"),
    ]
    results = []
    for who, url in pages:
        if only and only not in url:
            continue
        client = admin_client if who == "superuser" else reviewer_client
        response = client.get(url)  # warm: plan cache, templates, sessions
        if response.status_code != 200:
            raise SystemExit(f"{who} {url}: HTTP {response.status_code}")
        samples, cpu = [], []
        for _ in range(repeat):
            begun, begun_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            samples.append((time.perf_counter() - begun) * 1000)
            cpu.append((time.process_time() - begun_cpu) * 1000)  # this process (Django) only, not PostgreSQL
            assert response.status_code == 200
        results.append((who, url, statistics.median(samples), max(samples)))
        print(f"{who:9} {url:70} median {statistics.median(samples):7.1f} ms   max {max(samples):7.1f} ms"
              f"   python cpu {statistics.median(cpu):6.1f} ms", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reset", action="store_true", help="drop and rebuild the benchmark database")
    parser.add_argument("--repeat", type=int, default=5, help="timed requests per page (default 5)")
    parser.add_argument("--cached", action="store_true",
                        help="time with REVIEW_STATS_CACHE_SECONDS=60 (local-memory cache) instead of live figures")
    parser.add_argument("--only", default="", help="time only URLs containing this text")
    parser.add_argument("--live", action="store_true", help="switch the hourly rollup off: group every figure from the turns")
    parser.add_argument("--turns", type=int, default=TURNS, help=f"turns to generate (default {TURNS:,})")
    parser.add_argument("--retention-days", type=int, default=0, metavar="D",
                        help="after the pages, time the retention purge of the oldest D days (destructive)")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    database_prepare(url, args.reset)
    os.environ["DATABASE_URL"] = url
    # Cold figures: the dashboard's cache of turn figures is off unless --cached.
    os.environ["REVIEW_STATS_CACHE_SECONDS"] = "60" if args.cached else "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings.test")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client's "testserver" host through ALLOWED_HOSTS
    call_command("migrate", verbosity=0)
    data_generate(args.turns)
    rollup_refresh(args.live, args.turns)
    print(f"\ntimings over {args.repeat} requests each (after one warm-up), cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}, stats cache {'on' if args.cached else 'off'}:")
    time_pages(args.repeat, args.only)
    if args.retention_days:
        retention_time(args.retention_days)


if __name__ == "__main__":
    main()
