"""The conversation review page: every per-turn element, escaping, and the review actions."""

import json

import pytest

from apps.audit.models import AuditEvent
from apps.conversations.models import Conversation
from apps.evaluations.models import Evaluation

pytestmark = pytest.mark.django_db


def page_url(conversation) -> str:
    return f"/admin/conversations/conversation/{conversation.pk}/change/"


def test_review_page_shows_every_per_turn_element(admin_client, dataset):
    response = admin_client.get(page_url(dataset.flagged))
    assert response.status_code == 200
    html = response.content.decode()
    # Transcript as bubbles.
    assert html.count('class="cm-bubble cm-user"') == 2 and html.count('class="cm-bubble cm-bot"') == 2
    assert "Please call the helpline." in html
    # Risk score and level, matched rule.
    assert "risk 80 · critical" in html
    assert "Self-harm words (+80, critical, user)" in html
    # Judge scores and reasoning.
    assert "<strong>2.0</strong> overall" in html
    assert "hallucination" in html
    assert "Ignored the &lt;script&gt;alert(1)&lt;/script&gt; risk." in html
    # Thumbs and comment.
    assert "👎" in html and "👍" in html
    assert "&lt;img src=x onerror=alert(1)&gt; rude bot" in html
    # Latency, error, fallback, tokens and cost.
    assert "latency 100 ms" in html and "latency 200 ms" in html
    assert "Error: upstream timeout" in html
    assert "tokens 6 + 4" in html and "total 10" in html
    assert "cost $0.0100" in html
    # Expandable LLM calls with their text.
    assert html.count('<details class="cm-llm-call">') == 2
    assert "system: be nice" in html and "rate limited" in html
    # Summary and actions.
    assert 'id="conversation-summary"' in html and "Self-harm" in html
    assert 'value="assign_to_me"' in html and 'value="rerun_judge"' in html and 'id="action-export"' in html
    for status in ("in_review", "resolved", "false_positive"):
        assert f'name="status" value="{status}"' in html
    # User text is never rendered as markup.
    assert "<b>hurt</b>" not in html and "&lt;b&gt;hurt&lt;/b&gt;" in html
    assert "<img src=x" not in html and "<script>alert" not in html
    assert "review/review.js" in html


def queue_page(conversation, filters: str = "") -> str:
    from urllib.parse import quote

    url = f"/admin/review/flaggedconversation/{conversation.pk}/change/"
    return f"{url}?_changelist_filters={quote(filters)}" if filters else url


def test_keyboard_navigation_links_follow_the_open_queue(admin_client, dataset, chatbot):
    from datetime import timedelta

    from tests.factories import make_conversation

    # Open queue, newest first: newer (30 min) → conv-d (1 h) → conv-a (2 h); "closed" is skipped.
    newer = make_conversation(chatbot, external_id="newer", is_flagged=True, last_activity_at=dataset.calm.last_activity_at)
    make_conversation(chatbot, external_id="closed", is_flagged=True, review_status="resolved",
                      last_activity_at=dataset.flagged.last_activity_at + timedelta(minutes=30))
    html = admin_client.get(queue_page(dataset.flagged)).content.decode()
    assert f'data-previous-url="{queue_page(dataset.other)}"' in html
    assert 'data-next-url=""' in html
    html = admin_client.get(queue_page(dataset.other)).content.decode()
    assert f'data-previous-url="{queue_page(newer)}"' in html
    assert f'data-next-url="{queue_page(dataset.flagged)}"' in html


def test_navigation_stays_inside_the_filter_search_and_order(admin_client, dataset, chatbot, other_chatbot):
    """Filtered to one chatbot and riskiest first, j/k and "then next" never leave the list."""
    from apps.conversations.models import Conversation
    from tests.factories import make_conversation

    for risk, bot in ((95, other_chatbot), (70, chatbot), (60, other_chatbot), (10, chatbot), (75, chatbot)):
        make_conversation(bot, external_id=f"r{risk}", is_flagged=True, max_risk_score=risk)
    Conversation.objects.filter(pk=dataset.flagged.pk).update(max_risk_score=80)
    riskiest = admin_client.get("/admin/review/flaggedconversation/").context["riskiest_url"].lstrip("?")
    filters = f"chatbot={chatbot.pk}&{riskiest}"
    listed = [c.external_id for c in admin_client.get(f"/admin/review/flaggedconversation/?{filters}").context["cl"].result_list]
    assert listed == ["conv-a", "r75", "r70", "r10"]

    walked, url = [], queue_page(Conversation.objects.get(external_id="conv-a"), filters)
    while url:
        response = admin_client.get(url)
        walked.append(response.context["conversation"].external_id)
        url = response.context["next_url"]
    assert walked == listed
    # Every link keeps the filters, and the way back is the filtered list.
    response = admin_client.get(queue_page(Conversation.objects.get(external_id="r75"), filters))
    assert response.context["queue_url"] == f"/admin/review/flaggedconversation/?{filters}"
    assert "_changelist_filters=" in response.context["previous_url"]
    # Resolving "then next" goes to the next item of the filtered list, filters kept.
    r75 = Conversation.objects.get(external_id="r75")
    response = admin_client.post(queue_page(r75, filters), {"action": "set_status", "status": "resolved", "then": "next"})
    assert response["Location"] == queue_page(Conversation.objects.get(external_id="r70"), filters)
    # A turn action comes back to the same page with the filters and the turn.
    response = admin_client.post(queue_page(dataset.flagged, filters), {"action": "flag", "turn": dataset.t2.pk, "note": "x"})
    assert response["Location"] == queue_page(dataset.flagged, filters) + f"#turn-{dataset.t2.pk}"


