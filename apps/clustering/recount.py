"""Keeping clustering runs true after their turns are deleted (erasure, retention)."""

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count, Max, Min

from .models import Cluster, ClusterMember, ClusterRun


def clusters_of_conversations(*, conversation_ids: list[int]) -> set[int]:
    """The clusters with a member turn in these conversations (call before deleting them)."""
    return set(
        ClusterMember.objects.filter(turn__conversation_id__in=conversation_ids)
        .values_list("cluster_id", flat=True)
        .distinct()
    )


def clusters_recount(*, cluster_ids: set[int]) -> None:
    """Bring clusters in line with the members left: size, share, dates, average judge score.

    A cluster left empty is deleted (its label was drawn from the erased turns). The run's
    turn_count/cluster_count/noise_count follow, and representatives are topped up from the
    nearest remaining members.
    """
    if not cluster_ids:
        return
    run_ids = set(Cluster.objects.filter(pk__in=cluster_ids).values_list("run_id", flat=True))
    representatives = settings.CLUSTERING_REPRESENTATIVES
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
                    share=cluster.member_count / total if total else 0.0,
                    avg_judge_score=cluster.judge_avg,
                    first_at=cluster.first,
                    last_at=cluster.last,
                )
            kept = [c for c in clusters if c.member_count]
            ClusterRun.objects.filter(pk=run.pk).update(
                turn_count=total,
                cluster_count=sum(1 for c in kept if not c.is_noise),
                noise_count=sum(c.member_count for c in kept if c.is_noise),
            )
