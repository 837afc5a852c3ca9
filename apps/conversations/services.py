"""The one owner of the Conversation/Turn aggregate: its row locks and its summary.

Every other app (ingest, OTLP ingest, feedback, the judge, erasure) locks a conversation and
changes its summary (counts, tokens, cost, errors, thumbs, risk, judge minimum, flags,
activity) only through the functions here; tests/conversations/test_architecture.py fails
when code outside apps/conversations does either itself.

Lock order, the only place it is written down:

1. The conversation row(s) first, SELECT … FOR UPDATE, several in id order.
2. Then its turns.
3. Then rows hanging off a turn (feedback, evaluations).

Every writer follows it, so concurrent writers of one conversation serialise on its row and
never deadlock, and summaries are changed with plain increments that never drift. Functions
named `*_lock` take step 1; the others expect their caller to hold it inside the same
transaction (they say so), except `turn_flag_add`, which takes it itself.
"""

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import Exists, F, Min, OuterRef, Subquery, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.core.db import has_expressions, prepared_cursor, row_values

from .choices import CallPurpose, FlagReason
from .models import ZERO_COST, Conversation, EndUserSession, LLMCall, Turn

# The conversation's summary: written here only (tests/conversations/test_architecture.py).
CONVERSATION_SUMMARY_FIELDS = frozenset({
    "turn_count", "total_tokens", "cost_usd", "error_count", "fallback_count", "thumbs_up", "thumbs_down",
    "max_risk_score", "min_judge_score", "is_flagged", "flag_reasons", "flagged_at", "has_early_calls",
    "last_activity_at", "started_at",
    "last_turn_at", "last_turn_fallback", "last_turn_error", "last_turn_thumbs_down",
})


# --- locks -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConversationSeed:
    """What the first turn or call of a conversation says about it, for creating it."""

    external_id: str
    started_at: datetime
    last_activity_at: datetime
    channel: str = ""
    end_user_hash: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def conversations_get_or_create_lock(*, chatbot: Chatbot, seeds: Iterable[ConversationSeed]) -> dict[str, Conversation]:
    """Create the chatbot's conversations not stored yet, then lock all of them (lock order 1).

    INSERT … ON CONFLICT DO NOTHING, so two batches creating one conversation both go on, then
    SELECT … FOR UPDATE in id order. Returns the locked conversations by external id. One
    conversation on PostgreSQL: both in one statement (`_conversation_upsert_lock`).
    """
    seeds = list(seeds)
    if len(seeds) == 1 and connection.vendor == "postgresql":
        conversation = _conversation_upsert_lock(chatbot=chatbot, seed=seeds[0])
        return {conversation.external_id: conversation}
    return _conversations_insert_lock(chatbot=chatbot, seeds=seeds)


def _conversations_insert_lock(*, chatbot: Chatbot, seeds: list[ConversationSeed]) -> dict[str, Conversation]:
    Conversation.objects.bulk_create(
        [
            Conversation(
                chatbot=chatbot, external_id=seed.external_id, started_at=seed.started_at,
                last_activity_at=seed.last_activity_at, channel=seed.channel, end_user_hash=seed.end_user_hash,
                metadata=seed.metadata,
            )
            for seed in seeds
        ],
        ignore_conflicts=True,
    )
    return {
        c.external_id: c
        for c in Conversation.objects.select_for_update()
        .filter(chatbot=chatbot, external_id__in=[seed.external_id for seed in seeds])
        .order_by("id")
    }


def _conversation_upsert_lock(*, chatbot: Chatbot, seed: ConversationSeed) -> Conversation:
    """One conversation created if new and locked, in one statement (PostgreSQL): INSERT … ON
    CONFLICT DO UPDATE takes the row lock as SELECT … FOR UPDATE does and RETURNING reads the row,
    so a single turn pays one round trip here instead of two. One row, so no lock order to keep.
    The no-op update leaves every column as it was."""
    conversation = Conversation(
        chatbot=chatbot, external_id=seed.external_id, started_at=seed.started_at,
        last_activity_at=seed.last_activity_at, channel=seed.channel, end_user_hash=seed.end_user_hash,
        metadata=seed.metadata,
    )
    statement = _upsert_lock_statement()
    if has_expressions(conversation, statement.fields):  # a db_default only the ORM can write: two statements
        return _conversations_insert_lock(chatbot=chatbot, seeds=[seed])[seed.external_id]
    with prepared_cursor() as cursor:
        cursor.execute(statement.sql, statement.values(conversation))
        row = cursor.fetchone()
    fetched = list(row)
    for i, converters, column in statement.converters:
        for converter in converters:
            fetched[i] = converter(fetched[i], column, connection)
    return Conversation.from_db(connection.alias, statement.attnames, fetched)