def test_assign_to_me_and_set_status_write_audit_events(admin_client, alice, dataset):
    url = page_url(dataset.flagged)
    response = admin_client.post(url, {"action": "assign_to_me"})
    assert response.status_code == 302 and response["Location"] == url
    dataset.flagged.refresh_from_db()
    assert dataset.flagged.assignee == alice
    assert dataset.flagged.review_status == "in_review"

    response = admin_client.post(url, {"action": "set_status", "status": "false_positive", "note": "Quoted a song <lyric>"})
    assert response.status_code == 302
    dataset.flagged.refresh_from_db()
    assert dataset.flagged.review_status == "false_positive"
    assert dataset.flagged.reviewed_at is not None
    assert "Quoted a song <lyric>" in dataset.flagged.review_note

    events = list(AuditEvent.objects.filter(object_id=str(dataset.flagged.pk)).order_by("id"))
    assert [(e.action, e.actor_id) for e in events] == [("review.assign", alice.pk), ("review.status", alice.pk)]
    assert events[1].data == {"from": "in_review", "to": "false_positive", "note_chars": len("Quoted a song <lyric>")}
    assert events[1].chatbot_id == dataset.flagged.chatbot_id
    html = admin_client.get(url).content.decode()
    assert "Quoted a song &lt;lyric&gt;" in html
    assert "alice took it" in html
    assert "alice marked it false positive: <q>Quoted a song &lt;lyric&gt;</q>" in html


def test_set_status_then_next_opens_the_next_item(admin_client, dataset):
    response = admin_client.post(page_url(dataset.other), {"action": "set_status", "status": "resolved", "then": "next"})
    assert response["Location"] == page_url(dataset.flagged)


def test_bad_status_is_reported_and_changes_nothing(admin_client, dataset):
    response = admin_client.post(page_url(dataset.flagged), {"action": "set_status", "status": "deleted"}, follow=True)
    assert response.status_code == 200
    assert "Unknown review status" in response.content.decode()
    dataset.flagged.refresh_from_db()
    assert dataset.flagged.review_status == "new"
    assert not AuditEvent.objects.filter(action="review.status").exists()


def test_unknown_action_is_reported_and_changes_nothing(admin_client, dataset):
    response = admin_client.post(page_url(dataset.flagged), {"action": "explode"}, follow=True)
    assert response.status_code == 200
    assert "Unknown review action" in response.content.decode()
    dataset.flagged.refresh_from_db()
    assert (dataset.flagged.review_status, dataset.flagged.assignee_id) == ("new", None)
    assert not AuditEvent.objects.filter(action__startswith="review.").exists()


def test_rerun_judge_resets_the_evaluations(admin_client, dataset):
    response = admin_client.post(page_url(dataset.flagged), {"action": "rerun_judge"}, follow=True)
    assert response.status_code == 200
    assert "Judge queued for 2 turn(s)." in response.content.decode()
    assert AuditEvent.objects.filter(action="judge.rerun", object_id=str(dataset.flagged.pk)).exists()
    # Eager Celery in tests: the offline judge has graded both turns again.
    assert Evaluation.objects.filter(turn__conversation=dataset.flagged, created_by__isnull=False).count() >= 1


def test_export_json_is_complete_and_audited(admin_client, dataset):
    response = admin_client.get(f"/admin/conversations/conversation/{dataset.flagged.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["external_id"] == "conv-a"
    assert data["chatbot"]["slug"] == "shop"
    assert [t["sequence"] for t in data["turns"]] == [1, 2]
    assert data["turns"][0]["evaluations"][0]["overall"] == 2.0
    assert data["turns"][0]["feedback"][0]["comment"].endswith("rude bot")
    assert data["turns"][1]["llm_calls"][0]["error"] == "rate limited"
    assert AuditEvent.objects.filter(action="review.export", object_id=str(dataset.flagged.pk)).count() == 1


def test_bulk_actions_on_the_queue(admin_client, alice, dataset):
    queue = "/admin/review/flaggedconversation/"
    selected = [dataset.flagged.pk, dataset.other.pk]
    response = admin_client.post(queue, {"action": "assign_to_me", "_selected_action": selected})
    assert response.status_code == 302
    assert set(Conversation.objects.filter(pk__in=selected).values_list("assignee_id", flat=True)) == {alice.pk}
    response = admin_client.post(queue, {"action": "mark_resolved", "_selected_action": selected})
    assert response.status_code == 302
    assert set(Conversation.objects.filter(pk__in=selected).values_list("review_status", flat=True)) == {"resolved"}
    assert AuditEvent.objects.filter(action="review.status").count() == 2
    assert AuditEvent.objects.filter(action="review.assign").count() == 2
    response = admin_client.post(queue + "?status=all", {"action": "export_json", "_selected_action": selected})
    assert {c["external_id"] for c in json.loads(response.content)} == {"conv-a", "conv-d"}


def test_review_through_the_api(admin_client, dataset):
    url = f"/api/v1/conversations/{dataset.flagged.pk}/review/"
    response = admin_client.post(url, {"action": "set_status", "status": "resolved", "note": "ok"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["review_status"] == "resolved"
    assert AuditEvent.objects.filter(action="review.status").count() == 1
    bad = admin_client.post(url, {"action": "set_status"}, content_type="application/json")
    assert bad.status_code == 400 and "status" in bad.json()
    bad = admin_client.post(url, {"action": "explode"}, content_type="application/json")
    assert bad.status_code == 400
