"""Reads for clustering: the thumbs-down turns of a window, runs and clusters a user may see."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Prefetch, QuerySet

from apps.chatbots.access import chatbot_scoped
from apps.chatbots.models import Chatbot
from apps.conversations.models import Turn
from apps.privacy.policy import content_allowed_turns

from .choices import RunStatus
from .models import Cluster, ClusterMember, ClusterRun

TURN_FIELDS = ("id", "conversation_id", "timestamp", "user_message", "bot_response", "judge_overall")


def thumbs_down_turns(*, chatbot: Chatbot, start: datetime, end: datetime, limit: int) -> list[Turn]:
    """The newest `limit` thumbs-down turns in [start, end), returned oldest id first.

    Filters on (chatbot, timestamp) with thumbs_down > 0, which the partial index
    `turn_thumbs_down` answers without touching the rest of the table.
    """
    newest = list(
        # no_content turns hold no text and may reach no embedding model (apps.privacy.policy).
        content_allowed_turns(
            Turn.objects.filter(chatbot=chatbot, thumbs_down__gt=0, timestamp__gte=start, timestamp__lt=end))
        .order_by("-timestamp", "-id")
        .only(*TURN_FIELDS)[:limit]
    )
    newest.sort(key=lambda turn: turn.id)
    return newest


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
