"""The ingest write path, shared by the REST API, OTLP ingest, seed_demo and replay_convai2.

`turns_ingest` stores a batch of turns in one transaction:

1. Outside the transaction, per turn: tokens (tiktoken when absent), cost (ModelPrice when
   absent), risk score (cached compiled rules), judge sampling, end-user hash (stored on the
   turn, and on a new conversation as its first end user), then PII redaction of the texts
   (the chatbot's policy, apps.privacy.policy): only redacted text is stored.
2. Turns sent without a conversation id first join their end user's session (lock step 0,
   apps.conversations.services.sessions_assign_lock). Upsert the batch's conversations
   (INSERT … ON CONFLICT DO NOTHING), then lock them with
   SELECT … FOR UPDATE in id order (apps.conversations.services, which owns the lock order
   and the summaries), so concurrent batches for one conversation serialise here.
3. Under the lock, find turns already stored under the same turn_id (replays) and repeats
   inside the batch; their outcome is the original turn, and nothing is stored.
4. Bulk-insert the new turns and their LLM calls; link calls that arrived earlier for them.
5. Count the new turns into the conversation summaries (counts, tokens, cost, errors, risk,
   flags, activity): `conversation_turns_add`, one UPDATE … FROM (VALUES …).
6. Under the same lock, what the new payload fields add: the turns' steps (one bulk insert),
   their bot-reported scores (hallucinated, handoff: one bulk insert), inline ratings (the
   feedback service, as the widget's votes), and conversation events (start, end, feedback).
   A turn without these fields costs no query here.
7. After commit: enqueue the judge for sampled turns and risk alerts for flagged ones. A broker
   outage there is logged, never raised: the turn is stored and the sweepers catch up.
"""

import dataclasses
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, models, transaction
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.choices import (
    Consent,
    FlagReason,
    JudgeStatus,
    RiskLevel,
    consent_strictest,
)
from apps.conversations.fingerprints import step_fingerprint
from apps.conversations.models import Conversation, LLMCall, Step, Turn
from apps.conversations.services import (
    ConversationSeed,
    SessionTurn,
    TurnAdded,
    conversation_calls_add,
    conversation_end,
    conversation_summaries_statement,
    conversation_turns_add,
    conversation_turns_count,
    conversations_get_or_create_lock,
    sessions_assign_lock,
)
from apps.core.db import (
    INSERTED_EXISTS,
    bulk_copy_insert,
    connection_lost,
    health_check_defer,
    insert_unless_conflict,
    prepared_cursor,
    rows_insert_statement,
)
from apps.core.metrics import INGEST_ITEMS
from apps.core.pricing import cost_for
from apps.core.tokens import count_tokens
from apps.evaluations.sampling import turn_is_sampled
from apps.privacy.hashing import end_user_hash
from apps.privacy.policy import json_redact_for, text_redact_for, text_withheld
from apps.privacy.redaction import counts_merge
from apps.risk.scoring import RiskVerdict, risk_score, rules_for_chatbot

from .validation import (
    CONVERSATION_EVENTS,
    CallInput,
    StepInput,
    TurnInput,
    ValidationFailed,
    parse_call,
    parse_turn,
)

logger = logging.getLogger(__name__)

_INTEGRITY_RETRIES = 3


@dataclass(frozen=True)
class TurnOutcome:
    """One turn's outcome: stored now (`created`), or a replay answered with the turn stored
    under its turn_id before (or earlier in the same batch)."""

    created: bool
    turn: Turn
    conversation_external_id: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventOutcome:
    """A conversation event (start, end, feedback): applied to its conversation, no turn stored."""

    event: str
    conversation: Conversation
    turn: Turn | None = None  # the turn a feedback event rated
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallOutcome:
    """One LLM call's outcome: stored now, or a replay of the call stored under its call_id."""

    created: bool
    call: LLMCall
    conversation_external_id: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemRejected:
    """A batch item that failed validation; the other items are stored all the same."""

    index: int
    errors: dict[str, Any]


@dataclass
class _PreparedCall:
    data: CallInput
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    cost_usd: Decimal
    pii_found: dict[str, int] = field(default_factory=dict)


@dataclass
class _PreparedTurn:
    index: int
    data: TurnInput
    prompt_tokens: int
    completion_tokens: int
    tokens_estimated: bool
    cost_usd: Decimal
    calls: list[_PreparedCall]
    verdict: RiskVerdict
    flag_reasons: list[str]
    sampled: bool
    end_user_hash: str
    total_tokens: int = 0
    pii_found: dict[str, int] = field(default_factory=dict)
    total_cost_usd: Decimal = field(default_factory=Decimal)
    # (step as stored: redacted, fingerprint, shape)
    steps: list[tuple[StepInput, str, str]] = field(default_factory=list)

    def with_calls(self, calls: list[_PreparedCall]) -> "_PreparedTurn":
        """This turn carrying `calls`, its totals being its own tokens and cost plus theirs."""
        return dataclasses.replace(
            self, calls=calls,
            total_tokens=self.prompt_tokens + self.completion_tokens + sum(c.input_tokens + c.output_tokens for c in calls),
            total_cost_usd=self.cost_usd + sum((c.cost_usd for c in calls), Decimal(0)),
        )


