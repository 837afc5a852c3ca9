"""A reviewer's own judgement: rubric scores and labels, manual flags, corrected answers, per-turn
judge re-runs, judge–human agreement, and the read-only evidence pages."""

import pytest

from apps.audit.models import AuditEvent
from apps.conversations.models import Conversation, Turn
from apps.evaluations.models import Evaluation
from apps.review.selectors import judge_human_agreement

pytestmark = pytest.mark.django_db


def page_url(conversation) -> str:
    return f"/admin/conversations/conversation/{conversation.pk}/change/"


@pytest.fixture
def labelled(chatbot):
    chatbot.review_labels = ["wrong price", "tone"]
    chatbot.save()
    return chatbot


def score(client, dataset, **fields):
    data = {"action": "score", "turn": dataset.t1.pk, **fields}
    return client.post(page_url(dataset.flagged), data, follow=True)


def test_reviewer_scores_a_turn_once_and_edits_it(bob_client, bob, alice, dataset, labelled):
    response = score(bob_client, dataset, accuracy="2", relevance="6", clarity="8", helpfulness="3", safety="10",
                     hallucination="yes", labels=["wrong price"])
    assert "Your scores for turn #1 are saved." in response.content.decode()
    mine = Evaluation.objects.get(evaluator="human", reviewer=bob)
    assert (mine.turn_id, mine.accuracy, mine.hallucination, mine.labels, mine.status) == (
        dataset.t1.pk, 2.0, True, ["wrong price"], "done")
    # The chatbot's weights: 0.2*2 + 0.3*6 + 0.1*8 + 0.15*3 + 0.25*10 = 5.95
    assert mine.overall == pytest.approx(5.95)
    # Again: the same row is updated, not a second one.
    score(bob_client, dataset, accuracy="4", hallucination="no", labels=["tone"])
    mine.refresh_from_db()
    assert Evaluation.objects.filter(evaluator="human").count() == 1
    assert (mine.accuracy, mine.relevance, mine.hallucination, mine.labels, mine.overall) == (4.0, None, False, ["tone"], 4.0)
    # The judge's summary is the judge's: a human grade changes neither the turn nor the conversation.
    dataset.t1.refresh_from_db()
    assert dataset.t1.judge_overall == 2.0
    assert Conversation.objects.get(pk=dataset.flagged.pk).min_judge_score == 2.0
    events = AuditEvent.objects.filter(action="review.score").order_by("id")
    assert [e.data["created"] for e in events] == [True, False] and events[0].data["turn_id"] == dataset.t1.pk
    # Shown beside the judge's, with the labels; the form is pre-filled with my scores.
    html = bob_client.get(page_url(dataset.flagged)).content.decode()
    assert 'data-reviewer="bob"' in html and '<span class="cm-badge cm-label">tone</span>' in html
    assert 'name="accuracy" min="0" max="10" step="0.5" inputmode="decimal" value="4"' in html
    assert "bob scored turn #1 (overall 4.0; labels tone)" in html


def test_bad_scores_and_unknown_labels_are_refused(bob_client, dataset, labelled):
    assert "must be between 0 and 10" in score(bob_client, dataset, accuracy="11").content.decode()
    assert "Unknown label(s) for this chatbot: rude" in score(bob_client, dataset, labels=["rude"]).content.decode()
    assert "must be a number" in score(bob_client, dataset, accuracy="lots").content.decode()
    assert not Evaluation.objects.filter(evaluator="human").exists()


def test_a_turn_of_another_conversation_is_refused(admin_client, dataset):
    response = admin_client.post(page_url(dataset.flagged), {"action": "score", "turn": dataset.t_other.pk, "accuracy": "1"},
                                 follow=True)
    assert "No such turn in this conversation." in response.content.decode()


