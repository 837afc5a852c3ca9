"""Erasure and retention: delete an end user's data, or everything past a chatbot's retention.

Both delete whole conversations in bounded batches, one short transaction per batch, taking
the conversation row locks first (the lock order of apps/conversations/services.py) so they
never deadlock with ingest, feedback or the judge. Deleting a conversation cascades to its
turns, LLM calls (the bot's and the judge's), evaluations, feedback, cached embeddings and
cluster memberships; the clusters that lost members are recounted afterwards so the clustering
browse stays consistent. Every run writes one AuditEvent with counts, never personal data.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_event_record
from apps.chatbots.models import Chatbot
from apps.clustering.recount import clusters_of_conversations, clusters_recount
from apps.conversations.models import Conversation, LLMCall
from apps.conversations.services import conversations_lock
from apps.feedback.models import Feedback

from .hashing import end_user_hash

logger = logging.getLogger(__name__)

# Django's collector labels → the names the API and the audit log use.
_COUNTED = {
    "conversations.Conversation": "conversations",
    "conversations.Turn": "turns",
    "conversations.LLMCall": "llm_calls",
    "evaluations.Evaluation": "evaluations",
    "feedback.Feedback": "feedback",
    "clustering.TurnEmbedding": "embeddings",
    "clustering.ClusterMember": "cluster_memberships",
}


@dataclass
class DeletionCounts:
    counts: Counter = field(default_factory=Counter)

    def add(self, per_model: dict[str, int]) -> None:
        for label, n in per_model.items():
            if label in _COUNTED:
                self.counts[_COUNTED[label]] += n

    def as_dict(self) -> dict[str, int]:
        return {name: self.counts.get(name, 0) for name in _COUNTED.values()}

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _conversations_delete(*, ids: list[int], extra_filter: dict[str, Any] | None = None) -> tuple[dict[str, int], set[int]]:
    """Delete these conversations (re-checked under lock) in one transaction.

    Returns the per-model counts and the clusters that lost members.
    """
    with transaction.atomic():
        locked = conversations_lock(conversation_ids=ids, where=extra_filter)
        if not locked:
            return {}, set()
        clusters = clusters_of_conversations(conversation_ids=locked)
        _, per_model = Conversation.objects.filter(pk__in=locked).delete()
    return per_model, clusters



def _conversations_delete_batched(*, chatbot: Chatbot, where: dict[str, Any], batch_size: int) -> tuple[DeletionCounts, set[int]]:
    """Delete the chatbot's conversations matching `where`, `batch_size` per transaction.

    The condition is re-checked under the lock (`_conversations_delete`), so a row that stopped
    matching in between survives. Returns the counts and the clusters that lost members.
    """
    totals = DeletionCounts()
    touched_clusters: set[int] = set()
    while True:
        ids = list(
            Conversation.objects.filter(chatbot=chatbot, **where).order_by("id").values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            return totals, touched_clusters
        per_model, clusters = _conversations_delete(ids=ids, extra_filter=where)
        totals.add(per_model)
        touched_clusters |= clusters


@dataclass
class ErasureResult:
    end_user_hash: str
    counts: dict[str, int]

    @property
    def hash_prefix(self) -> str:
        return self.end_user_hash[:12]


def end_user_erase(
    *,
    chatbot: Chatbot,
    user_id: str | None = None,
    hashed_id: str | None = None,
    actor: Any = None,
    actor_label: str = "",
    via: str = "api",
    batch_size: int = 200,
) -> ErasureResult:
    """Erase every conversation of one end user of one chatbot, and their votes elsewhere.

    1. The end user is found by the same HMAC ingest stores (or by a stored hash, from the admin).
    2. Their conversations go in batches (cascading to turns, calls, evaluations, feedback,
       embeddings, cluster memberships).
    3. Their votes on other people's conversations of this chatbot go through the feedback
       service, so those turns' and conversations' thumbs counters stay exact.
    4. Clusters that lost members are recounted; one AuditEvent records the counts.
    """
    if not hashed_id:
        if not user_id:
            raise ValueError("user_id or hashed_id is required")
        hashed_id = end_user_hash(chatbot_id=chatbot.pk, user_id=user_id)
    totals, touched_clusters = _conversations_delete_batched(
        chatbot=chatbot, where={"end_user_hash": hashed_id}, batch_size=batch_size
    )

    from apps.feedback.services import feedback_delete

    for feedback_id in Feedback.objects.filter(chatbot=chatbot, voter_key=hashed_id).values_list("id", flat=True):
        if feedback_delete(feedback_id=feedback_id):
            totals.counts["feedback"] += 1
    clusters_recount(cluster_ids=touched_clusters)

    result = ErasureResult(end_user_hash=hashed_id, counts=totals.as_dict())
    audit_event_record(
        action="privacy.end_user_erased",
        actor=actor,
        actor_label=actor_label,
        chatbot=chatbot,
        data={"end_user_hash_prefix": result.hash_prefix, "via": via, "deleted": result.counts},
    )
    return result


def conversations_erase(*, conversation_ids: list[int], actor: Any = None) -> dict[int, ErasureResult]:
    """The admin action: erase the end users of these conversations (or, when a conversation
    has no end user, that conversation alone). One AuditEvent per end user / conversation."""
    results: dict[int, ErasureResult] = {}
    rows = list(Conversation.objects.filter(pk__in=conversation_ids).values_list("id", "chatbot_id", "end_user_hash"))
    done: set[tuple[int, str]] = set()
    chatbots = {c.pk: c for c in Chatbot.objects.filter(pk__in={r[1] for r in rows})}
    for conversation_id, chatbot_id, hashed in rows:
        chatbot = chatbots[chatbot_id]
        if hashed:
            if (chatbot_id, hashed) in done:
                continue
            done.add((chatbot_id, hashed))
            results[conversation_id] = end_user_erase(chatbot=chatbot, hashed_id=hashed, actor=actor, via="admin")
            continue
        per_model, clusters = _conversations_delete(ids=[conversation_id])
        clusters_recount(cluster_ids=clusters)
        counts = DeletionCounts()
        counts.add(per_model)
        results[conversation_id] = ErasureResult(end_user_hash="", counts=counts.as_dict())
        audit_event_record(
            action="privacy.conversation_erased", actor=actor, chatbot=chatbot,
            data={"conversation_id": conversation_id, "via": "admin", "deleted": counts.as_dict()},
        )
    return results


def retention_purge(*, now: datetime | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Delete conversations whose last activity is older than their chatbot's retention_days.

    Bounded batches (PRIVACY_RETENTION_BATCH ids per transaction) keep each lock short; the
    age is re-checked under the lock, so a conversation that just got a new turn survives.
    chatmon's own model calls with no conversation (cluster labels, embeddings) hold turn
    text too and follow the same cut-off. One AuditEvent per chatbot that lost data, and one
    for the run.
    """
    now = now or timezone.now()
    batch_size = batch_size or settings.PRIVACY_RETENTION_BATCH
    report: dict[str, Any] = {"chatbots": {}, "deleted": Counter()}
    touched_clusters: set[int] = set()
    for chatbot in Chatbot.objects.filter(retention_days__gt=0).order_by("id"):
        cutoff = now - timedelta(days=chatbot.retention_days)
        totals, clusters = _conversations_delete_batched(
            chatbot=chatbot, where={"last_activity_at__lt": cutoff}, batch_size=batch_size
        )
        touched_clusters |= clusters
        while True:
            call_ids = list(
                LLMCall.objects.filter(chatbot=chatbot, conversation__isnull=True, timestamp__lt=cutoff)
                .values_list("id", flat=True)[:batch_size]
            )
            if not call_ids:
                break
            _, per_model = LLMCall.objects.filter(pk__in=call_ids).delete()
            totals.add(per_model)
        if totals.total:
            counts = totals.as_dict()
            report["chatbots"][chatbot.pk] = counts
            report["deleted"].update(counts)
            audit_event_record(
                action="privacy.retention_purged", actor_label="system", chatbot=chatbot,
                data={"retention_days": chatbot.retention_days, "cutoff": cutoff.isoformat(), "deleted": counts},
            )
    clusters_recount(cluster_ids=touched_clusters)
    report["deleted"] = dict(report["deleted"])
    audit_event_record(
        action="privacy.retention_run", actor_label="system",
        data={"chatbots": len(report["chatbots"]), "deleted": report["deleted"]},
    )
    logger.info("retention: deleted %s", report["deleted"])
    return report
