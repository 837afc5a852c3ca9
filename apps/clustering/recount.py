"""Keeping clustering runs true after their turns are deleted (erasure, retention).

A run's clusters quote their members: keywords are words of the members' messages, a title is
drawn from the keywords or written by the labeling model from example messages (and that
model call, an LLMCall with purpose "labeling", holds the examples). When members go, what was
derived from them goes or is derived again from the members left.
"""

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count, Max, Min, Q

from apps.conversations.choices import CallPurpose
from apps.conversations.models import LLMCall

from .algorithm import cluster_keywords
from .models import Cluster, ClusterMember, ClusterRun
from .phrases import phrase_titles

# The LLMCall.metadata keys naming the run and cluster a title call was made for (titles.py).
TITLE_CALL_RUN_KEY = "cluster_run_id"
TITLE_CALL_INDEX_KEY = "cluster_index"


def clusters_of_conversations(*, conversation_ids: list[int]) -> set[int]:
    """The clusters with a member turn in these conversations (call before deleting them)."""
    return set(
        ClusterMember.objects.filter(turn__conversation_id__in=conversation_ids)
        .values_list("cluster_id", flat=True)
        .distinct()
    )


def clusters_of_turns(*, turn_ids: list[int]) -> set[int]:
    """The clusters these turns are members of (call before deleting them)."""
    return set(ClusterMember.objects.filter(turn_id__in=turn_ids).values_list("cluster_id", flat=True).distinct())


def cluster_title_calls(*, run_id: int, indexes: list[int]):
    """The labeling-model calls made for these clusters of a run (they quote example messages)."""
    return LLMCall.objects.filter(
        purpose=CallPurpose.LABELING,
        **{f"metadata__{TITLE_CALL_RUN_KEY}": run_id},
        **{f"metadata__{TITLE_CALL_INDEX_KEY}__in": indexes},
    )


def clusters_recount(*, cluster_ids: set[int]) -> int:
    """Bring clusters that lost members in line with the members left; returns how many
    labeling-model calls were deleted.

    1. Size, share, dates, average judge score of every cluster of the run; a cluster left
       empty is deleted. The run's turn_count/cluster_count/noise_count follow.
    2. Representatives of the clusters that lost members are topped up from the nearest
       remaining members.
    3. Those clusters' keywords are computed again by c-TF-IDF over the run's remaining members
       (the lost members' words go), and their title becomes the offline phrase title (phrases.py): a title the
       labeling model wrote from the lost members is not kept, and no model is called here.
    4. The labeling-model calls made for those clusters (their input quotes example messages)
       are deleted, as are the calls of clusters deleted in step 1.
    5. Drift follows the new shares (drift.py): `share_change` of this run's continued themes
       (against their previous cluster) and of the next run's themes that continue this run's
       clusters is computed again. A theme whose previous cluster was deleted in step 1 matches
       nothing left in the previous run, so it is new (no previous, no change) — the definition
       of a new theme; its members are not embedded again, so no other match is looked for.
    """
    if not cluster_ids:
        return 0
    run_ids = set(Cluster.objects.filter(pk__in=cluster_ids).values_list("run_id", flat=True))
    representatives = settings.CLUSTERING_REPRESENTATIVES
    deleted_calls = 0
    with transaction.atomic():
        for run in ClusterRun.objects.select_for_update().filter(pk__in=run_ids).order_by("id"):
            clusters = list(
                Cluster.objects.filter(run=run).annotate(
                    member_count=Count("members"),
                    judge_avg=Avg("members__turn__judge_overall"),
                    first=Min("members__turn__timestamp"),
                    last=Max("members__turn__timestamp"),
                )
            )
            total = sum(c.member_count for c in clusters)
            touched = [c for c in clusters if c.pk in cluster_ids or c.member_count == 0]
            emptied = [c.pk for c in clusters if c.member_count == 0]
            if emptied:
                # Their continuations lose the match (step 5), before SET_NULL clears `previous`.
                Cluster.objects.filter(previous_id__in=emptied).update(is_new=True, previous=None, share_change=None)
            for cluster in clusters:
                if cluster.member_count == 0:
                    cluster.delete()
                    continue
                if cluster.pk in cluster_ids:
                    shown = cluster.members.filter(is_representative=True).count()
                    wanted = min(representatives, cluster.member_count)
                    if shown < wanted:
                        promote = list(
                            cluster.members.filter(is_representative=False).order_by("distance")
                            .values_list("id", flat=True)[: wanted - shown]
                        )
                        ClusterMember.objects.filter(pk__in=promote).update(is_representative=True)
                Cluster.objects.filter(pk=cluster.pk).update(
                    size=cluster.member_count,
                    share=round(cluster.member_count / total, 4) if total else 0.0,
                    avg_judge_score=cluster.judge_avg,
                    first_at=cluster.first,
                    last_at=cluster.last,
                )
            kept = [c for c in clusters if c.member_count]
            _keywords_recompute(run, relabel={c.pk for c in kept if c.pk in cluster_ids})
            _share_changes_refresh(run)
            ClusterRun.objects.filter(pk=run.pk).update(
                turn_count=total,
                cluster_count=sum(1 for c in kept if not c.is_noise),
                noise_count=sum(c.member_count for c in kept if c.is_noise),
            )
            if touched:
                deleted_calls += cluster_title_calls(run_id=run.pk, indexes=[c.index for c in touched]).delete()[0]
    return deleted_calls


def _share_changes_refresh(run: ClusterRun) -> None:
    """`share_change` (points, as drift.drift_apply computes it) of the continued themes of `run`
    and of those continuing `run`'s clusters in the next run, from the shares stored now."""
    continued = list(
        Cluster.objects.filter(Q(run=run) | Q(previous__run=run), previous__isnull=False)
        .select_related("previous").only("id", "share", "share_change", "previous__share")
    )
    for cluster in continued:
        cluster.share_change = round(100.0 * (cluster.share - cluster.previous.share), 2)
    Cluster.objects.bulk_update(continued, ["share_change"])


def _keywords_recompute(run: ClusterRun, *, relabel: set[int]) -> None:
    """New keywords (and keyword titles) for the clusters in `relabel`, by c-TF-IDF over the
    run's remaining members, as the run computed them (execution.py)."""
    if not relabel:
        return
    rows = list(
        ClusterMember.objects.filter(cluster__run=run).order_by("cluster__index", "turn_id")
        .values_list("cluster__index", "turn__user_message")
    )
    if not rows:
        return
    labels = np.array([index for index, _ in rows])
    texts = [text for _, text in rows]
    keywords = cluster_keywords(texts, labels, top=settings.CLUSTERING_KEYWORDS)
    titles = phrase_titles(texts, labels)
    for cluster in Cluster.objects.filter(pk__in=relabel):
        cluster.keywords = keywords.get(cluster.index, [])
        cluster.label = "Other" if cluster.is_noise else titles.get(cluster.index, "(no common phrase)")
        cluster.save(update_fields=["keywords", "label"])