def test_manual_flag_of_a_turn_and_of_the_conversation(admin_client, dataset):
    calm = dataset.calm
    response = admin_client.post(page_url(calm), {"action": "flag", "turn": dataset.t3.pk, "note": "promised a refund"},
                                 follow=True)
    assert "Turn #1 flagged by hand." in response.content.decode()
    turn = Turn.objects.get(pk=dataset.t3.pk)
    calm.refresh_from_db()
    assert (turn.is_flagged, turn.flag_reasons) == (True, ["manual"])
    assert (calm.is_flagged, calm.flag_reasons, calm.review_status) == (True, ["manual"], "new")
    assert calm.flagged_at is not None
    assert "promised a refund" in calm.review_note
    event = AuditEvent.objects.get(action="review.flag")
    assert event.data["turn_id"] == dataset.t3.pk and "promised" not in str(event.data)
    html = admin_client.get(page_url(calm)).content.decode()
    assert "alice flagged turn #1 by hand: <q>promised a refund</q>" in html
    # The conversation alone; a reason is required.
    response = admin_client.post(page_url(dataset.old), {"action": "flag", "note": ""}, follow=True)
    assert "Say why you flag it." in response.content.decode()
    admin_client.post(page_url(dataset.old), {"action": "flag", "note": "tone"})
    old = Conversation.objects.get(pk=dataset.old.pk)
    assert (old.is_flagged, old.flag_reasons) == (True, ["manual"])
    assert not Turn.objects.filter(conversation=old, is_flagged=True).exists()


def test_corrected_answer_is_stored_audited_and_shown(bob_client, bob, dataset):
    url = page_url(dataset.flagged)
    response = bob_client.post(url, {"action": "correct", "turn": dataset.t1.pk,
                                     "corrected_answer": "Please call 112 <now>."}, follow=True)
    assert "Corrected answer for turn #1 saved." in response.content.decode()
    turn = Turn.objects.get(pk=dataset.t1.pk)
    assert (turn.corrected_answer, turn.corrected_by, turn.bot_response) == ("Please call 112 <now>.", bob,
                                                                          "Please call the helpline.")
    event = AuditEvent.objects.get(action="review.correct")
    assert event.data == {"turn_id": turn.pk, "chars": len("Please call 112 <now>."), "previous_chars": 0}
    html = bob_client.get(url).content.decode()
    assert f'id="corrected-{turn.pk}"' in html and "Please call 112 &lt;now&gt;." in html
    assert "bob wrote a corrected answer for turn #1" in html
    bob_client.post(url, {"action": "correct", "turn": turn.pk, "corrected_answer": ""})
    assert Turn.objects.get(pk=turn.pk).corrected_answer == ""


def test_rerun_judge_on_one_turn_from_the_transcript_and_the_turn_page(admin_client, dataset):
    response = admin_client.post(page_url(dataset.flagged), {"action": "rerun_judge", "turn": dataset.t2.pk}, follow=True)
    assert "Judge queued for turn #2." in response.content.decode()
    event = AuditEvent.objects.get(action="judge.rerun")
    assert event.data["turn_ids"] == [dataset.t2.pk]
    turn_page = f"/admin/conversations/turn/{dataset.t1.pk}/change/"
    assert 'id="turn-rerun-judge"' in admin_client.get(turn_page).content.decode()
    response = admin_client.post(f"/admin/conversations/turn/{dataset.t1.pk}/rerun-judge/")
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="judge.rerun").count() == 2


