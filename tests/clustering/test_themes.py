"""Failure themes: runs over every failure signal, offline titles, near-duplicate merging, drift
between runs and the theme alerts raised when a run finishes."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from apps.alerts.models import AlertEvent, AlertRule, Delivery, NotificationChannel
from apps.clustering import tasks
from apps.clustering.choices import RunStatus
from apps.clustering.models import Cluster, ClusterMember, ClusterRun
from apps.clustering.phrases import phrase_titles, stem
from apps.clustering.runs import ClusteringInputError, cluster_run_create
from apps.evaluations.models import ConversationEvaluation, Evaluation
from apps.feedback.models import Feedback
from tests.clustering.conftest import THEMES
from tests.factories import make_conversation, make_turn
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "s3cret-for-tests-0123456789"


@pytest.fixture
def run_now(django_capture_on_commit_callbacks):
    """Create and execute a run; what it queues after commit (the theme rules' check) runs too."""

    def run(chatbot, **kwargs) -> ClusterRun:
        created = cluster_run_create(chatbot=chatbot, **kwargs)
        with django_capture_on_commit_callbacks(execute=True):
            tasks.cluster_run_execute(created.pk)
        created.refresh_from_db()
        return created

    return run


def _turns(chatbot, messages, hours_ago=1, **signals):
    conversation = make_conversation(chatbot)
    now = timezone.now()
    return [
        make_turn(conversation, user_message=text, timestamp=now - timedelta(hours=hours_ago, minutes=i), **signals)
        for i, text in enumerate(messages)
    ]


# --- sources and reasons ----------------------------------------------------------------------

def test_a_run_over_mixed_sources_records_each_members_reasons(chatbot, run_now):
    refund = _turns(chatbot, THEMES["refund"], thumbs_down=1)
    password = _turns(chatbot, THEMES["password"], fallback_used=True)
    delivery = _turns(chatbot, THEMES["delivery"][:6], has_error=True)
    both = make_turn(chatbot=chatbot, user_message="refund my money the order was broken", thumbs_down=1,
                     fallback_used=True)
    judged = make_turn(chatbot=chatbot, user_message="delivery parcel is late again", is_flagged=True,
                       flag_reasons=["judge"], judge_hallucination=True)
    by_hand = make_turn(chatbot=chatbot, user_message="parcel delivery tracking lost", is_flagged=True,
                        flag_reasons=["manual"])
    risk_only = make_turn(chatbot=chatbot, user_message="delivery parcel tracking", is_flagged=True,
                          flag_reasons=["risk"])
    liked = make_turn(chatbot=chatbot, user_message="password reset login", thumbs_up=1)
    # A conversation the conversation judge graded low: the turn it names is a member, the others not.
    graded = make_conversation(chatbot)
    fine = make_turn(graded, user_message="hello I need help with my refund")
    went_wrong = make_turn(graded, user_message="refund for my broken order never arrived")
    ConversationEvaluation.objects.create(
        conversation=graded, chatbot=chatbot, evaluator="heuristic", evaluator_version="test-v1",
        status="done", overall=2.0, failed_turn=went_wrong.sequence,
    )
    judged_well = make_conversation(chatbot)
    passed = make_turn(judged_well, user_message="refund received thanks")
    ConversationEvaluation.objects.create(
        conversation=judged_well, chatbot=chatbot, evaluator="heuristic", evaluator_version="test-v1",
        status="done", overall=9.0, failed_turn=passed.sequence,
    )

    run = run_now(chatbot, days=7)

    assert run.status == RunStatus.DONE, run.message
    reasons = dict(ClusterMember.objects.filter(cluster__run=run).values_list("turn_id", "reasons"))
    assert {t.id for t in refund} | {t.id for t in password} | {t.id for t in delivery} <= set(reasons)
    assert all(reasons[t.id] == ["thumbs_down"] for t in refund)
    assert all(reasons[t.id] == ["fallback"] for t in password)
    assert all(reasons[t.id] == ["error"] for t in delivery)
    assert reasons[both.id] == ["thumbs_down", "fallback"]
    assert reasons[judged.id] == ["judge_flagged", "hallucinated"]
    assert reasons[by_hand.id] == ["manual_flag"]
    assert risk_only.id not in reasons and liked.id not in reasons  # flagged for risk only / liked
    assert reasons[went_wrong.id] == ["low_conversation_score"]
    assert fine.id not in reasons and passed.id not in reasons
    assert run.parameters["turns_by_source"] == {
        "thumbs_down": 9, "judge_flagged": 1, "hallucinated": 1, "fallback": 9, "error": 6, "manual_flag": 1,
        "low_conversation_score": 1,
    }
    # A password theme made of fallbacks alone: a signal thumbs-down clustering never saw.
    password_cluster = Cluster.objects.get(run=run, members__turn_id=password[0].id)
    assert not password_cluster.is_noise
    assert set(password_cluster.members.values_list("turn_id", flat=True)) == {t.id for t in password}


def test_a_run_can_select_its_sources(chatbot, run_now):
    _turns(chatbot, THEMES["refund"], thumbs_down=1)
    password = _turns(chatbot, THEMES["password"], fallback_used=True)
    _turns(chatbot, THEMES["delivery"], has_error=True)

    run = run_now(chatbot, days=7, sources=["fallback", "error"])

    assert run.parameters["sources"] == ["fallback", "error"]
    members = set(ClusterMember.objects.filter(cluster__run=run).values_list("turn_id", flat=True))
    assert len(members) == 16 and {t.id for t in password} <= members
    assert "from 16 fallback answer/bot error turns" in run.message


def test_unknown_sources_are_refused_before_a_run_exists(chatbot):
    with pytest.raises(ClusteringInputError, match="Unknown failure source 'likes'"):
        cluster_run_create(chatbot=chatbot, sources=["likes"])
    with pytest.raises(CommandError, match="Unknown failure source"):
        call_command("cluster_thumbs_down", chatbot.slug, "--sources", "thumbs_down,likes")
    assert not ClusterRun.objects.exists()


# --- titles and near-duplicates ---------------------------------------------------------------

def _title_words(title: str) -> list[str]:
    return [stem(w) for w in title.lower().replace("·", " ").split() if w not in {"for", "of", "on", "to", "in"}]


def test_offline_titles_are_phrases_without_repeated_words(chatbot, run_now, themed_turns):
    run = run_now(chatbot, days=7)
    titles = list(run.clusters.filter(is_noise=False).values_list("label", flat=True))
    assert len(titles) == 3 and len(set(titles)) == 3
    for title in titles:
        words = _title_words(title)
        assert len(words) == len(set(words)), title  # no "refund refund", no "order refund, refund order"
        assert "," not in title and title[0].isupper()
    assert {t.split()[0].lower() for t in titles} == {"refund", "login", "delivery"}


def test_phrase_titles_prefer_a_phrase_most_members_say():
    texts = [
        "what is the refund window for sale items", "refund window for sale items please",
        "is there a refund window for sale items", "sale items refund window",
        "my password reset fails", "password reset link broken", "the password reset never arrives",
    ]
    titles = phrase_titles(texts, np.array([0, 0, 0, 0, 1, 1, 1]))
    assert titles == {0: "Refund Window for Sale Items", 1: "Password Reset"}


# The demo's refund topic (apps/ingest/demo.py): three wordings that a ward cut on TF-IDF
# splits into near-identical clusters, next to two other shop topics.
DEMO_REFUND = ["When will I get my refund?", "I returned my order two weeks ago and still no refund",
               "Refund for order {n} please"]
DEMO_OTHER = ["Do you have a discount code?", "Is there a student discount?", "My promo code SAVE20 doesn't work",
              "Do these sneakers run small?", "What size should I get if I'm usually a 42?", "Is the M size slim fit?"]


def _demo_like_turns(chatbot) -> list[int]:
    refund = _turns(chatbot, [DEMO_REFUND[i % 3].format(n=4100 + i) for i in range(36)], thumbs_down=1)
    _turns(chatbot, [DEMO_OTHER[i % 6] for i in range(36)], thumbs_down=1, hours_ago=3)
    return [t.id for t in refund]


def _refund_clusters(run: ClusterRun, refund_ids: list[int]) -> set[int]:
    return set(
        ClusterMember.objects.filter(cluster__run=run, cluster__is_noise=False, turn_id__in=refund_ids)
        .values_list("cluster_id", flat=True)
    )


def test_near_duplicate_clusters_are_merged_on_the_demo_refund_set(chatbot, run_now, settings):
    refund_ids = _demo_like_turns(chatbot)

    settings.CLUSTERING_MERGE_SIMILARITY = 1.01  # merging off: what the ward cut alone gives
    unmerged = run_now(chatbot, days=7)
    assert len(_refund_clusters(unmerged, refund_ids)) >= 2, "the cut no longer splits the refund theme"

    settings.CLUSTERING_MERGE_SIMILARITY = None  # the backend's default
    run = run_now(chatbot, days=7)
    assert run.parameters["near_duplicates_merged"] >= 1
    (cluster_id,) = _refund_clusters(run, refund_ids)
    cluster = Cluster.objects.get(pk=cluster_id)
    assert cluster.size == 36
    assert "refund" in cluster.label.lower()
    words = _title_words(cluster.label)
    assert len(words) == len(set(words))


# --- drift and theme alerts -------------------------------------------------------------------

@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.SITE_URL = "https://chatmon.example"
    with WebhookReceiver() as server:
        yield server


def test_two_runs_with_a_planted_new_theme_raise_exactly_one_new_theme_alert(chatbot, run_now, receiver):
    channel = NotificationChannel.objects.create(
        name="Ops", kind="webhook", config={"url": receiver.url("/hook"), "secret": WEBHOOK_SECRET}
    )
    rule = AlertRule.objects.create(name="New failure theme", chatbot=chatbot, metric="new_failure_theme",
                                    comparison="gte", threshold=5, window_minutes=60)
    rule.channels.set([channel])
    growth = AlertRule.objects.create(name="Theme grew", chatbot=chatbot, metric="theme_share_growth",
                                      comparison="gte", threshold=50)  # nothing grows by 50 points
    refund = _turns(chatbot, THEMES["refund"], thumbs_down=1, hours_ago=30)
    _turns(chatbot, THEMES["password"], thumbs_down=1, hours_ago=30)

    first = run_now(chatbot, days=7)
    assert first.status == RunStatus.DONE and first.previous_run is None
    assert set(first.clusters.values_list("is_new", flat=True)) == {None}  # the baseline
    assert not AlertEvent.objects.exists()

    delivery = _turns(chatbot, THEMES["delivery"], fallback_used=True)  # the planted theme
    second = run_now(chatbot, days=7)

    assert second.previous_run_id == first.pk
    new = Cluster.objects.get(run=second, members__turn_id=delivery[0].id)
    assert new.is_new is True and new.previous is None
    continued = Cluster.objects.get(run=second, members__turn_id=refund[0].id)
    before = Cluster.objects.get(run=first, members__turn_id=refund[0].id)
    assert continued.is_new is False and continued.previous_id == before.pk and continued.theme_key == before.pk
    assert continued.share_change == pytest.approx(100 * (1 / 3 - 1 / 2), abs=0.01)

    event = AlertEvent.objects.get()
    assert event.rule == rule and event.cluster_run == second and event.value == 8
    assert new.label in event.message
    (request,) = receiver.wait_for(1)
    payload = request.json()
    assert payload["metric"] == "new_failure_theme" and new.label in payload["title"]
    assert payload["themes"][0]["title"] == new.label
    members_url = "https://chatmon.example" + reverse("admin:clustering_cluster_change", args=[new.pk])
    assert payload["themes"][0]["members_url"] == members_url and members_url in payload["text"]
    growth.refresh_from_db()
    assert growth.state == "ok" and growth.last_checked_at is not None

    # The same run checked again (a redelivered task) opens nothing and sends nothing more.
    from apps.alerts.tasks import theme_rules_check

    assert theme_rules_check(second.pk) == 0
    assert AlertEvent.objects.count() == 1 and Delivery.objects.count() == 1

    # The minute check leaves theme rules alone (they have no window value).
    from apps.alerts.rules import alert_rule_check, alert_rules_check

    assert rule.pk not in {outcome.rule_id for outcome in alert_rules_check()}
    assert alert_rule_check(rule_id=rule.pk) is None  # nor does "check now": no error state
    rule.refresh_from_db()
    assert rule.state == "firing" and rule.last_error == ""


def test_a_theme_whose_share_grew_fires_the_growth_rule_and_the_next_quiet_run_resolves_it(chatbot, run_now):
    channel = NotificationChannel.objects.create(name="Log", kind="log", config={})
    rule = AlertRule.objects.create(name="Theme grew", metric="theme_share_growth", comparison="gte", threshold=10)
    rule.channels.set([channel])
    password = _turns(chatbot, THEMES["password"], thumbs_down=1, hours_ago=40)
    _turns(chatbot, THEMES["refund"] * 2, thumbs_down=1, hours_ago=40)
    _turns(chatbot, THEMES["delivery"] * 2, thumbs_down=1, hours_ago=40)
    first = run_now(chatbot, days=7)  # password 8 of 40: 20 %
    _turns(chatbot, THEMES["password"] * 3, thumbs_down=1)
    second = run_now(chatbot, days=7)  # password 32 of 64: 50 %

    grown = Cluster.objects.get(run=second, members__turn_id=password[0].id)
    before = Cluster.objects.get(run=first, members__turn_id=password[0].id)
    assert grown.is_new is False and grown.previous_id == before.pk
    assert grown.share_change == pytest.approx(100 * (grown.share - before.share), abs=0.01)
    assert grown.share_change >= 10
    biggest = max(second.clusters.filter(is_new=False).values_list("share_change", flat=True))
    event = AlertEvent.objects.get(rule=rule)
    assert event.cluster_run == second and event.value == pytest.approx(biggest, abs=0.01)
    assert grown.label in event.message and f"{grown.share_change:+.1f} points" in event.message
    assert Delivery.objects.get(event=event).status == "sent"

    third = run_now(chatbot, days=7)  # the same turns: nothing grew
    assert third.previous_run_id == second.pk
    event.refresh_from_db()
    assert event.status == "resolved" and AlertEvent.objects.count() == 1
    assert first.pk != second.pk


def test_the_run_page_shows_drift_and_representatives(admin_client, chatbot, run_now):
    refund = _turns(chatbot, THEMES["refund"], thumbs_down=1, hours_ago=30)
    _turns(chatbot, THEMES["password"], thumbs_down=1, hours_ago=30)
    run_now(chatbot, days=7)
    delivery = _turns(chatbot, THEMES["delivery"], fallback_used=True)
    for turn in refund:  # whichever members are the representatives
        Feedback.objects.create(turn=turn, chatbot=chatbot, voter_key=f"v{turn.pk}", rating="down",
                                comment="It keeps asking for my order number")
        Evaluation.objects.create(turn=turn, chatbot=chatbot, evaluator="heuristic", evaluator_version="h-1",
                                  status="done", overall=2.0, reasoning="The answer ignores the refund question.")
    second = run_now(chatbot, days=7)

    response = admin_client.get(reverse("admin:clustering_clusterrun_change", args=[second.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    new = Cluster.objects.get(run=second, members__turn_id=delivery[0].id)
    assert f'id="theme-{new.pk}"' in html and "cm-badge-new" in html
    assert refund[0].conversation.external_id in html
    assert "Thumbs-down comment: “It keeps asking for my order number" in html
    assert "The answer ignores the refund question." in html
    assert "Fallback answer 8" in html and "Thumbs-down 8" in html
    assert "50% → 33%" in re.sub(r"<[^>]+>", "", html)  # the refund theme's history

    dashboard = admin_client.get(reverse("admin:index"))
    assert dashboard.status_code == 200
    assert f"#theme-{new.pk}" in dashboard.content.decode()


def test_the_api_gives_reasons_drift_and_the_conversations_own_id(admin_client, chatbot, run_now):
    _turns(chatbot, THEMES["refund"], thumbs_down=1, hours_ago=30)
    _turns(chatbot, THEMES["password"], thumbs_down=1, hours_ago=30)
    first = run_now(chatbot, days=7)
    delivery = _turns(chatbot, THEMES["delivery"], has_error=True)
    second = run_now(chatbot, days=7)
    new = Cluster.objects.get(run=second, members__turn_id=delivery[0].id)

    listed = admin_client.get("/api/v1/clusters/", {"run": second.pk}).json()["results"]
    by_id = {row["id"]: row for row in listed}
    assert by_id[new.pk]["is_new"] is True and by_id[new.pk]["theme"] == new.pk
    continued = [row for row in listed if row["previous"] is not None]
    assert len(continued) == 2
    for row in continued:
        assert row["is_new"] is False and row["theme"] == row["previous"]
        assert row["share_change"] == pytest.approx(100 * (1 / 3 - 1 / 2), abs=0.01)
    turns = admin_client.get(f"/api/v1/clusters/{new.pk}/turns/").json()["results"]
    assert {row["reasons"][0] for row in turns} == {"error"}
    assert {row["conversation_external_id"] for row in turns} == {delivery[0].conversation.external_id}
    assert admin_client.get(f"/api/v1/cluster-runs/{second.pk}/").json()["previous_run"] == first.pk


# --- drift kept true after members are deleted (erasure, retention) ------------------------------


def test_deleting_members_recomputes_shares_share_changes_and_lost_matches(chatbot, run_now):
    from apps.privacy.services import conversations_delete

    old_refund = _turns(chatbot, THEMES["refund"], thumbs_down=1, hours_ago=30)
    _turns(chatbot, THEMES["password"], thumbs_down=1, hours_ago=30)
    first = run_now(chatbot, days=7)
    refund = _turns(chatbot, THEMES["refund"], thumbs_down=1)
    password = _turns(chatbot, THEMES["password"], thumbs_down=1)
    delivery = _turns(chatbot, THEMES["delivery"], thumbs_down=1)
    second = run_now(chatbot, days=1)  # only this day's turns: the first run's are not members
    assert second.previous_run_id == first.pk

    def cluster(run, turn):
        return Cluster.objects.get(run=run, members__turn_id=turn.id)

    continued = cluster(second, refund[0])
    assert continued.previous_id == cluster(first, old_refund[0]).pk
    before = {c.pk: c.share_change for c in second.clusters.filter(is_new=False)}
    assert len(before) == 2

    # The second run loses its delivery theme: its other themes' shares and changes follow.
    conversations_delete(conversation_ids=[delivery[0].conversation_id])
    second_clusters = list(second.clusters.select_related("previous"))
    assert len(second_clusters) == 2 and sum(c.share for c in second_clusters) == pytest.approx(1.0)
    for theme in second_clusters:
        assert theme.share_change == pytest.approx(100 * (theme.share - theme.previous.share), abs=0.01)
        assert theme.share_change != before[theme.pk]

    # The first run loses its refund theme: the second run's refund theme matches nothing left
    # (new), and its password theme's change is against the password share now (100 %).
    conversations_delete(conversation_ids=[old_refund[0].conversation_id])
    assert list(first.clusters.values_list("share", flat=True)) == [1.0]
    lost = cluster(second, refund[0])
    assert (lost.is_new, lost.previous_id, lost.share_change) == (True, None, None)
    kept = cluster(second, password[0])
    assert kept.is_new is False
    assert kept.share_change == pytest.approx(100 * (kept.share - 1.0), abs=0.01)