@dataclass(frozen=True)
class _UpsertLockStatement:
    sql: str
    fields: list[Any]  # the columns written
    values: Any  # instance → its row, as bulk_copy_insert writes it
    attnames: list[str]  # the columns read back, in order
    converters: list[tuple[int, list[Any], Any]]  # (position, converters, column) where any apply


@functools.cache
def _upsert_lock_statement() -> _UpsertLockStatement:
    """_conversation_upsert_lock's SQL and what reads its row back, built once (PostgreSQL, the default database)."""
    meta = Conversation._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) "
           f"ON CONFLICT ({quote('chatbot_id')}, {quote('external_id')}) "
           f"DO UPDATE SET {quote('external_id')} = EXCLUDED.{quote('external_id')} "
           f"RETURNING {', '.join(quote(f.column) for f in meta.concrete_fields)}")
    converters = []
    for i, f in enumerate(meta.concrete_fields):
        column = f.get_col(meta.db_table)
        found = connection.ops.get_db_converters(column) + f.get_db_converters(connection)
        if found:
            converters.append((i, found, column))
    return _UpsertLockStatement(sql=sql, fields=fields, values=row_values(fields),
                                attnames=[f.attname for f in meta.concrete_fields], converters=converters)


def conversation_lock(*, conversation_id: int) -> Conversation:
    """Lock one conversation and read it (lock order 1). DoesNotExist if it is gone."""
    return Conversation.objects.select_for_update().get(pk=conversation_id)


def conversation_row_lock(*, conversation_id: int) -> None:
    """Lock one conversation without reading it; a conversation erased meanwhile locks nothing."""
    Conversation.objects.select_for_update().filter(pk=conversation_id).values_list("pk").first()


def conversation_lock_for_turn(*, turn_id: int) -> Conversation | None:
    """Lock the conversation of a turn (lock order 1); None if the turn is gone."""
    conversation_id = Turn.objects.filter(pk=turn_id).values_list("conversation_id", flat=True).first()
    if conversation_id is None:
        return None
    return conversation_lock(conversation_id=conversation_id)


def conversations_lock(*, conversation_ids: list[int], where: dict[str, Any] | None = None) -> list[int]:
    """Lock these conversations in id order (lock order 1), re-checking `where` under the lock;
    returns the ids locked."""
    return list(
        Conversation.objects.select_for_update()
        .filter(pk__in=conversation_ids, **(where or {}))
        .order_by("id")
        .values_list("id", flat=True)
    )


# --- summary: turns and calls ------------------------------------------------------------------

@dataclass(frozen=True)
class TurnAdded:
    """A turn just stored, with what it says about its conversation on first sight."""

    turn: Turn  # its `conversation` is the locked Conversation object
    end_user_hash: str = ""
    channel: str = ""


def conversation_turns_add(*, added: list[TurnAdded], now: datetime) -> None:
    """Count stored turns into their locked conversations' summaries, one statement in all.

    The caller holds the locks (conversations_get_or_create_lock) in this transaction, so the
    in-memory summaries are exact.
    """
    _conversation_summaries_write(conversation_turns_count(added=added, now=now))