def _call_prepare(call: CallInput, *, chatbot: Chatbot, default_model: str, at: Any) -> _PreparedCall:
    model = call.model or default_model
    estimated = False
    input_tokens, output_tokens = call.input_tokens, call.output_tokens
    if input_tokens is None:
        counted = count_tokens(call.input_text, model=model)
        input_tokens, estimated = counted.tokens, counted.estimated
    if output_tokens is None:
        counted = count_tokens(call.output_text, model=model)
        output_tokens, estimated = counted.tokens, estimated or counted.estimated
    cost = call.cost_usd if call.cost_usd is not None else cost_for(model, input_tokens, output_tokens, call.timestamp or at)
    # Tokens and cost are measured on what the bot really sent; only the redacted text is stored.
    call, pii_found = _texts_redact(chatbot, call, ("input_text", "output_text", "error"))
    return _PreparedCall(call, input_tokens, output_tokens, estimated, cost, pii_found)


def _texts_redact(chatbot: Chatbot, data: Any, fields: tuple[str, ...]) -> tuple[Any, dict[str, int]]:
    """A copy of `data` with `fields` as the chatbot's redaction policy stores them, and the
    counts per kind (apps.privacy.policy)."""
    found: list[dict[str, int]] = []
    changes = {}
    for name in fields:
        text, counts = text_redact_for(chatbot, getattr(data, name))
        if counts:
            changes[name] = text
            found.append(counts)
    return (dataclasses.replace(data, **changes) if changes else data), counts_merge(*found)


def _steps_prepare(chatbot: Chatbot, steps: list[StepInput]) -> tuple[list[tuple[StepInput, str, str]], dict[str, int]]:
    """Steps as stored (texts and metadata redacted by the chatbot's policy) with their fingerprints."""
    prepared, found = [], []
    for step in steps:
        step, counts = _texts_redact(chatbot, step, ("input_text", "output_text", "error"))
        if step.metadata:
            metadata, metadata_counts = json_redact_for(chatbot, step.metadata)
            step = dataclasses.replace(step, metadata=metadata)
            found.append(metadata_counts)
        found.append(counts)
        fingerprint, shape = step_fingerprint(kind=step.kind, name=step.name, input_text=step.input_text)
        prepared.append((step, fingerprint, shape))
    return prepared, counts_merge(*found)


def _event_prepare(chatbot: Chatbot, index: int, data: TurnInput) -> _PreparedTurn:
    """A conversation event: nothing to count, score, judge or redact (it stores no text)."""
    return _PreparedTurn(
        index=index, data=data, prompt_tokens=0, completion_tokens=0, tokens_estimated=False, cost_usd=Decimal(0),
        calls=[], verdict=RiskVerdict(score=0, level=RiskLevel.LOW, reasons=[]), flag_reasons=[], sampled=False,
        end_user_hash=end_user_hash(chatbot_id=chatbot.pk, user_id=data.user_id) if data.user_id else "",
    )


def _turn_prepare(chatbot: Chatbot, index: int, data: TurnInput, rules: list) -> _PreparedTurn:
    if data.event in CONVERSATION_EVENTS:
        return _event_prepare(chatbot, index, data)
    model = data.model or chatbot.model
    calls = [_call_prepare(c, chatbot=chatbot, default_model=model, at=data.timestamp) for c in data.llm_calls]
    estimated = False
    prompt, completion = data.prompt_tokens, data.completion_tokens
    # A turn that lists its LLM calls is measured by them; otherwise count the texts we see.
    if prompt is None:
        if calls:
            prompt = 0
        else:
            counted = count_tokens(data.user_message, model=model)
            prompt, estimated = counted.tokens, counted.estimated
    if completion is None:
        if calls:
            completion = 0
        else:
            counted = count_tokens(data.bot_response, model=model)
            completion, estimated = counted.tokens, estimated or counted.estimated
    cost = data.cost_usd if data.cost_usd is not None else cost_for(model, prompt, completion, data.timestamp)

    if chatbot.monitoring_enabled:
        verdict = risk_score(chatbot_id=chatbot.pk, user_message=data.user_message,
                             bot_response=data.bot_response, model=model, rules=rules)
    else:
        verdict = RiskVerdict(score=0, level=RiskLevel.LOW, reasons=[])
    flag_reasons = [FlagReason.RISK.value] if chatbot.monitoring_enabled and verdict.score >= chatbot.risk_threshold else []
    if chatbot.monitoring_enabled and data.hallucinated:
        flag_reasons.append(FlagReason.HALLUCINATION.value)
    sampled = chatbot.monitoring_enabled and chatbot.judge_enabled and turn_is_sampled(
        chatbot_id=chatbot.pk,
        turn_key=f"{data.conversation_id}:{index}:{data.timestamp.isoformat()}"
        if data.turn_id is None else f"{data.conversation_id}:{data.turn_id}",
        sample_rate=chatbot.judge_sample_rate,
    )
    # Risk rules ("Secret leaked in answer") score the original text above; from here on only the
    # redacted text exists: it is what is stored, judged and embedded. Counts, never values.
    data, pii_found = _texts_redact(chatbot, data, ("user_message", "bot_response", "error", "conversation_message"))
    if calls:
        data = dataclasses.replace(data, llm_calls=[c.data for c in calls])
    steps, step_pii = _steps_prepare(chatbot, data.steps) if data.steps else ([], {})
    debug_pii: dict[str, int] = {}
    if data.debug_info:
        debug_info, debug_pii = json_redact_for(chatbot, data.debug_info)
        data = dataclasses.replace(data, debug_info=debug_info)
    # Plus what was redacted before validation (OTLP log content kept while its span was awaited).
    pii_found = counts_merge(pii_found, *(c.pii_found for c in calls), data.pii_found, step_pii, debug_pii)
    prepared = _PreparedTurn(
        index=index, data=data, prompt_tokens=prompt, completion_tokens=completion,
        tokens_estimated=estimated or any(c.tokens_estimated for c in calls), cost_usd=cost, calls=calls,
        verdict=verdict, flag_reasons=flag_reasons, sampled=sampled,
        end_user_hash=end_user_hash(chatbot_id=chatbot.pk, user_id=data.user_id) if data.user_id else data.end_user_hash,
        pii_found=pii_found, steps=steps,
    )
    return prepared.with_calls(calls)


