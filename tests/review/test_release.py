"""`release` (bot or prompt version): ingested over REST (and its aliases) and OTLP, kept on the
turn and on the conversation (its latest turn's), a breakdown on the dashboard and the stats API,
and a filter of the turn list, the review queue and the staff API."""

from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from apps.conversations.models import Conversation, Turn
from apps.review.dashboard import dashboard_context
from tests.factories import make_conversation, make_turn
from tests.otel.conftest import chat_span, post_otlp, protobuf_body  # noqa: F401

pytestmark = pytest.mark.django_db


def test_rest_ingest_stores_release_on_turn_and_conversation(post_json):
    now = timezone.now()
    first = {"conversation_id": "conv-r", "turn_id": "r-1", "user_message": "hi", "bot_response": "hello",
             "release": "2.3", "timestamp": (now - timedelta(minutes=5)).isoformat()}
    response = post_json("/api/v1/ingest/turns", first)
    assert response.status_code == 201, response.content
    # The camelCase-era name of a bot version is an alias; the conversation follows its latest turn.
    second = {"conversation_id": "conv-r", "turn_id": "r-2", "user_message": "and?", "botVersion": "2.4",
              "timestamp": now.isoformat()}
    assert post_json("/api/v1/ingest/turns", second).status_code == 201
    late = {"conversation_id": "conv-r", "turn_id": "r-0", "user_message": "before", "release": "2.2",
            "timestamp": (now - timedelta(minutes=30)).isoformat()}
    assert post_json("/api/v1/ingest/turns", late).status_code == 201
    releases = dict(Turn.objects.values_list("external_id", "release"))
    assert releases == {"r-1": "2.3", "r-2": "2.4", "r-0": "2.2"}
    assert Conversation.objects.get(external_id="conv-r").release == "2.4"  # not the late, older turn's


@pytest.mark.parametrize("value", [["2.3"], "x" * 101, "2.3\x00"])
def test_a_bad_release_is_a_400(post_json, value):
    response = post_json("/api/v1/ingest/turns", {"conversation_id": "c", "user_message": "hi", "release": value})
    assert response.status_code == 400
    assert "release" in response.json()
    assert not Turn.objects.exists()


def _otlp_spans(resource: dict, extra: dict | None = None):
    provider = TracerProvider(resource=Resource.create(resource))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    chat_span(provider.get_tracer("tests"), extra=extra)
    provider.shutdown()
    return memory.get_finished_spans()


def test_otlp_release_is_the_resource_service_version(post_otlp, chatbot):  # noqa: F811
    spans = _otlp_spans({"service.name": "shop-bot", "service.version": "3.1.0"})
    assert post_otlp("/v1/traces", protobuf_body(spans)).status_code == 200
    assert Turn.objects.get().release == "3.1.0"
    assert Conversation.objects.get().release == "3.1.0"


def test_otlp_langfuse_release_wins_over_service_version(post_otlp, chatbot):  # noqa: F811
    spans = _otlp_spans({"service.name": "shop-bot", "service.version": "3.1.0"}, {"langfuse.release": "prompt-v7"})
    assert post_otlp("/v1/traces", protobuf_body(spans)).status_code == 200
    assert Turn.objects.get().release == "prompt-v7"


def _releases(chatbot):
    now = timezone.now()
    for index in range(6):
        conversation = make_conversation(chatbot, release="2.3" if index < 4 else "2.4",
                                         last_activity_at=now - timedelta(hours=index))
        make_turn(conversation, timestamp=now - timedelta(hours=index, minutes=1), release=conversation.release,
                  has_error=index in (0, 1, 4))
    make_turn(make_conversation(chatbot), timestamp=now - timedelta(minutes=3))  # no release
    return now


def test_breakdown_by_release_on_the_stats_api_and_its_links(admin_client, rf, alice, chatbot):
    _releases(chatbot)
    response = admin_client.get("/api/v1/stats/overview", {"hours": 24, "breakdown": "release"})
    assert response.status_code == 200, response.content
    rows = {row["label"]: row for row in response.json()["breakdown"]["rows"]}
    assert {label: (row["turn_volume"], row["error_rate"]) for label, row in rows.items()} == {
        "2.3": (4, 50.0), "2.4": (2, 50.0), "(none)": (1, 0.0)}
    assert admin_client.get("/api/v1/stats/overview", {"breakdown": "version"}).status_code == 400

    # The dashboard's error-rate cell of release 2.3 links to exactly those turns.
    from django.contrib.messages.storage.fallback import FallbackStorage

    request = rf.get("/admin/", {"by": "release"})
    request.user = alice
    request.session = {}
    request._messages = FallbackStorage(request)
    context = dashboard_context(request)
    row = next(r for r in context["dashboard_breakdown"]["rows"] if r["label"] == "2.3")
    url = next(c["url"] for c in row["cells"] if c["metric"] == "error_rate")
    query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    assert query["release"] == "2.3" and query["has_error__exact"] == "1"
    page = admin_client.get(urlparse(url).path, query)
    assert page.status_code == 200
    assert page.context["cl"].result_count == 2


def test_release_filters_turns_queue_and_api(admin_client, chatbot):
    _releases(chatbot)
    Conversation.objects.filter(release="2.4").update(is_flagged=True)
    queue = admin_client.get("/admin/review/flaggedconversation/", {"release": "2.4"})
    assert queue.status_code == 200 and queue.context["cl"].result_count == 2
    turns = admin_client.get("/api/v1/turns/", {"release": "2.3"})
    assert turns.status_code == 200 and len(turns.json()["results"]) == 4
    conversations = admin_client.get("/api/v1/conversations/", {"release": "2.4"})
    assert len(conversations.json()["results"]) == 2


def test_the_review_page_shows_the_release(admin_client, chatbot):
    conversation = make_conversation(chatbot, release="2.4")
    make_turn(conversation, release="2.4")
    page = admin_client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")
    assert page.status_code == 200
    assert page.content.decode().count("release 2.4") == 2  # the conversation's and its turn's