def conversation_turns_count(*, added: list[TurnAdded], now: datetime) -> list[Conversation]:
    """conversation_turns_add's counting, in memory only: the conversations whose summaries
    changed, for a caller that writes them itself (conversation_summaries_statement)."""
    touched: dict[int, Conversation] = {}
    for item in added:
        turn = item.turn
        conversation = turn.conversation
        conversation.turn_count += 1
        conversation.total_tokens += turn.total_tokens
        conversation.cost_usd += turn.total_cost_usd
        conversation.error_count += int(turn.has_error)
        conversation.fallback_count += int(turn.fallback_used)
        conversation.max_risk_score = max(conversation.max_risk_score, turn.risk_score)
        if turn.release and (turn.timestamp >= conversation.last_activity_at or not conversation.release):
            conversation.release = turn.release  # the release of its latest turn
        _last_turn_note(conversation, timestamp=turn.timestamp, fallback=turn.fallback_used,
                        error=turn.has_error, thumbs_down=turn.thumbs_down > 0)
        conversation.last_activity_at = max(conversation.last_activity_at, turn.timestamp)
        conversation.started_at = min(conversation.started_at, turn.timestamp)
        conversation_flag_reasons_merge(conversation, turn.flag_reasons, now=now)
        if item.end_user_hash and not conversation.end_user_hash:
            conversation.end_user_hash = item.end_user_hash
        if item.channel and not conversation.channel:
            conversation.channel = item.channel
        touched[conversation.pk] = conversation
    return list(touched.values())


def conversation_calls_add(*, calls: list[LLMCall]) -> None:
    """Count stored LLM calls into their turns' and locked conversations' totals.

    A call naming a turn not stored yet marks its conversation as having early calls (ingest
    links them when the turn arrives). Each row is written once, however many calls touched it.
    """
    touched_turns: dict[int, Turn] = {}
    touched_conversations: dict[int, Conversation] = {}
    for call in calls:
        conversation = call.conversation
        turn = call.turn
        if turn is None and call.turn_external_id:
            conversation.has_early_calls = True
        tokens = call.input_tokens + call.output_tokens
        if turn is not None:
            turn.total_tokens += tokens
            turn.total_cost_usd += call.cost_usd
            touched_turns[turn.pk] = turn
        conversation.total_tokens += tokens
        conversation.cost_usd += call.cost_usd
        conversation.last_activity_at = max(conversation.last_activity_at, call.timestamp)
        touched_conversations[conversation.pk] = conversation
    for turn in touched_turns.values():
        turn.save(update_fields=["total_tokens", "total_cost_usd"])
    for conversation in touched_conversations.values():
        conversation.save(update_fields=["total_tokens", "cost_usd", "last_activity_at", "has_early_calls"])


_SUMMARY_COLUMNS = (
    # (field, PostgreSQL type)
    ("turn_count", "integer"), ("total_tokens", "bigint"), ("cost_usd", "numeric"), ("error_count", "integer"),
    ("fallback_count", "integer"), ("max_risk_score", "smallint"), ("last_activity_at", "timestamptz"),
    ("started_at", "timestamptz"), ("flag_reasons", "jsonb"), ("is_flagged", "boolean"),
    ("flagged_at", "timestamptz"), ("end_user_hash", "varchar"), ("channel", "varchar"),
    ("release", "varchar"), ("last_turn_at", "timestamptz"), ("last_turn_fallback", "boolean"),
    ("last_turn_error", "boolean"), ("last_turn_thumbs_down", "boolean"),
)
_SUMMARY_FIELDS = tuple(name for name, _ in _SUMMARY_COLUMNS)


def _last_turn_note(conversation: Conversation, *, timestamp: datetime, fallback: bool, error: bool,
                    thumbs_down: bool) -> None:
    """Fold one turn into the latest turn's signals: a later turn replaces them, a turn at the
    same moment adds its own (the drop-off counts a conversation when any of its last turns had one)."""
    if conversation.last_turn_at is None or timestamp > conversation.last_turn_at:
        conversation.last_turn_at = timestamp
        conversation.last_turn_fallback, conversation.last_turn_error = fallback, error
        conversation.last_turn_thumbs_down = thumbs_down
    elif timestamp == conversation.last_turn_at:
        conversation.last_turn_fallback |= fallback
        conversation.last_turn_error |= error
        conversation.last_turn_thumbs_down |= thumbs_down