def turns_ingest(*, chatbot: Chatbot, turns: list[TurnInput]) -> list[TurnOutcome | EventOutcome]:
    """Store validated turns; one outcome per input, in order."""
    if not turns:
        return []
    rules = rules_for_chatbot(chatbot.pk) if chatbot.monitoring_enabled else []
    prepared = [_turn_prepare(chatbot, i, t, rules) for i, t in enumerate(turns)]
    results, new_turns = _atomic_retrying(lambda: _turns_store(chatbot, prepared))
    _after_commit(chatbot, new_turns)
    _count_items("turn", results)
    return results


def _stored_call_ids(conversations: Iterable[Conversation], prepared: list[_PreparedTurn]) -> set[tuple[int, str]]:
    """(conversation id, call_id) of the listed calls' ids that are already stored: one query."""
    call_ids = {call.data.call_id for item in prepared for call in item.calls if call.data.call_id}
    if not call_ids:
        return set()
    conversation_ids = [c.pk for c in conversations]
    if connection.vendor != "postgresql":
        return set(
            LLMCall.objects.filter(conversation_id__in=conversation_ids, external_id__in=call_ids)
            .values_list("conversation_id", "external_id")
        )
    # Prepared: it runs for every turn that lists its calls, so for every OTLP chat span.
    with prepared_cursor() as cursor:
        cursor.execute(_STORED_CALLS_SQL, [conversation_ids, list(call_ids)])
        return set(cursor.fetchall())


_STORED_CALLS_SQL = (
    f'SELECT "conversation_id", "external_id" FROM "{LLMCall._meta.db_table}" '
    'WHERE "conversation_id" = ANY(%s) AND "external_id" = ANY(%s)'
)


def _calls_deduplicate(item: _PreparedTurn, *, conversation_id: int, seen: set[tuple[int, str]]) -> _PreparedTurn:
    """`item` without the calls whose call_id is in `seen` (which gains the ones kept), with the
    turn's totals measured by the calls it keeps."""
    kept: list[_PreparedCall] = []
    for call in item.calls:
        key = (conversation_id, call.data.call_id)
        if call.data.call_id and key in seen:
            continue
        if call.data.call_id:
            seen.add(key)
        kept.append(call)
    return item if len(kept) == len(item.calls) else item.with_calls(kept)


def _atomic_retrying(store: Any) -> Any:
    """Run `store` in a transaction; retry when a concurrent writer stored the same external id
    between our check and insert (only possible where row locks are not available): the retry
    then sees it as a replay.

    The connection is not health-checked first (one round trip saved on every request): if it
    is found dead inside `store`, the transaction did not commit, so it runs again, once, on a
    new connection. A connection lost during the COMMIT at the block's end is not retried: the
    outcome is unknown, and the client's retry is answered as a replay."""
    reconnect = health_check_defer()
    attempt = 0
    while True:
        try:
            with transaction.atomic():
                try:
                    return store()
                except DatabaseError as exc:
                    if reconnect and connection_lost():
                        raise _ConnectionLost from exc
                    raise
        except IntegrityError:
            attempt += 1
            if attempt == _INTEGRITY_RETRIES:
                raise
        except _ConnectionLost:
            logger.info("ingest: the database connection was lost before its transaction; reconnecting")
            reconnect = False
            connection.close()


class _ConnectionLost(Exception):
    """The connection died inside an ingest transaction, before COMMIT (see _atomic_retrying)."""


def _count_items(kind: str, results: list[TurnOutcome | EventOutcome] | list[CallOutcome]) -> None:
    stored = sum(1 for r in results if getattr(r, "created", False))
    if stored:
        INGEST_ITEMS.labels(kind, "stored").inc(stored)
    if len(results) > stored:
        INGEST_ITEMS.labels(kind, "replayed").inc(len(results) - stored)


_REPLAY_FIELDS = ("id", "conversation_id", "chatbot_id", "external_id", "risk_score", "risk_level",
                  "is_flagged", "flag_reasons", "created_at")