def test_turn_and_llm_call_pages_are_read_only_for_everyone(admin_client, dataset):
    from apps.conversations.models import LLMCall

    call = LLMCall.objects.filter(turn=dataset.t1).first()
    for url in (f"/admin/conversations/turn/{dataset.t1.pk}/change/", f"/admin/conversations/llmcall/{call.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert 'name="_save"' not in html and 'name="user_message"' not in html
        assert admin_client.post(url, {"user_message": "forged"}).status_code == 403
    for url in ("/admin/conversations/turn/", "/admin/conversations/llmcall/"):
        assert f'href="{url}add/"' not in admin_client.get(url).content.decode()
    assert admin_client.get("/admin/conversations/turn/add/").status_code == 403
    assert Turn.objects.get(pk=dataset.t1.pk).user_message != "forged"


def test_review_api_score_flag_correct(admin_client, alice, dataset, labelled):
    url = f"/api/v1/conversations/{dataset.flagged.pk}/review/"
    post = lambda body: admin_client.post(url, body, content_type="application/json")  # noqa: E731
    assert post({"action": "score", "turn": dataset.t1.pk, "scores": {"accuracy": 3, "safety": 9},
                 "hallucination": True, "labels": ["tone"]}).status_code == 200
    mine = Evaluation.objects.get(evaluator="human", reviewer=alice)
    assert (mine.accuracy, mine.safety, mine.hallucination, mine.labels) == (3.0, 9.0, True, ["tone"])
    assert post({"action": "score", "scores": {"accuracy": 3}}).status_code == 400  # no turn
    assert post({"action": "score", "turn": dataset.t1.pk, "scores": {"accuracy": 12}}).status_code == 400
    assert post({"action": "correct", "turn": dataset.t2.pk, "corrected_answer": "Better."}).status_code == 200
    assert Turn.objects.get(pk=dataset.t2.pk).corrected_answer == "Better."
    assert post({"action": "flag", "turn": dataset.t2.pk}).status_code == 400  # no reason
    response = post({"action": "flag", "turn": dataset.t2.pk, "note": "wrong"})
    assert response.status_code == 200 and "manual" in response.json()["flag_reasons"]
    assert post({"action": "score", "turn": dataset.t_other.pk, "scores": {"accuracy": 1}}).status_code == 409
    actions = list(AuditEvent.objects.filter(object_id=str(dataset.flagged.pk)).values_list("action", flat=True))
    assert sorted(actions) == ["review.correct", "review.flag", "review.score"]


def test_judge_human_agreement_on_hand_computed_pairs(chatbot, other_chatbot, alice, bob, dataset):
    """Two turns of `chatbot` graded by the judge and a reviewer, worked out by hand.

    t1: judge acc 1 rel 2 cla 3 hel 2 saf 1 overall 2.0 halluc yes (flags: yes)
        alice acc 3 rel 2 cla 5 hel 2 saf 1 overall 2.5 halluc yes (flags: yes)
    t2: judge acc 8 rel 8 cla 8 hel 8 saf 8 overall 8.0 halluc no  (flags: no)
        bob   acc 4 rel 9 cla 8 hel 6 saf 9 overall 6.0 halluc yes (flags: yes, hallucination)
    MAD accuracy (2 + 4) / 2 = 3.0; relevance (0 + 1) / 2 = 0.5; clarity (2 + 0) / 2 = 1.0;
    helpfulness (0 + 2) / 2 = 1.0; safety (0 + 1) / 2 = 0.5; overall (0.5 + 2) / 2 = 1.25.
    Hallucination agrees on 1 of 2; flag-or-not on 1 of 2. A human grade with no judge grade
    (t4) and the other chatbot's pair are left out.
    """
    def grade(turn, who, values, hallucination, evaluator="human"):
        names = ("accuracy", "relevance", "clarity", "helpfulness", "safety", "overall")
        Evaluation.objects.create(
            turn=turn, chatbot=turn.chatbot, evaluator=evaluator, status="done", hallucination=hallucination,
            evaluator_version=f"{evaluator}:{who.pk if who else 0}", reviewer=who, **dict(zip(names, values, strict=True)),
        )

    # dataset already holds the judge's (heuristic) grade of t1: 1, 2, 3, 2, 1, overall 2.0, hallucination.
    grade(dataset.t1, alice, (3, 2, 5, 2, 1, 2.5), True)
    grade(dataset.t2, None, (8, 8, 8, 8, 8, 8.0), False, evaluator="llm_judge")
    grade(dataset.t2, bob, (4, 9, 8, 6, 9, 6.0), True)
    grade(dataset.t4, bob, (1, 1, 1, 1, 1, 1.0), True)
    grade(dataset.t_other, None, (9, 9, 9, 9, 9, 9.0), False, evaluator="llm_judge")
    grade(dataset.t_other, alice, (0, 0, 0, 0, 0, 0.0), True)

    (row,) = judge_human_agreement(chatbot_ids=[chatbot.pk])
    assert row["pairs"] == 2
    assert row["mean_absolute_difference"] == {"accuracy": 3.0, "relevance": 0.5, "clarity": 1.0, "helpfulness": 1.0,
                                               "safety": 0.5, "overall": 1.25}
    assert (row["hallucination_agreement"], row["flag_agreement"]) == (0.5, 0.5)
    everything = judge_human_agreement(chatbot_ids=None)
    assert [r["chatbot"] for r in everything] == ["HR helper", "Shop assistant"]
    assert everything[0]["flag_agreement"] == 0.0
    # Shown on the chatbot's admin page.
    from django.test import Client

    client = Client()
    client.force_login(alice)
    html = client.get(f"/admin/chatbots/chatbot/{chatbot.pk}/change/").content.decode()
    assert "2 turns graded by both" in html and "<td>3.0</td><td>0.5</td>" in html