def _conversation_summaries_write(conversations: list[Conversation]) -> None:
    """Write the recomputed summaries of locked conversations in one statement.

    Django's bulk_update builds a CASE/WHEN per field and row, which costs more CPU than the
    whole rest of a single-turn request; PostgreSQL takes one UPDATE … FROM (VALUES …).
    """
    if not conversations:
        return
    if connection.vendor != "postgresql":
        Conversation.objects.bulk_update(conversations, list(_SUMMARY_FIELDS), batch_size=500)
        return
    with prepared_cursor() as cursor:
        cursor.execute(*conversation_summaries_statement(conversations))


def conversation_summaries_statement(conversations: list[Conversation], *, where: str = "") -> tuple[str, list[Any]]:
    """The UPDATE writing these conversations' summaries (PostgreSQL) and its parameters; `where`
    adds a condition (SQL without parameters) to its WHERE.

    One conversation (the single turn's statement) passes its row as one JSON parameter that
    `jsonb_populate_record` types as the table's: with the turn's 33 columns beside it the
    statement stays under psycopg's 50 parameters, past which psycopg parses the SQL for
    placeholders on every execution instead of once (~0.4 ms per request under cProfile;
    in-process A/B: −4 to −21 % web CPU per single turn). Many conversations (a batch) pass
    `VALUES` rows, which measured cheaper for PostgreSQL than JSON there."""
    table = Conversation._meta.db_table
    assignments = ", ".join(f'"{f}" = v."{f}"' for f in _SUMMARY_FIELDS)
    condition = f" AND {where}" if where else ""
    if len(conversations) == 1:
        [conversation] = conversations
        row = {"id": conversation.pk, **{name: getattr(conversation, name) for name in _SUMMARY_FIELDS}}
        sql = (f'UPDATE "{table}" AS c SET {assignments} FROM jsonb_populate_record(NULL::"{table}", %s::jsonb) AS v '
               f'WHERE c."id" = v."id"{condition}')
        return sql, [orjson.dumps(row, default=str).decode()]
    values = "(%s::bigint, " + ", ".join(f"%s::{kind}" for _, kind in _SUMMARY_COLUMNS) + ")"
    params: list[Any] = []
    for conversation in conversations:
        params.append(conversation.pk)
        for name in _SUMMARY_FIELDS:
            value = getattr(conversation, name)
            params.append(orjson.dumps(value).decode() if name == "flag_reasons" else value)
    columns = ", ".join(f'"{f}"' for f in _SUMMARY_FIELDS)
    sql = (f'UPDATE "{table}" AS c SET {assignments} FROM (VALUES {", ".join([values] * len(conversations))}) '
           f'AS v("id", {columns}) WHERE c."id" = v."id"{condition}')
    return sql, params


# --- summary: recomputed from the rows (erasure) ------------------------------------------------