def _turns_store(chatbot: Chatbot, prepared: list[_PreparedTurn]) -> tuple[list[TurnOutcome | EventOutcome], list[Turn]]:
    now = timezone.now()
    prepared = list(prepared)  # a retry starts again from what was prepared
    # 2. Turns without a conversation id join their end user's session (lock step 0).
    sessionless = [item for item in prepared if not item.data.conversation_id]
    if sessionless:
        assigned = sessions_assign_lock(chatbot=chatbot, turns=[
            SessionTurn(end_user_hash=i.end_user_hash, channel=i.data.channel, timestamp=i.data.timestamp)
            for i in sessionless
        ])
        for item, external_id in zip(sessionless, assigned, strict=True):
            prepared[item.index] = dataclasses.replace(
                item, data=dataclasses.replace(item.data, conversation_id=external_id))
    by_conversation: dict[str, list[_PreparedTurn]] = defaultdict(list)
    for item in prepared:
        by_conversation[item.data.conversation_id].append(item)

    # 2. Upsert and lock the conversations.
    conversations = conversations_get_or_create_lock(chatbot=chatbot, seeds=[
        ConversationSeed(
            external_id=external_id,
            started_at=min(i.data.timestamp for i in items),
            last_activity_at=max(i.data.timestamp for i in items),
            channel=next((i.data.channel for i in items if i.data.channel), ""),
            end_user_hash=next((i.end_user_hash for i in items if i.end_user_hash), ""),
            metadata=next((i.data.metadata for i in items if i.data.metadata), {}),
        )
        for external_id, items in by_conversation.items()
    ])

    # 2b. Consent, under the locks: a no_content turn's texts are replaced before it is built.
    _consent_apply(chatbot, prepared, conversations)

    # 3. Replays: stored before, or repeated inside this batch.
    events = [i for i in prepared if i.data.event in CONVERSATION_EVENTS]
    wanted = {(conversations[i.data.conversation_id].pk, i.data.turn_id) for i in prepared
              if i.data.turn_id and i.data.event not in CONVERSATION_EVENTS}
    stored: dict[tuple[int, str], Turn] = {}
    # One turn with a turn_id on PostgreSQL (the one-POST-per-turn case): no lookup; the insert
    # itself tells a replay (ON CONFLICT DO NOTHING on turn_external_id_per_conversation), so the
    # transaction is upsert+lock, insert, summary. A replay then reads the stored turn.
    insert_detects_replay = len(wanted) == 1 and len(prepared) == 1 and connection.vendor == "postgresql"
    if wanted and not insert_detects_replay:
        candidates = Turn.objects.filter(
            conversation_id__in={c for c, _ in wanted}, external_id__in={t for _, t in wanted}
        ).only(*_REPLAY_FIELDS)
        stored = {(t.conversation_id, t.external_id): t for t in candidates if (t.conversation_id, t.external_id) in wanted}

    # A listed call whose call_id the conversation already has (sent earlier to /llm-calls, so
    # linked below as an early call) or that repeats inside the batch is not stored twice.
    seen_calls = _stored_call_ids(conversations.values(), prepared)

    results: list[TurnOutcome | EventOutcome | None] = [None] * len(prepared)
    first_in_batch: dict[tuple[int, str], int] = {}
    created: dict[int, Turn] = {}  # input index → new turn
    next_sequence = {c.pk: c.turn_count for c in conversations.values()}
    for item in prepared:
        if item.data.event in CONVERSATION_EVENTS:
            continue  # applied below, once the batch's turns are stored
        conversation = conversations[item.data.conversation_id]
        key = (conversation.pk, item.data.turn_id) if item.data.turn_id else None
        if key and key in stored:
            results[item.index] = TurnOutcome(False, stored[key], conversation.external_id)
            continue
        if key and key in first_in_batch:
            continue  # a repeat inside the batch: answered below like a replay of the first
        if key:
            first_in_batch[key] = item.index
        item = _calls_deduplicate(item, conversation_id=conversation.pk, seen=seen_calls)
        prepared[item.index] = item
        next_sequence[conversation.pk] += 1
        created[item.index] = _turn_build(item, chatbot=chatbot, conversation=conversation,
                                          sequence=next_sequence[conversation.pk], now=now)
    new_turns = list(created.values())

    # 4. Insert turns and their calls (COPY with ids reserved first on PostgreSQL).
    if insert_detects_replay and new_turns:
        [(index, turn)] = created.items()
        if _turn_alone(prepared[index], turn):
            return _turn_alone_store(chatbot, prepared[index], turn, results, now=now)
        if not insert_unless_conflict(turn, conflict_fields=("conversation", "external_id")):
            results[index] = TurnOutcome(False, _stored_turn(turn), turn.conversation.external_id)
            return results, []  # type: ignore[return-value]
    else:
        bulk_copy_insert(new_turns)
    calls = [
        _llm_call_build(call, chatbot=chatbot, conversation=turn.conversation, turn=turn, at=turn.timestamp)
        for index, turn in created.items()
        for call in prepared[index].calls
    ]
    if calls:
        bulk_copy_insert(calls)

    # 5. Conversation summaries, exact because the rows are locked.
    conversation_turns_add(added=[
        TurnAdded(turn=turn, end_user_hash=prepared[index].end_user_hash, channel=prepared[index].data.channel)
        for index, turn in created.items()
    ], now=now)
    _early_calls_link([t for t in new_turns if t.conversation.has_early_calls])

    # 6. Steps, bot-reported scores, inline ratings, conversation events.
    _turn_extras_store(chatbot, prepared, created)
    for item in events:
        results[item.index] = _event_apply(chatbot, item, conversations[item.data.conversation_id])

    for item in prepared:
        if results[item.index] is not None:
            continue
        turn = created.get(item.index)
        if turn is not None:
            results[item.index] = TurnOutcome(True, turn, turn.conversation.external_id, tuple(item.data.warnings))
    for item in prepared:
        if results[item.index] is None:
            conversation = conversations[item.data.conversation_id]
            first = results[first_in_batch[(conversation.pk, item.data.turn_id)]]
            results[item.index] = dataclasses.replace(first, created=False)  # type: ignore[arg-type]
    return results, new_turns  # type: ignore[return-value]


