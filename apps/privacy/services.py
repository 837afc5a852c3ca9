"""Erasure and retention: delete an end user's data, or everything past a chatbot's retention.

Both work in bounded batches, one short transaction per batch, taking the conversation row
locks first (the lock order of apps/conversations/services.py) so they never deadlock with
ingest, feedback or the judge.

Retention deletes whole conversations. Erasure deletes the end user's turns: each turn records
its end user (Turn.end_user_hash), and a conversation can hold several (a shared thread). A
conversation goes whole when none of its turns is another user's; otherwise only the user's
turns go and apps.conversations recomputes the conversation's summary from the turns left.
Deleting a turn cascades to its LLM calls (the bot's and the judge's), evaluations, feedback,
cached embeddings and cluster memberships; the clusters that lost members are recounted and
relabelled from the members left, and the labeling-model calls that quoted them are deleted
(apps/clustering/recount.py). Every run writes one AuditEvent with counts, never personal data.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_event_record
from apps.chatbots.models import Chatbot
from apps.clustering.recount import clusters_of_conversations, clusters_of_turns, clusters_recount
from apps.conversations.choices import CallPurpose, Consent, JudgeStatus, consent_strictest
from apps.conversations.models import Conversation, EndUserSession, LLMCall, Turn
from apps.conversations.services import conversation_summary_recompute, conversations_lock
from apps.feedback.models import Feedback

from .hashing import end_user_hash
from .models import EndUserConsent
from .policy import NO_CONTENT_MARKER

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
    "conversations.EndUserSession": "sessions",
    # Dataset items copied from the turns (they cascade with them), and their experiment results.
    "datasets.DatasetItem": "dataset_items",
    "datasets.ExperimentItemResult": "experiment_results",
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
    """Delete these conversations (re-checked under lock) in one transaction, then the end-user
    sessions that named them.

    Returns the per-model counts and the clusters that lost members.
    """
    with transaction.atomic():
        locked = conversations_lock(conversation_ids=ids, where=extra_filter)
        if not locked:
            return {}, set()
        names = list(Conversation.objects.filter(pk__in=locked).values_list("chatbot_id", "external_id"))
        clusters = clusters_of_conversations(conversation_ids=locked)
        _, per_model = Conversation.objects.filter(pk__in=locked).delete()
    per_model = Counter(per_model)
    per_model.update(_sessions_of_deleted_delete(names=names))
    return dict(per_model), clusters


def _sessions_of_deleted_delete(*, names: list[tuple[int, str]]) -> dict[str, int]:
    """The sessions (turns sent without a conversation id) that named these deleted conversations.

    After the conversations' transaction, on its own: ingest locks session rows before
    conversation rows (lock step 0), so taking them here while holding conversation locks
    could deadlock. A session that a concurrent turn has meanwhile pointed at a live
    conversation of that name is kept (the subquery re-checks).
    """
    by_chatbot: dict[int, list[str]] = {}
    for chatbot_id, external_id in names:
        by_chatbot.setdefault(chatbot_id, []).append(external_id)
    per_model: Counter = Counter()
    for chatbot_id, external_ids in by_chatbot.items():
        per_model.update(
            EndUserSession.objects.filter(chatbot_id=chatbot_id, conversation_external_id__in=external_ids)
            .exclude(conversation_external_id__in=Conversation.objects.filter(
                chatbot_id=chatbot_id, external_id__in=external_ids).values("external_id"))
            .delete()[1]
        )
    return dict(per_model)



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


def _end_user_turns(*, conversation_ids: list[int], hashed_id: str):
    """The end user's turns in these conversations: those sent with their id, and those sent
    with no id at all in a conversation whose (first) end user they are — the turns that were
    theirs before turns recorded an end user each."""
    return Turn.objects.filter(conversation_id__in=conversation_ids).filter(
        Q(end_user_hash=hashed_id) | Q(end_user_hash="", conversation__end_user_hash=hashed_id)
    )


def _end_user_turns_delete(*, conversation_ids: list[int], hashed_id: str) -> tuple[dict[str, int], set[int], set[str]]:
    """Delete one end user's turns of these conversations in one transaction, under the locks.

    A conversation left with no turn goes whole; one that keeps other users' turns gets its
    summary recomputed. Returns the per-model counts, the clusters that lost members, and the
    texts of the deleted turns that were cluster representatives (what title calls quoted).
    """
    per_model: Counter = Counter()
    with transaction.atomic():
        locked = conversations_lock(conversation_ids=conversation_ids)
        if not locked:
            return {}, set(), set()
        turns = list(_end_user_turns(conversation_ids=locked, hashed_id=hashed_id).values_list("id", "conversation_id"))
        turn_ids = [t for t, _ in turns]
        clusters = clusters_of_turns(turn_ids=turn_ids)
        quoted = set(
            Turn.objects.filter(pk__in=turn_ids, cluster_memberships__is_representative=True)
            .values_list("user_message", flat=True)
        )
        kept = set(
            Turn.objects.filter(conversation_id__in=locked).exclude(pk__in=turn_ids)
            .values_list("conversation_id", flat=True).distinct()
        )
        whole = [c for c in locked if c not in kept]
        if whole:
            clusters |= clusters_of_conversations(conversation_ids=whole)
            _, deleted = Conversation.objects.filter(pk__in=whole).delete()
            per_model.update(deleted)
        partial = [t for t, c in turns if c in kept]
        if partial:
            _, deleted = Turn.objects.filter(pk__in=partial).delete()
            per_model.update(deleted)
            conversation_summary_recompute(conversation_ids=kept)
    return dict(per_model), clusters, quoted


def _pending_span_calls_delete(*, chatbot: Chatbot, hashed_id: str) -> dict[str, int]:
    """OTLP calls of content-less spans whose log events (and so their turn) never came: they
    name their end user only in metadata["otel"] (apps/otel/services.py). Deleted under the
    conversation locks; a conversation left with neither turns nor calls goes too, the others
    get their summaries recomputed."""
    pending = LLMCall.objects.filter(chatbot=chatbot, turn__isnull=True, metadata__otel__end_user_hash=hashed_id)
    ids = sorted({c for c in pending.values_list("conversation_id", flat=True) if c is not None})
    if not ids:
        return {}
    per_model: Counter = Counter()
    with transaction.atomic():
        locked = conversations_lock(conversation_ids=ids)
        per_model.update(pending.filter(conversation_id__in=locked).delete()[1])
        empty = list(Conversation.objects.filter(pk__in=locked, turns__isnull=True, llm_calls__isnull=True)
                     .values_list("id", flat=True))
        if empty:
            per_model.update(Conversation.objects.filter(pk__in=empty).delete()[1])
        conversation_summary_recompute(conversation_ids=set(locked) - set(empty))
    return dict(per_model)


def _legacy_title_calls_delete(*, chatbot: Chatbot, quoted: set[str]) -> int:
    """Labeling-model calls recorded before they named their cluster (no link in metadata) that
    quote one of these texts as an example message (titles.py quotes `- <first 300 chars>`)."""
    deleted = 0
    unlinked = LLMCall.objects.filter(chatbot=chatbot, purpose=CallPurpose.LABELING).exclude(
        metadata__has_key="cluster_run_id"
    )
    for text in quoted:
        if text[:300].strip():
            deleted += unlinked.filter(input_text__contains=f"- {text[:300]}").delete()[0]
    return deleted


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
    """Erase every turn of one end user of one chatbot, and their votes elsewhere.

    1. The end user is found by the same normalised HMAC ingest stores (apps.privacy.hashing),
       or by a stored hash (the admin).
    2. The conversations holding one of their turns, in batches: their turns go (with calls,
       evaluations, feedback, embeddings, cluster memberships); a conversation with no other
       user's turn goes whole, the others get their summaries recomputed.
    3. Their votes on other people's turns of this chatbot go through the feedback service, so
       those turns' and conversations' thumbs counters and flags stay exact.
    4. Clusters that lost members are recounted and relabelled, the labeling-model calls that
       quoted them deleted; one AuditEvent records the counts, which the API answers.
    """
    if not hashed_id:
        hashed_id = end_user_hash(chatbot_id=chatbot.pk, user_id=user_id)
        if not hashed_id:
            raise ValueError("user_id or hashed_id is required")
    totals = DeletionCounts()
    touched_clusters: set[int] = set()
    quoted: set[str] = set()
    done: set[int] = set()
    theirs = Q(end_user_hash=hashed_id) | Q(
        pk__in=Turn.objects.filter(chatbot=chatbot, end_user_hash=hashed_id).values("conversation_id")
    )
    while True:
        ids = list(
            Conversation.objects.filter(theirs, chatbot=chatbot).exclude(pk__in=done)
            .order_by("id").values_list("id", flat=True)[:batch_size]
        )
        if not ids:
            break
        done.update(ids)
        per_model, clusters, texts = _end_user_turns_delete(conversation_ids=ids, hashed_id=hashed_id)
        totals.add(per_model)
        touched_clusters |= clusters
        quoted |= texts

    totals.add(_pending_span_calls_delete(chatbot=chatbot, hashed_id=hashed_id))

    from apps.feedback.services import feedback_delete

    for feedback_id in Feedback.objects.filter(chatbot=chatbot, voter_key=hashed_id).values_list("id", flat=True):
        if feedback_delete(feedback_id=feedback_id):
            totals.counts["feedback"] += 1
    totals.counts["llm_calls"] += clusters_recount(cluster_ids=touched_clusters)
    totals.counts["llm_calls"] += _legacy_title_calls_delete(chatbot=chatbot, quoted=quoted)
    # The user's open sessions (turns sent without a conversation id) name them by hash too.
    totals.add(EndUserSession.objects.filter(chatbot=chatbot, end_user_hash=hashed_id).delete()[1])

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
    """The admin action: erase every end user with a turn in these conversations (all their
    data in that chatbot), then whatever of the conversations is left (turns sent without an
    end user). One AuditEvent per end user, and one per conversation erased on its own.

    Returns the results by conversation id: an end user's under the first selected
    conversation they appear in.
    """
    results: dict[int, ErasureResult] = {}
    rows = list(Conversation.objects.filter(pk__in=conversation_ids).values_list("id", "chatbot_id", "end_user_hash"))
    chatbots = {c.pk: c for c in Chatbot.objects.filter(pk__in={r[1] for r in rows})}
    users: dict[tuple[int, str], int] = {}
    for conversation_id, chatbot_id, hashed in sorted(rows):
        turn_users = (
            Turn.objects.filter(conversation_id=conversation_id).exclude(end_user_hash="")
            .values_list("end_user_hash", flat=True).distinct()
        )
        for user in sorted({hashed, *turn_users} - {""}):
            users.setdefault((chatbot_id, user), conversation_id)
    for (chatbot_id, hashed), conversation_id in users.items():
        result = end_user_erase(chatbot=chatbots[chatbot_id], hashed_id=hashed, actor=actor, via="admin")
        if conversation_id in results:
            merged = Counter(results[conversation_id].counts)
            merged.update(result.counts)
            result = ErasureResult(end_user_hash=results[conversation_id].end_user_hash, counts=dict(merged))
        results[conversation_id] = result
    for conversation_id, chatbot_id, _ in rows:
        counts = _conversation_delete_audited(conversation_id=conversation_id, chatbot=chatbots[chatbot_id],
                                              actor=actor, action="privacy.conversation_erased")
        if counts is None:
            continue
        previous = results.get(conversation_id)
        if previous is not None:
            merged = Counter(previous.counts)
            merged.update(counts.as_dict())
            results[conversation_id] = ErasureResult(end_user_hash=previous.end_user_hash, counts=dict(merged))
        else:
            results[conversation_id] = ErasureResult(end_user_hash="", counts=counts.as_dict())
    return results


def _conversation_delete_audited(*, conversation_id: int, chatbot: Chatbot, actor: Any, action: str,
                                 via: str = "admin") -> DeletionCounts | None:
    """Delete one conversation with everything attached, recount the clusters it leaves, record
    one AuditEvent naming it by internal id; None when it was already gone."""
    per_model, clusters = _conversations_delete(ids=[conversation_id])
    if not per_model:
        return None
    counts = DeletionCounts()
    counts.add(per_model)
    counts.counts["llm_calls"] += clusters_recount(cluster_ids=clusters)
    audit_event_record(
        action=action, actor=actor, chatbot=chatbot,
        data={"conversation_id": conversation_id, "via": via, "deleted": counts.as_dict()},
    )
    return counts


def conversations_delete(*, conversation_ids: list[int], actor: Any = None) -> dict[str, int]:
    """The admin's plain delete (delete view, "delete selected"): these conversations go with
    everything attached, as retention deletes them — clusters that lost members recounted and
    relabelled, the labeling calls that quoted them deleted, the sessions naming them deleted,
    one `privacy.conversation_deleted` AuditEvent per conversation by internal id.

    Unlike `conversations_erase` (the erasure action) it does not reach the end users' data in
    other conversations: deleting a conversation is not erasing a person. Returns the counts.
    """
    totals = DeletionCounts()
    rows = list(Conversation.objects.filter(pk__in=conversation_ids).order_by("id").values_list("id", "chatbot_id"))
    chatbots = {c.pk: c for c in Chatbot.objects.filter(pk__in={c for _, c in rows})}
    for conversation_id, chatbot_id in rows:
        counts = _conversation_delete_audited(conversation_id=conversation_id, chatbot=chatbots[chatbot_id],
                                              actor=actor, action="privacy.conversation_deleted")
        if counts is not None:
            totals.counts.update(counts.counts)
    return totals.as_dict()


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
        # Sessions the deletions above did not name: closed ones (their conversation ended) and
        # those idle past the cut-off whose conversation is gone (deleted before sessions were).
        totals.add(
            EndUserSession.objects.filter(chatbot=chatbot)
            .filter(Q(conversation_external_id="") | Q(last_activity_at__lt=cutoff))
            .exclude(conversation_external_id__in=Conversation.objects.filter(chatbot=chatbot).values("external_id"))
            .delete()[1]
        )
        if totals.total:
            counts = totals.as_dict()
            report["chatbots"][chatbot.pk] = counts
            report["deleted"].update(counts)
            audit_event_record(
                action="privacy.retention_purged", actor_label="system", chatbot=chatbot,
                data={"retention_days": chatbot.retention_days, "cutoff": cutoff.isoformat(), "deleted": counts},
            )
    title_calls = clusters_recount(cluster_ids=touched_clusters)
    if title_calls:
        report["deleted"]["llm_calls"] += title_calls
    report["deleted"] = dict(report["deleted"])
    audit_event_record(
        action="privacy.retention_run", actor_label="system",
        data={"chatbots": len(report["chatbots"]), "deleted": report["deleted"]},
    )
    logger.info("retention: deleted %s", report["deleted"])
    return report


# --- consent (issue 18) ------------------------------------------------------------------------

# What each model stores of what was said: texts become the marker, JSON of texts becomes {}.
_WITHHELD_TEXTS = {
    "turn": ("user_message", "bot_response", "error", "conversation_message", "corrected_answer"),
    "step": ("input_text", "output_text", "error"),
    "llm_call": ("input_text", "output_text", "error"),
    "evaluation": ("reasoning",),
    "feedback": ("comment",),
    "score": ("comment",),
}


def _texts_withhold(queryset: Any, fields: tuple[str, ...], json_fields: tuple[str, ...] = ()) -> int:
    """Replace every non-empty text of `fields` by the marker (one UPDATE per field); rows touched."""
    touched: set[int] = set()
    for name in fields:
        rows = queryset.exclude(**{name: ""}).exclude(**{name: NO_CONTENT_MARKER})
        ids = list(rows.values_list("pk", flat=True))
        if ids:
            queryset.model.objects.filter(pk__in=ids).update(**{name: NO_CONTENT_MARKER})
            touched.update(ids)
    for name in json_fields:
        ids = list(queryset.exclude(**{name: {}}).values_list("pk", flat=True))
        if ids:
            queryset.model.objects.filter(pk__in=ids).update(**{name: {}})
            touched.update(ids)
    return len(touched)


def _turns_content_withhold(*, turn_ids: list[int], loose_calls: Any = None) -> tuple[Counter, set[int]]:
    """Withhold what is stored of these turns, as a no_content turn is stored (the caller holds
    their conversations' locks): texts of the turns, their steps, LLM calls (the bot's and the
    judge's, whose prompts quote the turn), evaluations' reasoning, feedback and score comments.
    The turns leave clustering (embeddings and memberships deleted; the caller recounts the
    clusters returned) and a pending judgement is cancelled. Metrics, scores and flags stay."""
    from apps.clustering.models import ClusterMember, TurnEmbedding
    from apps.conversations.models import Step
    from apps.evaluations.models import Evaluation
    from apps.scores.models import Score

    counts: Counter = Counter()
    turns = Turn.objects.filter(pk__in=turn_ids)
    counts["turns"] = _texts_withhold(turns, _WITHHELD_TEXTS["turn"], ("debug_info",))
    counts["steps"] = _texts_withhold(Step.objects.filter(turn_id__in=turn_ids), _WITHHELD_TEXTS["step"], ("metadata",))
    calls = LLMCall.objects.filter(turn_id__in=turn_ids)
    counts["llm_calls"] = _texts_withhold(calls, _WITHHELD_TEXTS["llm_call"])
    if loose_calls is not None:
        counts["llm_calls"] += _texts_withhold(loose_calls, _WITHHELD_TEXTS["llm_call"])
    counts["evaluations"] = _texts_withhold(Evaluation.objects.filter(turn_id__in=turn_ids),
                                            _WITHHELD_TEXTS["evaluation"], ("signals",))
    counts["feedback"] = _texts_withhold(Feedback.objects.filter(turn_id__in=turn_ids), _WITHHELD_TEXTS["feedback"])
    counts["scores"] = _texts_withhold(Score.objects.filter(turn_id__in=turn_ids), _WITHHELD_TEXTS["score"])
    clusters = clusters_of_turns(turn_ids=turn_ids)
    counts["cluster_memberships"] = ClusterMember.objects.filter(turn_id__in=turn_ids).delete()[0]
    counts["embeddings"] = TurnEmbedding.objects.filter(turn_id__in=turn_ids).delete()[0]
    turns.filter(judge_status=JudgeStatus.PENDING).update(judge_status=JudgeStatus.NOT_SAMPLED)
    Evaluation.objects.filter(turn_id__in=turn_ids, status="pending", attempts=0).delete()
    return counts, clusters


def conversations_content_withhold(*, conversation_ids: list[int]) -> dict[str, int]:
    """Withhold everything stored of these conversations (they just became no_content): their
    turns as `_turns_content_withhold` does, their LLM calls without a turn, and the score
    comments on the conversation. Runs in the caller's transaction when there is one (ingest,
    under the conversation locks), else in its own."""
    from apps.scores.models import Score

    with transaction.atomic():
        locked = conversations_lock(conversation_ids=conversation_ids)
        turn_ids = list(Turn.objects.filter(conversation_id__in=locked).values_list("id", flat=True))
        counts, clusters = _turns_content_withhold(
            turn_ids=turn_ids, loose_calls=LLMCall.objects.filter(conversation_id__in=locked, turn__isnull=True))
        counts["scores"] += _texts_withhold(Score.objects.filter(conversation_id__in=locked, turn__isnull=True),
                                            _WITHHELD_TEXTS["score"])
        clusters_recount(cluster_ids=clusters)
    return dict(counts)


@dataclass
class ConsentResult:
    end_user_hash: str
    consent: str
    conversations: int
    withheld: dict[str, int]


def end_user_consent_set(*, chatbot: Chatbot, user_id: str, consent: str, actor_label: str = "",
                         batch_size: int = 200) -> ConsentResult:
    """An end user states their consent (or withdraws it) for one chatbot.

    1. Their EndUserConsent row says what applies to their future turns (ingest reads it under
       the conversation lock): the value stated now, even a looser one.
    2. Their conversations (those holding one of their turns, as erasure finds them) become at
       least this strict, in batches under the conversation locks; none ever gets looser.
    3. no_content: what is stored of their turns is withheld as if it had arrived under
       no_content (texts → the marker, steps, LLM calls, the judge's reasoning, feedback and
       score comments; out of clustering, with the clusters recounted and relabelled from the
       members left, as erasure does), plus the OTLP calls that name them. Other end users'
       turns in a shared conversation keep their texts; that conversation's future turns store
       none. no_training: only the mark (exports read it).
    4. One AuditEvent with the hash prefix and the counts.
    """
    hashed_id = end_user_hash(chatbot_id=chatbot.pk, user_id=user_id)
    if not hashed_id:
        raise ValueError("user_id is required")
    EndUserConsent.objects.update_or_create(chatbot=chatbot, end_user_hash=hashed_id, defaults={"consent": consent})
    totals: Counter = Counter()
    touched_clusters: set[int] = set()
    quoted: set[str] = set()
    marked = 0
    theirs = Q(end_user_hash=hashed_id) | Q(
        pk__in=Turn.objects.filter(chatbot=chatbot, end_user_hash=hashed_id).values("conversation_id")
    )
    done: set[int] = set()
    while True:
        ids = list(Conversation.objects.filter(theirs, chatbot=chatbot).exclude(pk__in=done)
                   .order_by("id").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        done.update(ids)
        with transaction.atomic():
            locked = conversations_lock(conversation_ids=ids)
            looser = [pk for pk, current in Conversation.objects.filter(pk__in=locked).values_list("id", "consent")
                      if consent_strictest(current, consent) != current]
            marked += Conversation.objects.filter(pk__in=looser).update(consent=consent)
            if consent == Consent.NO_CONTENT:
                turn_ids = list(_end_user_turns(conversation_ids=locked, hashed_id=hashed_id)
                                .values_list("id", flat=True))
                quoted |= set(Turn.objects.filter(pk__in=turn_ids, cluster_memberships__is_representative=True)
                              .values_list("user_message", flat=True))
                counts, clusters = _turns_content_withhold(
                    turn_ids=turn_ids,
                    loose_calls=LLMCall.objects.filter(conversation_id__in=locked, turn__isnull=True).filter(
                        Q(metadata__otel__end_user_hash=hashed_id)
                        | Q(conversation__end_user_hash=hashed_id)),
                )
                totals.update(counts)
                touched_clusters |= clusters
    if touched_clusters:
        clusters_recount(cluster_ids=touched_clusters)
    # Labeling calls recorded before they named their cluster, quoting a withheld message.
    _legacy_title_calls_delete(chatbot=chatbot, quoted={q for q in quoted if q != NO_CONTENT_MARKER})
    result = ConsentResult(end_user_hash=hashed_id, consent=consent, conversations=marked,
                           withheld={k: v for k, v in sorted(totals.items())})
    audit_event_record(
        action="privacy.end_user_consent", actor_label=actor_label, chatbot=chatbot,
        data={"end_user_hash_prefix": hashed_id[:12], "consent": consent, "conversations": marked,
              "withheld": result.withheld},
    )
    return result
