"""Reads for clustering: the failure turns of a window, runs and clusters a user may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, Q, QuerySet

from apps.chatbots.access import chatbot_scoped
from apps.chatbots.models import Chatbot
from apps.conversations.models import Turn
from apps.privacy.policy import content_allowed_turns

from .choices import RunStatus
from .models import Cluster, ClusterMember, ClusterRun
from .sources import sources_annotations, sources_fields, sources_filter, turn_reasons

TURN_FIELDS = ("id", "conversation_id", "timestamp", "user_message", "bot_response", "judge_overall")


def failure_turns(*, chatbot: Chatbot, start: datetime, end: datetime, sources: list[str], limit: int) -> list[Turn]:
    """The newest `limit` turns in [start, end) matching any of `sources`, returned oldest id
    first, each with `reasons`: the sources it matched (apps.clustering.sources).

    The database filters by (chatbot, timestamp) and the sources' filters; some filters are a
    superset (a flagged turn may be flagged for risk only), so rows are read newest first in
    chunks and tested until `limit` members are found.
    """
    fields = tuple(dict.fromkeys((*TURN_FIELDS, *sources_fields(sources))))
    candidates = (
        # no_content turns hold no text and may reach no embedding model (apps.privacy.policy).
        content_allowed_turns(
            Turn.objects.filter(chatbot=chatbot, timestamp__gte=start, timestamp__lt=end)
            .annotate(**sources_annotations(sources)).filter(sources_filter(sources)))
        .order_by("-timestamp", "-id")
        .only(*fields)
    )
    chunk = max(limit, 500)
    chosen: list[Turn] = []
    offset = 0
    while len(chosen) < limit:
        rows = list(candidates[offset : offset + chunk])
        for turn in rows:
            turn.reasons = turn_reasons(turn, sources)
            if turn.reasons:
                chosen.append(turn)
                if len(chosen) == limit:
                    break
        if len(rows) < chunk:
            break
        offset += chunk
    chosen.sort(key=lambda turn: turn.id)
    return chosen


def active_run_exists(*, chatbot: Chatbot) -> bool:
    return ClusterRun.objects.filter(chatbot=chatbot, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).exists()


def runs_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[ClusterRun]:
    return chatbot_scoped(ClusterRun.objects.all(), user).select_related("chatbot")


def representatives_prefetch() -> Prefetch:
    return Prefetch(
        "members",
        queryset=ClusterMember.objects.filter(is_representative=True)
        .select_related("turn__conversation")
        .order_by("distance", "id"),
        to_attr="representatives",
    )


def clusters_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Cluster]:
    return chatbot_scoped(Cluster.objects.all(), user, field="run__chatbot").select_related("run", "run__chatbot")


def cluster_members(*, cluster: Cluster) -> QuerySet[ClusterMember]:
    """Members closest to the centre first, with the turn fields the pages and API show."""
    return (
        ClusterMember.objects.filter(cluster=cluster)
        .select_related("turn__conversation")
        .order_by("distance", "id")
    )


# --- the run page and the dashboard: themes with their drift and representatives -------------

@dataclass
class Representative:
    turn_id: int
    conversation_id: int
    conversation_external_id: str
    user_message: str
    reasons: list[str]
    thumbs_down_comment: str
    judge_reasoning: str


@dataclass
class Theme:
    cluster: Cluster
    history: list[tuple[int, float, int]]  # (run id, share, size), oldest run first, this run last
    representatives: list[Representative]
    reasons: dict[str, int]  # failure source → members that matched it


def theme_histories(*, clusters: list[Cluster]) -> dict[int, list[tuple[int, float, int]]]:
    """Per theme key, the (run, share, size) of every cluster of that theme, oldest run first."""
    keys = {cluster.theme_key for cluster in clusters}
    rows = (
        Cluster.objects.filter(Q(pk__in=keys) | Q(theme_origin_id__in=keys))
        .order_by("run__created_at", "run_id")
        .values_list("pk", "theme_origin_id", "run_id", "share", "size")
    )
    histories: dict[int, list[tuple[int, float, int]]] = {}
    for pk, origin, run_id, share, size in rows:
        histories.setdefault(origin or pk, []).append((run_id, share, size))
    return histories


def run_themes(*, run: ClusterRun) -> list[Theme]:
    """The run's themes (largest first, "other" last) with history, reasons and representatives:
    the conversation's own id, the 👎 comment and the judge's reasoning of each. Five queries."""
    from apps.evaluations.choices import EvaluationStatus, Evaluator
    from apps.evaluations.models import Evaluation
    from apps.feedback.choices import Rating
    from apps.feedback.models import Feedback

    clusters = list(run.clusters.order_by("is_noise", "-size", "index"))
    histories = theme_histories(clusters=clusters)
    members = list(
        ClusterMember.objects.filter(cluster__run=run)
        .select_related("turn__conversation")
        .only("cluster_id", "reasons", "is_representative", "turn__id", "turn__user_message",
              "turn__conversation__id", "turn__conversation__external_id")
        .order_by("distance", "id")
    )
    shown = [m for m in members if m.is_representative]
    turn_ids = [m.turn_id for m in shown]
    comments: dict[int, str] = {}
    for turn_id, comment in (
        Feedback.objects.filter(turn_id__in=turn_ids, rating=Rating.DOWN).exclude(comment="")
        .order_by("created_at").values_list("turn_id", "comment")
    ):
        comments.setdefault(turn_id, comment)
    reasoning: dict[int, str] = {}
    for turn_id, text in (
        Evaluation.objects.filter(turn_id__in=turn_ids, status=EvaluationStatus.DONE).exclude(evaluator=Evaluator.HUMAN)
        .exclude(reasoning="").order_by("-completed_at", "-id").values_list("turn_id", "reasoning")
    ):
        reasoning.setdefault(turn_id, text)  # the newest grade's
    by_cluster: dict[int, list[ClusterMember]] = {}
    for member in members:
        by_cluster.setdefault(member.cluster_id, []).append(member)
    themes = []
    for cluster in clusters:
        own = by_cluster.get(cluster.pk, [])
        counts: dict[str, int] = {}
        for member in own:
            for reason in member.reasons or []:
                counts[reason] = counts.get(reason, 0) + 1
        themes.append(Theme(
            cluster=cluster,
            history=histories.get(cluster.theme_key, [(run.pk, cluster.share, cluster.size)]),
            reasons=counts,
            representatives=[
                Representative(
                    turn_id=m.turn_id, conversation_id=m.turn.conversation_id,
                    conversation_external_id=m.turn.conversation.external_id, user_message=m.turn.user_message,
                    reasons=list(m.reasons or []), thumbs_down_comment=comments.get(m.turn_id, ""),
                    judge_reasoning=reasoning.get(m.turn_id, ""),
                )
                for m in own if m.is_representative
            ],
        ))
    return themes


def drift_highlights(*, chatbot_ids: list[int] | None = None, limit: int = 6) -> list[Cluster]:
    """For each chatbot's newest finished run: its new themes and the themes whose share grew,
    the largest change first (new themes by share). The dashboard's panel."""
    latest = (
        ClusterRun.objects.filter(status=RunStatus.DONE, previous_run__isnull=False)
        .order_by("chatbot_id", "-created_at", "-id")
    )
    if chatbot_ids is not None:
        latest = latest.filter(chatbot_id__in=chatbot_ids)
    newest: dict[int, int] = {}
    for chatbot_id, run_id in latest.values_list("chatbot_id", "id"):
        newest.setdefault(chatbot_id, run_id)
    clusters = list(
        Cluster.objects.filter(run_id__in=list(newest.values()), is_noise=False)
        .filter(Q(is_new=True) | Q(share_change__gt=0))
        .select_related("run__chatbot")
    )
    clusters.sort(key=lambda c: (-(c.share * 100 if c.is_new else c.share_change or 0.0), c.pk))
    return clusters[:limit]