def _turn_alone(item: _PreparedTurn, turn: Turn) -> bool:
    """A turn that carries nothing to store beside itself and its new LLM calls (the usual single
    POST, an OTLP chat span): no steps, scores or rating, no early calls of its conversation."""
    data = item.data
    return (not item.steps and not data.rating and data.hallucinated is None and data.handoff is None
            and not turn.conversation.has_early_calls)


def _turn_alone_store(chatbot: Chatbot, item: _PreparedTurn, turn: Turn, results: list, *,
                      now: Any) -> tuple[list, list[Turn]]:
    """The single turn's write after its conversation's upsert+lock: the INSERT … ON CONFLICT DO
    NOTHING, its LLM calls' INSERT and the summary UPDATE in one statement (the last two apply
    only if the turn was inserted): one round trip for the rest of the transaction."""
    touched = conversation_turns_count(
        added=[TurnAdded(turn=turn, end_user_hash=item.end_user_hash, channel=item.data.channel)], now=now)
    then = [conversation_summaries_statement(touched, where=INSERTED_EXISTS)]
    if item.calls:
        calls = [_llm_call_build(call, chatbot=chatbot, conversation=turn.conversation, turn=turn, at=turn.timestamp)
                 for call in item.calls]
        then.insert(0, rows_insert_statement(calls, inserted_fk="turn"))
    if not insert_unless_conflict(turn, conflict_fields=("conversation", "external_id"), then=then):
        results[item.index] = TurnOutcome(False, _stored_turn(turn), turn.conversation.external_id)
        return results, []
    results[item.index] = TurnOutcome(True, turn, turn.conversation.external_id, tuple(item.data.warnings))
    return results, [turn]


def _stored_turn(turn: Turn) -> Turn:
    """The turn stored before under `turn`'s conversation and turn_id (a replay's answer)."""
    return Turn.objects.only(*_REPLAY_FIELDS).get(conversation_id=turn.conversation_id, external_id=turn.external_id)


def _consent_apply(chatbot: Chatbot, prepared: list[_PreparedTurn], conversations: dict[str, Conversation]) -> None:
    """Each locked conversation's consent becomes the strictest of its own, what the batch's
    turns state, their end users' (EndUserConsent) and, for a conversation without turns yet,
    the chatbot's default; it never gets less strict. Turns of a no_content conversation lose
    their texts here, before anything is stored (tokens, cost and risk were measured on them in
    memory); one that just became no_content has what it already stored withheld the same way
    (apps.privacy.services.conversations_content_withhold). One query, for the end users.
    """
    from apps.privacy.models import EndUserConsent

    hashes = {item.end_user_hash for item in prepared if item.end_user_hash}
    by_user = dict(
        EndUserConsent.objects.filter(chatbot=chatbot, end_user_hash__in=hashes).values_list("end_user_hash", "consent")
    ) if hashes else {}
    wanted: dict[str, str] = {}
    for item in prepared:
        conversation = conversations[item.data.conversation_id]
        wanted[conversation.external_id] = consent_strictest(
            wanted.get(conversation.external_id, conversation.consent), item.data.consent,
            by_user.get(item.end_user_hash, ""), chatbot.default_consent if conversation.turn_count == 0 else "",
        )
    newly_withheld = []
    for external_id, consent in wanted.items():
        conversation = conversations[external_id]
        if consent == conversation.consent:
            continue
        Conversation.objects.filter(pk=conversation.pk).update(consent=consent)
        conversation.consent = consent
        if consent == Consent.NO_CONTENT:
            newly_withheld.append(conversation.pk)
    if newly_withheld:
        from apps.privacy.services import conversations_content_withhold

        conversations_content_withhold(conversation_ids=newly_withheld)
    for position, item in enumerate(prepared):
        if conversations[item.data.conversation_id].consent == Consent.NO_CONTENT:
            prepared[position] = _content_withhold(item)


def _call_withhold(call: CallInput) -> CallInput:
    return dataclasses.replace(call, input_text=text_withheld(call.input_text),
                               output_text=text_withheld(call.output_text), error=text_withheld(call.error))


def _step_withhold(step: StepInput) -> StepInput:
    return dataclasses.replace(step, input_text=text_withheld(step.input_text),
                               output_text=text_withheld(step.output_text), error=text_withheld(step.error),
                               metadata={})


