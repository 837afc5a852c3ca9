"""Clustering runs through the service, the Celery task and the management command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.clustering import tasks
from apps.clustering.algorithm import NOISE, partition_vectors
from apps.clustering.choices import RunStatus
from apps.clustering.models import Cluster, ClusterMember, ClusterRun
from apps.clustering.runs import cluster_run_create, clustering_schedule_due
from tests.factories import make_chatbot, make_conversation, make_turn

pytestmark = pytest.mark.django_db


def run_now(chatbot, **kwargs) -> ClusterRun:
    run = cluster_run_create(chatbot=chatbot, **kwargs)
    tasks.cluster_run_execute(run.pk)  # the task, called in-process
    run.refresh_from_db()
    return run


def partition_of(run: ClusterRun) -> set[frozenset[int]]:
    return {
        frozenset(cluster.members.values_list("turn_id", flat=True))
        for cluster in run.clusters.filter(is_noise=False)
    }


def test_separable_themes_are_found_with_stats(chatbot, themed_turns):
    run = run_now(chatbot, days=7)

    assert run.status == RunStatus.DONE, run.message
    assert partition_of(run) == {frozenset(ids) for ids in themed_turns.values()}
    assert run.turn_count == 24 and run.cluster_count == 3 and run.noise_count == 0
    assert run.parameters["algorithm"] == "ward" and run.parameters["k_chosen"] == 3
    assert {"select", "embed", "cluster", "label", "save", "total"} <= set(run.timings)
    for theme, ids in themed_turns.items():
        cluster = Cluster.objects.get(run=run, members__turn_id=ids[0])
        assert theme in cluster.keywords[:3]
        assert theme in cluster.label.lower()  # no CLUSTER_LABEL_MODEL: the offline phrase title
        assert cluster.size == 8 and cluster.share == pytest.approx(1 / 3, abs=1e-3)
        members = list(cluster.members.order_by("distance"))
        assert sum(m.is_representative for m in members) == 5
        assert all(m.is_representative for m in members[:5])
        assert cluster.first_at < cluster.last_at
    # judge_overall was 3, 4, 5 by theme position in the fixture.
    assert sorted(Cluster.objects.filter(run=run).values_list("avg_judge_score", flat=True)) == [3.0, 4.0, 5.0]


def test_same_input_gives_same_clusters(chatbot, themed_turns):
    first = run_now(chatbot, days=7)
    second = run_now(chatbot, days=7)
    assert partition_of(first) == partition_of(second)
    assert list(first.clusters.order_by("index").values_list("index", "label", "size")) == list(
        second.clusters.order_by("index").values_list("index", "label", "size")
    )


def test_only_thumbs_down_turns_of_the_chatbot_in_the_window(chatbot, other_chatbot, themed_turns):
    conversation = make_conversation(chatbot)
    liked = make_turn(conversation, user_message="refund please money back", thumbs_up=1)
    old = make_turn(conversation, user_message="refund money back now", thumbs_down=1,
                    timestamp=timezone.now() - timedelta(days=30))
    foreign = make_turn(chatbot=other_chatbot, user_message="refund money", thumbs_down=1)

    run = run_now(chatbot, days=7)

    clustered = set(ClusterMember.objects.filter(cluster__run=run).values_list("turn_id", flat=True))
    assert clustered == {i for ids in themed_turns.values() for i in ids}
    assert not clustered & {liked.id, old.id, foreign.id}


def test_no_thumbs_down_turns_is_skipped_with_a_message(chatbot):
    run = run_now(chatbot, days=7)
    assert run.status == RunStatus.SKIPPED
    assert "Only 0 failure turns" in run.message and "at least 10" in run.message
    assert run.clusters.count() == 0 and run.finished_at is not None


def test_too_few_turns_is_skipped(chatbot):
    for text in ["refund please", "refund now", "password reset"]:
        make_turn(chatbot=chatbot, user_message=text, thumbs_down=1)
    run = run_now(chatbot, days=7)
    assert run.status == RunStatus.SKIPPED
    assert "Only 3 failure turns" in run.message


def test_tiny_input_below_cluster_size_goes_to_other(chatbot, settings):
    settings.CLUSTERING_MIN_TURNS = 2
    make_turn(chatbot=chatbot, user_message="refund please", thumbs_down=1)
    make_turn(chatbot=chatbot, user_message="password reset broken", thumbs_down=1)
    run = run_now(chatbot, days=7)
    assert run.status == RunStatus.DONE, run.message
    assert run.turn_count == 2
    clusters = list(run.clusters.all())
    # Two unrelated turns cannot form a theme of at least 3: both land in "other", none lost.
    assert sum(c.size for c in clusters) == 2
    assert all(c.is_noise and c.label == "Other" for c in clusters)


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_partition_of_tiny_and_identical_inputs(n):
    vectors = np.ones((n, 4), dtype=np.float32) / 2.0
    partition = partition_vectors(vectors, min_cluster_size=3)
    assert len(partition.labels) == n
    if n >= 3:
        assert partition.cluster_count == 1 and partition.noise_count == 0
    else:
        assert all(label == NOISE for label in partition.labels)


def test_newest_turns_only_when_over_the_limit(chatbot, themed_turns, settings):
    settings.CLUSTERING_MAX_TURNS = 20
    run = run_now(chatbot, days=7)
    assert run.turn_count == 20 and run.parameters["truncated_to_newest"] is True
    assert "newest turns only" in run.message


def test_unknown_backend_is_rejected(chatbot):
    with pytest.raises(ValueError, match="Unknown embedding backend 'nope'"):
        cluster_run_create(chatbot=chatbot, backend="nope")


def test_a_claimed_run_is_not_run_twice(chatbot, themed_turns):
    run = cluster_run_create(chatbot=chatbot, days=7)
    assert tasks.cluster_run_execute(run.pk) == RunStatus.DONE
    assert tasks.cluster_run_execute(run.pk) == "not claimed"
    assert Cluster.objects.filter(run=run).count() == 3


def test_schedule_starts_due_chatbots_once(chatbot, themed_turns, django_capture_on_commit_callbacks):
    off = make_chatbot(clustering_interval_hours=0)
    recent = make_chatbot(last_clustered_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert tasks.clustering_schedule_due() == 1  # only `chatbot` (never clustered) is due
    assert len(callbacks) == 1  # the run's task is queued once the run row is committed

    runs = list(ClusterRun.objects.all())
    assert [r.chatbot_id for r in runs] == [chatbot.id]
    assert runs[0].status == RunStatus.DONE and runs[0].parameters["trigger"] == "schedule"
    assert not ClusterRun.objects.filter(chatbot__in=[off, recent]).exists()
    chatbot.refresh_from_db()
    assert chatbot.last_clustered_at is not None
    # A second sweep within the interval starts nothing.
    assert clustering_schedule_due() == []
    # Once the 24-hour interval has elapsed both clustered chatbots are due again, `off` never.
    later = clustering_schedule_due(now=timezone.now() + timedelta(hours=25))
    assert {run.chatbot_id for run in later} == {chatbot.id, recent.id}


def test_management_command_prints_summary(chatbot, themed_turns):
    out = StringIO()
    call_command("cluster_thumbs_down", "shop", "--days", "7", "--backend", "tfidf", stdout=out)
    text = out.getvalue()
    assert "done" in text and "3 clusters from 24 failure turns" in text
    for theme in ("refund", "password", "delivery"):
        assert theme in text.lower()
    assert text.count("33.3%") == 3


def test_management_command_errors(chatbot):
    with pytest.raises(CommandError, match="No chatbot with slug 'nope'"):
        call_command("cluster_thumbs_down", "nope")
    with pytest.raises(CommandError, match="between 1 and 3650"):
        call_command("cluster_thumbs_down", "shop", "--days", "0")
    with pytest.raises(CommandError):
        call_command("cluster_thumbs_down", "shop", "--backend", "nope")


def test_cluster_keywords_tokenise_in_linear_time():
    # The former token_pattern backtracked quadratically on runs like "a_'a_'…" (~5 s per 32 KB).
    import numpy as np

    from apps.clustering.algorithm import cluster_keywords
    from tests.support.deadline import deadline

    texts = ["a_'" * 10_700, "refund my order please", "refund the order now", "don't ship café-au-lait"]
    with deadline(5):
        keywords = cluster_keywords(texts, np.array([0, 1, 1, 2]))
    assert "refund" in keywords[1] and "café-au-lait" in keywords[2]


def test_a_run_whose_message_never_reached_the_broker_is_queued_again(chatbot, themed_turns, django_capture_on_commit_callbacks):
    # Created while the broker was down: pending, no task. It would block every later run.
    chatbot.clustering_interval_hours = 0
    chatbot.save(update_fields=["clustering_interval_hours"])
    lost = cluster_run_create(chatbot=chatbot, days=30)
    fresh = cluster_run_create(chatbot=make_chatbot(clustering_interval_hours=0), days=30)
    ClusterRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=30))

    with django_capture_on_commit_callbacks(execute=True):
        clustering_schedule_due()

    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == RunStatus.DONE
    assert fresh.status == RunStatus.PENDING  # young: its own message may still be on the way