def conversation_summary_recompute(*, conversation_ids: Iterable[int]) -> None:
    """Recompute the summaries of locked conversations from the turns and calls they still have.

    For erasure, which deletes some end user's turns from a conversation that other end users'
    turns keep alive: the increments of conversation_turns_add / conversation_calls_add /
    turn_thumbs_move cannot be undone one by one, so every summary field is derived again, the
    way those functions build it:

    1. Counts, tokens and cost: the turns' own totals (which include their calls), plus the
       bot's calls not linked to any turn (counted into the conversation only).
    2. Errors, fallbacks, thumbs, highest risk, lowest judge score: over the remaining turns.
    3. Flags: the union of the remaining turns' reasons, in the conversation's order, plus a
       manual flag set on the conversation itself; unflagged when none is left.
    4. Activity span: earliest and latest turn or call; unchanged when none is left. The latest
       turn's signals (drop-off) from the remaining turns; none when no turn is left.
    5. What the conversation took from its first turn (first end user, metadata) comes from its
       first remaining turn, so nothing of a deleted turn stays on the conversation.

    The caller holds the conversation locks (lock order 1) in this transaction.
    """
    ids = sorted(set(conversation_ids))
    if not ids:
        return
    turns_by_conversation: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for row in (
        Turn.objects.filter(conversation_id__in=ids)
        .order_by("conversation_id", "sequence", "id")
        .values("conversation_id", "timestamp", "total_tokens", "total_cost_usd", "has_error", "fallback_used",
                "thumbs_up", "thumbs_down", "risk_score", "judge_overall", "flag_reasons", "end_user_hash",
                "metadata")
    ):
        turns_by_conversation[row["conversation_id"]].append(row)
    loose_calls: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    call_times: dict[int, list[datetime]] = {i: [] for i in ids}
    for row in LLMCall.objects.filter(conversation_id__in=ids).values(
        "conversation_id", "turn_id", "purpose", "input_tokens", "output_tokens", "cost_usd", "timestamp",
        "turn_external_id",
    ):
        if row["purpose"] != CallPurpose.BOT:
            continue
        call_times[row["conversation_id"]].append(row["timestamp"])
        if row["turn_id"] is None:
            loose_calls[row["conversation_id"]].append(row)

    conversations = list(Conversation.objects.filter(pk__in=ids).order_by("id"))
    for conversation in conversations:
        turns = turns_by_conversation[conversation.pk]
        loose = loose_calls[conversation.pk]
        conversation.turn_count = len(turns)
        conversation.total_tokens = sum(t["total_tokens"] for t in turns) + sum(
            c["input_tokens"] + c["output_tokens"] for c in loose
        )
        conversation.cost_usd = sum((t["total_cost_usd"] for t in turns), ZERO_COST) + sum(
            (c["cost_usd"] for c in loose), ZERO_COST
        )
        conversation.error_count = sum(1 for t in turns if t["has_error"])
        conversation.fallback_count = sum(1 for t in turns if t["fallback_used"])
        conversation.thumbs_up = sum(t["thumbs_up"] for t in turns)
        conversation.thumbs_down = sum(t["thumbs_down"] for t in turns)
        conversation.max_risk_score = max((t["risk_score"] for t in turns), default=0)
        conversation.min_judge_score = min(
            (t["judge_overall"] for t in turns if t["judge_overall"] is not None), default=None
        )
        conversation.has_early_calls = any(c["turn_external_id"] for c in loose)

        turn_reasons = [r for t in turns for r in (t["flag_reasons"] or [])]
        # Reasons set on the conversation itself (by hand, by the conversation judge) stay.
        kept = [r for r in conversation.flag_reasons
                if r in turn_reasons or r in (FlagReason.MANUAL, FlagReason.CONVERSATION_JUDGE)]
        reasons = list(dict.fromkeys([*kept, *turn_reasons]))
        conversation.flag_reasons = reasons
        if not reasons:
            conversation.is_flagged, conversation.flagged_at = False, None
        elif not conversation.is_flagged:
            conversation.is_flagged, conversation.flagged_at = True, timezone.now()

        conversation.last_turn_at = None
        conversation.last_turn_fallback = conversation.last_turn_error = conversation.last_turn_thumbs_down = False
        for t in turns:
            _last_turn_note(conversation, timestamp=t["timestamp"], fallback=t["fallback_used"],
                            error=t["has_error"], thumbs_down=t["thumbs_down"] > 0)
        stamps = [t["timestamp"] for t in turns] + call_times[conversation.pk]
        if stamps:
            conversation.started_at, conversation.last_activity_at = min(stamps), max(stamps)
        conversation.end_user_hash = next((t["end_user_hash"] for t in turns if t["end_user_hash"]), "")
        conversation.metadata = next((t["metadata"] for t in turns if t["metadata"]), {})

    Conversation.objects.bulk_update(
        conversations,
        sorted(CONVERSATION_SUMMARY_FIELDS | {"end_user_hash", "metadata"}),
        batch_size=500,
    )


# --- summary: thumbs and the judge -------------------------------------------------------------

_THUMBS_COUNTER = {"up": "thumbs_up", "down": "thumbs_down"}


def turn_thumbs_move(*, turn_id: int, conversation_id: int, old: str | None, new: str | None) -> None:
    """Take one vote off rating `old` and put one on `new` ("up"/"down"/None), on the turn and
    its conversation. The caller holds the conversation lock."""
    if old == new:
        return
    changes: dict[str, Any] = {}
    if old is not None:
        counter = _THUMBS_COUNTER[old]
        # Never below zero, even on rows whose counters were written by an older import.
        changes[counter] = Greatest(F(counter) - 1, Value(0))
    if new is not None:
        changes[_THUMBS_COUNTER[new]] = F(_THUMBS_COUNTER[new]) + 1
    if not changes:
        return
    Turn.objects.filter(pk=turn_id).update(**changes)
    if "down" in (old, new):
        # Whether a last turn still has a thumbs-down, read again after the turn's change.
        changes["last_turn_thumbs_down"] = Exists(Turn.objects.filter(
            conversation_id=OuterRef("pk"), timestamp=OuterRef("last_turn_at"), thumbs_down__gt=0))
    Conversation.objects.filter(pk=conversation_id).update(**changes)