def _content_withhold(item: _PreparedTurn) -> _PreparedTurn:
    """`item` as a no_content conversation stores it: every text the marker, JSON of text
    (debug_info, step metadata) empty, never sampled for the judge; counts and flags kept."""
    data = item.data
    data = dataclasses.replace(
        data, user_message=text_withheld(data.user_message), bot_response=text_withheld(data.bot_response),
        error=text_withheld(data.error), conversation_message=text_withheld(data.conversation_message),
        handoff_reason=text_withheld(data.handoff_reason), debug_info={} if data.debug_info else data.debug_info,
        llm_calls=[_call_withhold(c) for c in data.llm_calls],
    )
    steps = []
    for step, _, _ in item.steps:
        step = _step_withhold(step)
        steps.append((step, *step_fingerprint(kind=step.kind, name=step.name, input_text=step.input_text)))
    calls = [dataclasses.replace(c, data=_call_withhold(c.data)) for c in item.calls]
    return dataclasses.replace(item, data=data, calls=calls, steps=steps, sampled=False)


def _turn_extras_store(chatbot: Chatbot, prepared: list[_PreparedTurn], created: dict[int, Turn]) -> None:
    """What new turns carry beyond themselves; no query for turns that carry none of it."""
    from apps.scores.models import Score
    from apps.scores.services import turn_scores_build

    steps = [
        _step_build(step, fingerprint=fingerprint, shape=shape, position=position, turn=turn)
        for index, turn in created.items()
        for position, (step, fingerprint, shape) in enumerate(prepared[index].steps)
    ]
    if steps:
        Step.objects.bulk_create(steps, batch_size=1000)
    scores = [
        score
        for index, turn in created.items()
        if prepared[index].data.hallucinated is not None or prepared[index].data.handoff is not None
        for score in turn_scores_build(chatbot=chatbot, turn=turn, hallucinated=prepared[index].data.hallucinated,
                                       handoff=prepared[index].data.handoff,
                                       handoff_reason=prepared[index].data.handoff_reason)
    ]
    if scores:
        Score.objects.bulk_create(scores, batch_size=1000)
    for index, turn in created.items():
        data = prepared[index].data
        if data.rating:
            _rating_record(turn, rating=data.rating, user_id=data.user_id)


def _rating_record(turn: Turn, *, rating: str, user_id: str | None) -> None:
    """An inline `rating` is the end user's vote, recorded as the widget's are (source api)."""
    from apps.feedback.choices import FeedbackSource
    from apps.feedback.services import feedback_submit, voter_key_compute

    voter_key = voter_key_compute(chatbot_id=turn.chatbot_id, turn_id=turn.pk,
                                  turn_end_user_hash=turn.end_user_hash or turn.conversation.end_user_hash,
                                  user_id=user_id or "")
    feedback_submit(turn_id=turn.pk, voter_key=voter_key, rating=rating, source=FeedbackSource.API)
    turn.refresh_from_db(fields=["thumbs_up", "thumbs_down", "is_flagged", "flag_reasons"])


def _event_apply(chatbot: Chatbot, item: _PreparedTurn, conversation: Conversation) -> EventOutcome:
    """start: the conversation exists (created above). end: it ends, with its outcome if given.
    feedback: the rating goes to the turn named, or the conversation's latest turn."""
    from apps.scores.services import outcomes_set

    data = item.data
    warnings = list(data.warnings)
    rated = None
    if data.event == "end":
        from apps.evaluations.conversation_judge import conversation_judge_enqueue

        conversation_end(conversation=conversation, at=data.timestamp)
        # Judged as a whole once this batch commits (if sampled; apps.evaluations).
        conversation_judge_enqueue(conversation=conversation)
        if data.outcome:
            outcomes_set(chatbot=chatbot, conversation=conversation, values=data.outcome,
                         reason=data.handoff_reason, at=data.timestamp)
    elif data.event == "feedback":
        turns = Turn.objects.filter(conversation=conversation).select_related("conversation")
        rated = (turns.filter(external_id=data.turn_id) if data.turn_id else turns.order_by("-sequence", "-id")).first()
        if not data.rating:
            warnings.append("rating: a feedback event without a rating records nothing")
        elif rated is None:
            warnings.append("rating: no such turn in this conversation, nothing recorded")
        else:
            _rating_record(rated, rating=data.rating, user_id=data.user_id)
    if data.event != "end" and data.outcome:
        warnings.append("outcome: only an end event sets outcomes (or POST …/outcomes), not stored")
    return EventOutcome(event=data.event, conversation=conversation, turn=rated, warnings=tuple(warnings))


def _step_build(step: StepInput, *, fingerprint: str, shape: str, position: int, turn: Turn) -> Step:
    return Step(
        chatbot_id=turn.chatbot_id, conversation=turn.conversation, turn=turn, position=position, kind=step.kind,
        name=step.name, input_text=step.input_text, output_text=step.output_text, duration_ms=step.duration_ms,
        success=step.success, error=step.error, rows=step.rows, fingerprint=fingerprint, shape=shape,
        metadata=step.metadata, external_id=step.external_id, timestamp=turn.timestamp,
    )


