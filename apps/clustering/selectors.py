"""Reads for clustering: the failure turns of a window, runs and clusters a user may see."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, QuerySet

from apps.chatbots.access import chatbot_scoped
from apps.chatbots.models import Chatbot
from apps.conversations.models import Turn

from .choices import RunStatus
from .models import Cluster, ClusterMember, ClusterRun
from .sources import sources_fields, sources_filter, turn_reasons

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
        Turn.objects.filter(sources_filter(sources), chatbot=chatbot, timestamp__gte=start, timestamp__lt=end)
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
        .select_related("turn")
        .order_by("distance", "id"),
        to_attr="representatives",
    )


def clusters_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Cluster]:
    return chatbot_scoped(Cluster.objects.all(), user, field="run__chatbot").select_related("run", "run__chatbot")


def cluster_members(*, cluster: Cluster) -> QuerySet[ClusterMember]:
    """Members closest to the centre first, with the turn fields the pages and API show."""
    return (
        ClusterMember.objects.filter(cluster=cluster)
        .select_related("turn")
        .order_by("distance", "id")
    )