def conversation_judge_min_refresh(*, conversation_id: int) -> None:
    """Set the conversation's lowest judge score from its turns. The caller holds the lock.

    Recomputed, not min(old, new): a re-run can raise a turn's score.
    """
    lowest = (
        Turn.objects.filter(conversation_id=OuterRef("pk")).order_by()
        .values("conversation_id").annotate(lowest=Min("judge_overall")).values("lowest")
    )
    Conversation.objects.filter(pk=conversation_id).update(min_judge_score=Subquery(lowest))


# --- flags -------------------------------------------------------------------------------------

def turn_flag_add(*, turn_id: int, reason: str) -> bool:
    """Flag a turn (and its conversation) with `reason`. Returns False if it already had it."""
    with transaction.atomic():
        conversation = conversation_lock_for_turn(turn_id=turn_id)
        if conversation is None:
            return False
        turn = Turn.objects.get(pk=turn_id)
        if reason in turn.flag_reasons:
            return False
        turn.flag_reasons = [*turn.flag_reasons, reason]
        turn.is_flagged = True
        turn.save(update_fields=["flag_reasons", "is_flagged"])
        _conversation_flag_reason_add(conversation, reason)
        return True


def conversation_flag_add(*, conversation_id: int, reason: str) -> bool:
    """Flag a conversation itself (no turn) with `reason`; False if it already had it."""
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=conversation_id)
        fields = conversation_flag_reasons_merge(conversation, [reason], now=timezone.now())
        if fields:
            conversation.save(update_fields=fields)
        return bool(fields)


def turn_flag_withdraw(*, turn_id: int, conversation_id: int, reason: str) -> bool:
    """Drop `reason` from a turn whose reason no longer holds; False if it stays.

    "thumbs_down" holds while the turn has a thumbs-down left. The conversation keeps the
    reason while another of its turns still has it, and stays flagged while any other reason
    (risk, judge, manual) remains. The caller holds the conversation lock.
    """
    turn = Turn.objects.get(pk=turn_id)
    if reason not in turn.flag_reasons or (reason == FlagReason.THUMBS_DOWN and turn.thumbs_down > 0):
        return False
    turn.flag_reasons = [r for r in turn.flag_reasons if r != reason]
    turn.is_flagged = bool(turn.flag_reasons)
    turn.save(update_fields=["flag_reasons", "is_flagged"])

    still_elsewhere = any(
        reason in reasons
        for reasons in Turn.objects.filter(conversation_id=conversation_id, is_flagged=True)
        .exclude(pk=turn_id)
        .values_list("flag_reasons", flat=True)
    )
    if still_elsewhere:
        return True
    conversation = Conversation.objects.get(pk=conversation_id)
    if reason not in conversation.flag_reasons:
        return True
    conversation.flag_reasons = [r for r in conversation.flag_reasons if r != reason]
    fields = ["flag_reasons"]
    if not conversation.flag_reasons:
        conversation.is_flagged = False
        conversation.flagged_at = None
        fields += ["is_flagged", "flagged_at"]
    conversation.save(update_fields=fields)
    return True


def _conversation_flag_reason_add(conversation: Conversation, reason: str) -> None:
    fields = conversation_flag_reasons_merge(conversation, [reason], now=timezone.now())
    if fields:
        conversation.save(update_fields=fields)


def conversation_flag_reasons_merge(conversation: Conversation, reasons: list[str], *, now: datetime) -> list[str]:
    """Add `reasons` to a locked conversation in memory; returns the fields that changed (unsaved)."""
    fields: list[str] = []
    for reason in reasons:
        if reason not in conversation.flag_reasons:
            conversation.flag_reasons = [*conversation.flag_reasons, reason]
            if "flag_reasons" not in fields:
                fields.append("flag_reasons")
    if reasons and not conversation.is_flagged:
        conversation.is_flagged = True
        conversation.flagged_at = now
        fields += ["is_flagged", "flagged_at"]
    return fields