def turn_steps_add(*, chatbot: Chatbot, steps: list[tuple[Turn, StepInput]]) -> int:
    """Add steps to turns stored earlier (an OTLP tool span exported after its turn), redacted and
    fingerprinted as a turn's own steps are. A step whose external_id its turn already has is not
    stored again (the partial unique constraint decides a race). Returns how many were stored."""
    if not steps:
        return 0
    # A turn of a no_content conversation gets its late steps without text, as its own were stored.
    withheld = set(Conversation.objects.filter(pk__in={turn.conversation_id for turn, _ in steps},
                                               consent=Consent.NO_CONTENT).values_list("pk", flat=True))
    steps = [(turn, _step_withhold(step) if turn.conversation_id in withheld else step) for turn, step in steps]
    prepared, _ = _steps_prepare(chatbot, [step for _, step in steps])
    turns = {turn.pk: turn for turn, _ in steps}
    with transaction.atomic():
        known = set(Step.objects.filter(turn_id__in=list(turns), external_id__in={s.external_id for _, s in steps})
                    .values_list("turn_id", "external_id"))
        next_position = dict(Step.objects.filter(turn_id__in=list(turns)).values("turn_id")
                             .annotate(last=models.Max("position")).values_list("turn_id", "last"))
        built = []
        for (turn, _), (step, fingerprint, shape) in zip(steps, prepared, strict=True):
            if step.external_id and (turn.pk, step.external_id) in known:
                continue
            known.add((turn.pk, step.external_id))
            position = next_position[turn.pk] = next_position.get(turn.pk, -1) + 1
            built.append(_step_build(step, fingerprint=fingerprint, shape=shape, position=position, turn=turn))
        Step.objects.bulk_create(built, batch_size=1000, ignore_conflicts=True)
    return len(built)


def _turn_build(item: _PreparedTurn, *, chatbot: Chatbot, conversation: Conversation, sequence: int, now: Any) -> Turn:
    data = item.data
    return Turn(
        conversation=conversation, chatbot=chatbot, external_id=data.turn_id, end_user_hash=item.end_user_hash,
        sequence=sequence,
        timestamp=data.timestamp, user_message=data.user_message, bot_response=data.bot_response,
        latency_ms=data.latency_ms, fallback_used=data.fallback_used, has_error=data.has_error, error=data.error,
        intent=data.intent, model=data.model or chatbot.model, release=data.release, classification=data.classification,
        database_used=data.database_used, conversation_message=data.conversation_message,
        debug_info=data.debug_info or {},
        prompt_tokens=item.prompt_tokens, completion_tokens=item.completion_tokens,
        tokens_estimated=item.tokens_estimated, cost_usd=item.cost_usd,
        total_tokens=item.total_tokens, total_cost_usd=item.total_cost_usd,
        risk_score=item.verdict.score, risk_level=item.verdict.level, risk_reasons=item.verdict.reasons,
        is_flagged=bool(item.flag_reasons), flag_reasons=item.flag_reasons,
        judge_status=JudgeStatus.PENDING if item.sampled else JudgeStatus.NOT_SAMPLED,
        metadata=data.metadata, created_at=now, pii_found=item.pii_found,
    )


def _llm_call_build(call: _PreparedCall, *, chatbot: Chatbot, conversation: Conversation,
                    turn: Turn | None, at: Any, turn_external_id: str = "") -> LLMCall:
    data = call.data
    return LLMCall(
        chatbot=chatbot, conversation=conversation, turn=turn, external_id=data.call_id,
        turn_external_id=turn_external_id, provider=data.provider, model=data.model or (turn.model if turn else ""),
        function_name=data.function_name, input_tokens=call.input_tokens, output_tokens=call.output_tokens,
        tokens_estimated=call.tokens_estimated, cost_usd=call.cost_usd, duration_ms=data.duration_ms,
        input_text=data.input_text, output_text=data.output_text, success=data.success, error=data.error,
        timestamp=data.timestamp or at, metadata=data.metadata,
    )


def _early_calls_link(new_turns: list[Turn]) -> None:
    """Attach LLM calls stored before their turn (same conversation, same turn_id).

    Those calls were counted in the conversation's totals when they arrived, so only the turn's
    totals grow here.
    """
    keyed = {(t.conversation_id, t.external_id): t for t in new_turns if t.external_id}
    if not keyed:
        return
    early = list(
        LLMCall.objects.filter(
            conversation_id__in={c for c, _ in keyed}, turn__isnull=True,
            turn_external_id__in={e for _, e in keyed},
        ).only("id", "conversation_id", "turn_external_id", "input_tokens", "output_tokens", "cost_usd")
    )
    grown: dict[int, Turn] = {}
    for call in early:
        turn = keyed.get((call.conversation_id, call.turn_external_id))
        if turn is None:
            continue
        call.turn = turn
        turn.total_tokens += call.input_tokens + call.output_tokens
        turn.total_cost_usd += call.cost_usd
        grown[turn.pk] = turn
    if grown:
        LLMCall.objects.bulk_update([c for c in early if c.turn_id], ["turn"])
        Turn.objects.bulk_update(list(grown.values()), ["total_tokens", "total_cost_usd"])


