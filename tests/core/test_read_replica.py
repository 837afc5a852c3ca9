"""The read replica (apps/core/replica.py): analysis reads go to the "replica" alias, ingest and
writes never do. The test settings point "replica" at the test database itself (TEST MIRROR),
so both aliases see the same rows and the queries each connection ran tell where a read went.

Transactional tests: a mirror is its own connection, so it only sees committed rows."""

import json

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from apps.conversations.models import Turn
from apps.core.replica import replica_reads, replica_reads_active
from apps.datasets.models import Dataset, DatasetItem
from tests.factories import make_conversation, make_turn

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def replica_on(settings):
    settings.REPLICA_READS_ENABLED = True


def _queries(alias: str, call) -> list[str]:
    with CaptureQueriesContext(connections[alias]) as captured:
        call()
    return [query["sql"] for query in captured.captured_queries]


def _reads_of(sqls: list[str], table: str) -> list[str]:
    return [
        sql for sql in sqls if sql.lstrip().upper().startswith("SELECT") and f'"{table}"' in sql
    ]


@pytest.fixture
def stored_turn(chatbot):
    conversation = make_conversation(chatbot, external_id="conv-replica")
    return make_turn(conversation, user_message="Where is my parcel?")


ANALYSIS_PAGES = [
    "/admin/",
    "/api/v1/stats/overview",
    "/api/v1/stats/breakdown?by=chatbot",
    "/api/v1/turns/",
    "/api/v1/conversations/",
    "/api/v1/conversations/{conversation}/",
    "/api/v1/conversations/{conversation}/export/",
    "/admin/conversations/conversation/{conversation}/export/",
]


@pytest.mark.parametrize("path", ANALYSIS_PAGES)
def test_analysis_reads_go_to_the_replica(replica_on, admin_client, stored_turn, path):
    url = path.format(conversation=stored_turn.conversation_id)
    responses = []
    replica = _queries("replica", lambda: responses.append(admin_client.get(url)))
    assert responses[0].status_code == 200, responses[0].content[:300]
    assert _reads_of(replica, "conversations_turn") or _reads_of(
        replica, "conversations_conversation"
    ), replica


def test_dashboard_reads_nothing_from_the_replica_without_the_setting(admin_client, stored_turn):
    default = []
    replica = _queries(
        "replica", lambda: default.extend(_queries("default", lambda: admin_client.get("/admin/")))
    )
    assert replica == []
    assert _reads_of(default, "conversations_turn") or _reads_of(
        default, "conversations_conversation"
    )


def test_export_audit_row_is_written_to_the_primary(replica_on, admin_client, stored_turn):
    url = f"/api/v1/conversations/{stored_turn.conversation_id}/export/"
    default = []
    replica = _queries(
        "replica", lambda: default.extend(_queries("default", lambda: admin_client.get(url)))
    )
    assert _reads_of(replica, "conversations_turn")
    assert not [
        sql for sql in replica if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert [sql for sql in default if sql.lstrip().upper().startswith("INSERT") and "audit" in sql]


def test_streamed_dataset_export_reads_its_items_on_the_replica(replica_on, admin_client, chatbot):
    dataset = Dataset.objects.create(chatbot=chatbot, name="Shop golden", slug="shop-golden")
    posted = admin_client.post(
        f"/api/v1/datasets/{dataset.pk}/items",
        json.dumps([{"input": "Can I return shoes?"}]),
        content_type="application/json",
    )
    assert posted.status_code == 201, posted.content
    assert DatasetItem.objects.filter(dataset=dataset).count() == 1
    lines: list[bytes] = []

    def export() -> None:
        response = admin_client.get(f"/api/v1/datasets/{dataset.pk}/export/")
        lines.extend(b"".join(response.streaming_content).splitlines())

    replica = _queries("replica", export)
    assert [json.loads(line)["input"] for line in lines] == ["Can I return shoes?"]
    assert _reads_of(replica, "datasets_datasetitem"), replica


def test_ingest_never_reads_from_the_replica(replica_on, post_json, stored_turn):
    body = {
        "conversation_id": "conv-replica",
        "turn_id": "t-2",
        "user_message": "And the refund?",
        "bot_response": "Done.",
    }
    responses = []
    replica = _queries("replica", lambda: responses.append(post_json("/api/v1/ingest/turns", body)))
    replay = _queries("replica", lambda: responses.append(post_json("/api/v1/ingest/turns", body)))
    assert [response.status_code for response in responses] == [201, 200]
    assert replica == replay == []
    assert Turn.objects.filter(conversation=stored_turn.conversation).count() == 2


def test_a_review_action_post_reads_the_primary(replica_on, admin_client, stored_turn):
    url = f"/api/v1/conversations/{stored_turn.conversation_id}/review/"
    responses = []
    replica = _queries(
        "replica",
        lambda: responses.append(
            admin_client.post(
                url, json.dumps({"action": "assign_to_me"}), content_type="application/json"
            )
        ),
    )
    assert responses[0].status_code == 200, responses[0].content
    assert replica == []


def test_reads_inside_a_transaction_on_the_primary_stay_there(replica_on):
    @replica_reads
    def where() -> tuple[bool, bool]:
        outside = replica_reads_active()
        with transaction.atomic():
            inside = replica_reads_active()
        return outside, inside

    assert where() == (True, False)
    assert replica_reads_active() is False  # the flag does not leak past the view