# --- sessions and the end of a conversation ----------------------------------------------------

@dataclass(frozen=True)
class SessionTurn:
    """A turn sent without a conversation id: who sent it, where, when."""

    end_user_hash: str
    channel: str
    timestamp: datetime


def sessions_assign_lock(*, chatbot: Chatbot, turns: list[SessionTurn]) -> list[str]:
    """The conversation external id of each turn sent without one: the end user's session on
    that channel, as web analytics builds sessions. Call inside the ingest transaction, before
    the conversations are locked (this is lock step 0: session rows, in id order).

    1. One row per (chatbot, end user, channel) exists (INSERT … ON CONFLICT DO NOTHING), and
       is locked with SELECT … FOR UPDATE in id order: concurrent turns of one user serialise
       here, so the second sees the session the first opened — one session, never two.
    2. In timestamp order, a turn joins the open session unless it comes more than the
       chatbot's `session_gap_minutes` after the session's last activity; otherwise it opens a
       new session named `session-<first 16 of the end-user hash>-<channel>-<UTC start>`, the
       same name whichever process computes it. A turn older than the session's last activity
       (a late retry) joins it.
    3. The rows are written back with the new last activity.
    """
    from datetime import timedelta

    if not turns:
        return []
    keys = {(t.end_user_hash, t.channel) for t in turns}
    EndUserSession.objects.bulk_create(
        [EndUserSession(chatbot=chatbot, end_user_hash=h, channel=c) for h, c in keys], ignore_conflicts=True
    )
    hashes = {h for h, _ in keys}
    rows = {
        (row.end_user_hash, row.channel): row
        for row in EndUserSession.objects.select_for_update()
        .filter(chatbot=chatbot, end_user_hash__in=hashes).order_by("id")
        if (row.end_user_hash, row.channel) in keys
    }
    if len(rows) < len(keys):
        # Retention or erasure deleted a row between our insert and our lock: insert it again.
        EndUserSession.objects.bulk_create(
            [EndUserSession(chatbot=chatbot, end_user_hash=h, channel=c) for h, c in keys - set(rows)],
            ignore_conflicts=True,
        )
        rows = {
            (row.end_user_hash, row.channel): row
            for row in EndUserSession.objects.select_for_update()
            .filter(chatbot=chatbot, end_user_hash__in=hashes).order_by("id")
            if (row.end_user_hash, row.channel) in keys
        }
    gap = timedelta(minutes=chatbot.session_gap_minutes)
    assigned: list[str] = [""] * len(turns)
    for index in sorted(range(len(turns)), key=lambda i: turns[i].timestamp):
        turn = turns[index]
        row = rows[(turn.end_user_hash, turn.channel)]
        if not row.conversation_external_id or row.last_activity_at is None or turn.timestamp - row.last_activity_at > gap:
            row.conversation_external_id = (
                f"session-{turn.end_user_hash[:16]}-{turn.channel or 'none'}-{turn.timestamp:%Y%m%dT%H%M%S.%fZ}"
            )
            row.last_activity_at = turn.timestamp
        else:
            row.last_activity_at = max(row.last_activity_at, turn.timestamp)
        assigned[index] = row.conversation_external_id
    EndUserSession.objects.bulk_update(list(rows.values()), ["conversation_external_id", "last_activity_at"])
    return assigned


def conversation_end(*, conversation: Conversation, at: datetime) -> None:
    """Record the bot's `end` event on a locked conversation: `ended_at` (the latest end wins),
    and the end user's session closes, so their next turn without an id opens a new one."""
    if conversation.ended_at is None or at > conversation.ended_at:
        conversation.ended_at = at
        conversation.save(update_fields=["ended_at"])
    EndUserSession.objects.filter(
        chatbot_id=conversation.chatbot_id, conversation_external_id=conversation.external_id
    ).update(conversation_external_id="", last_activity_at=None)
