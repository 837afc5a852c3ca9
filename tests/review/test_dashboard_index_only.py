"""The dashboard's conversation counts can be answered from indexes alone (index-only scans).

At 10,000,000 turns (bench/admin.py) counting `id` made PostgreSQL read 2,000,000 conversation
rows for the review-status counts (590 ms; 94 ms from the index) and for the conversations per
period (1.5 s over 30 days). Tiny test tables make other plans cheapest, so plain and bitmap
scans are switched off, and the table's other plain indexes are dropped inside the test's
transaction (with the statistics earlier tests leave, a one-row estimate makes an index scan
of the chatbot foreign key or of the fleet index plus a filter cost the same): this checks that the SQL the selectors produce
*can* be an index-only scan on the intended index, which is what it is on a large table.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import require_postgres


def _plan_of_the_only_query(run, *, keep: str) -> str:
    with CaptureQueriesContext(connection) as captured:
        run()
    (query,) = captured.captured_queries
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = 'conversations_conversation'::regclass AND NOT x.indisunique AND i.relname <> %s",
            [keep],
        )
        for (index,) in cursor.fetchall():  # rolled back with the test's transaction
            cursor.execute(f'DROP INDEX "{index}"')
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + query["sql"])
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_review_status_counts_read_only_the_queue_index():
    require_postgres("EXPLAIN of PostgreSQL")
    from apps.review.selectors import review_status_counts

    plan = _plan_of_the_only_query(lambda: review_status_counts(chatbot_ids=None), keep="conv_review_queue")
    assert "Index Only Scan using conv_review_queue" in plan, plan


@pytest.mark.django_db
@pytest.mark.parametrize("chatbot_ids, index", [(None, "conv_activity_flagged"), ([1], "conv_chatbot_activity_flagged")])
@pytest.mark.parametrize("interval", [None, "day"])
def test_conversation_counts_read_only_an_activity_index(chatbot_ids, index, interval):
    require_postgres("EXPLAIN of PostgreSQL")
    from apps.review.selectors import _conversation_counts

    now = timezone.now()
    plan = _plan_of_the_only_query(
        lambda: _conversation_counts(chatbot_ids, now - timedelta(days=30), now, interval),
        keep=index)
    assert f"Index Only Scan using {index}" in plan, plan