def _after_commit(chatbot: Chatbot, new_turns: list[Turn]) -> None:
    # Both publish after commit and never raise (apps.core.queue): the turns are stored, and the
    # sweepers pick up whatever could not be enqueued.
    from apps.alerts.risk_alerts import risk_alert_notify
    from apps.evaluations.services import judge_enqueue

    sampled = [t.pk for t in new_turns if t.judge_status == JudgeStatus.PENDING]
    risky = [t.pk for t in new_turns if t.is_flagged and t.risk_level in (RiskLevel.HIGH, RiskLevel.CRITICAL)]
    if sampled:
        judge_enqueue(turn_ids=sampled)
    if risky and chatbot.alert_on_risk:
        risk_alert_notify(turn_ids=risky)


def llm_calls_ingest(*, chatbot: Chatbot, calls: list[CallInput]) -> list[CallOutcome]:
    """Store standalone LLM calls; a call's turn (if known) and conversation totals grow with it.

    A call naming a turn_id not stored yet is kept with that id and linked when the turn
    arrives. call_id makes a retry a no-op (a replay outcome with the original call).
    """
    if not calls:
        return []
    prepared = [_call_prepare(c, chatbot=chatbot, default_model=chatbot.model, at=c.timestamp or timezone.now())
                for c in calls]
    results = _atomic_retrying(lambda: _calls_store(chatbot, prepared))
    _count_items("llm_call", results)
    return results


def _calls_store(chatbot: Chatbot, prepared: list[_PreparedCall]) -> list[CallOutcome]:
    now = timezone.now()
    external_ids = {p.data.conversation_id for p in prepared}
    conversations = conversations_get_or_create_lock(chatbot=chatbot, seeds=[
        ConversationSeed(external_id=e, started_at=now, last_activity_at=now) for e in external_ids
    ])
    conversation_ids = [c.pk for c in conversations.values()]
    turn_ids = {p.data.turn_id for p in prepared if p.data.turn_id}
    turns = {
        (t.conversation_id, t.external_id): t
        for t in Turn.objects.select_for_update().filter(conversation_id__in=conversation_ids, external_id__in=turn_ids)
    } if turn_ids else {}
    call_ids = {p.data.call_id for p in prepared if p.data.call_id}
    stored = {
        (c.conversation_id, c.external_id): c
        for c in LLMCall.objects.select_related("turn").filter(conversation_id__in=conversation_ids, external_id__in=call_ids)
    } if call_ids else {}

    # A call of a no_content conversation keeps its counts, not its texts (see _consent_apply).
    prepared = [
        dataclasses.replace(p, data=_call_withhold(p.data))
        if conversations[p.data.conversation_id].consent == Consent.NO_CONTENT else p
        for p in prepared
    ]
    results: list[CallOutcome | None] = [None] * len(prepared)
    seen: dict[tuple[int, str], LLMCall] = {}
    created: list[tuple[int, LLMCall]] = []
    repeats: list[tuple[int, tuple[int, str]]] = []
    for index, item in enumerate(prepared):
        conversation = conversations[item.data.conversation_id]
        key = (conversation.pk, item.data.call_id) if item.data.call_id else None
        if key and key in stored:
            results[index] = CallOutcome(False, stored[key], conversation.external_id)
            continue
        if key and key in seen:
            repeats.append((index, key))  # answered below like a replay of the first
            continue
        turn = turns.get((conversation.pk, item.data.turn_id)) if item.data.turn_id else None
        call = _llm_call_build(item, chatbot=chatbot, conversation=conversation, turn=turn, at=now,
                               turn_external_id="" if turn else (item.data.turn_id or ""))
        created.append((index, call))
        if key:
            seen[key] = call

    LLMCall.objects.bulk_create([call for _, call in created], batch_size=1000)
    # The turns and conversations are locked: their totals grow exactly.
    conversation_calls_add(calls=[call for _, call in created])
    for index, call in created:
        results[index] = CallOutcome(True, call, call.conversation.external_id, tuple(prepared[index].data.warnings))
    for index, key in repeats:
        results[index] = CallOutcome(False, seen[key], seen[key].conversation.external_id)
    return results  # type: ignore[return-value]


def turns_ingest_batch(*, chatbot: Chatbot, items: list[Any]) -> list[TurnOutcome | EventOutcome | ItemRejected]:
    """Validate and store a batch of raw turns: one outcome per item, in order; an invalid item
    is rejected alone."""
    return _batch_ingest(items, parse=parse_turn, store=lambda valid: turns_ingest(chatbot=chatbot, turns=valid))


def llm_calls_ingest_batch(*, chatbot: Chatbot, items: list[Any]) -> list[CallOutcome | ItemRejected]:
    """Validate and store a batch of raw standalone LLM calls, as `turns_ingest_batch` does turns."""
    return _batch_ingest(items, parse=lambda raw: parse_call(raw, standalone=True),
                         store=lambda valid: llm_calls_ingest(chatbot=chatbot, calls=valid))


def _batch_ingest(items: list[Any], *, parse: Any, store: Any) -> list[Any]:
    results: list[Any] = [None] * len(items)
    valid, positions = [], []
    for index, raw in enumerate(items):
        try:
            valid.append(parse(raw))
            positions.append(index)
        except ValidationFailed as exc:
            results[index] = ItemRejected(index, exc.errors)
    rejected = len(items) - len(valid)
    if rejected:
        INGEST_ITEMS.labels("item", "rejected").inc(rejected)
    for index, outcome in zip(positions, store(valid), strict=True):
        results[index] = outcome
    return results
