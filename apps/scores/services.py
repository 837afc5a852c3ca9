"""Score writes: the bot's scores (POST /api/v1/scores), outcomes, and the scores a turn carries.

Scores hang off a conversation (and optionally one turn) but are not part of its summary: no
conversation lock is needed, and a score never changes a counter. `score_id` makes a retry a
no-op: the unique (chatbot, score_id) constraint decides between two concurrent writers.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.conversations.models import Conversation, Turn
from apps.privacy.policy import text_redact_for

from .models import Score, ScoreDefinition
from .values import (
    HALLUCINATED,
    OUTCOMES,
    RESERVED,
    ScoreInput,
    ScoreRule,
    ScoreValueInvalid,
    score_value_check,
)

# The source of the scores a turn payload carries (hallucinated, handoff) and of outcomes.
SOURCE_BOT = "bot"


@dataclass(frozen=True)
class ScoreOutcome:
    created: bool
    score: Score
    conversation_external_id: str
    turn_external_id: str | None


@dataclass(frozen=True)
class ScoreRejected:
    index: int
    errors: dict[str, Any]


def score_rules_for(*, chatbot: Chatbot, names: set[str]) -> dict[str, ScoreRule]:
    """The rule each name's values follow: reserved first (a definition only narrows a reserved
    categorical score to its categories), then the chatbot's definitions. One query."""
    definitions = {d.name: d.rule() for d in ScoreDefinition.objects.filter(chatbot=chatbot, name__in=names)} if names else {}
    rules: dict[str, ScoreRule] = {}
    for name in names:
        reserved, defined = RESERVED.get(name), definitions.get(name)
        if reserved and defined and reserved.data_type == defined.data_type == "categorical":
            rules[name] = defined
        elif reserved or defined:
            rules[name] = reserved or defined  # type: ignore[assignment]
    return rules


def _score_build(*, chatbot: Chatbot, conversation: Conversation, turn: Turn | None, name: str, value: Any,
                 rule: ScoreRule | None, comment: str = "", source: str = SOURCE_BOT,
                 at: datetime | None = None, external_id: str | None = None) -> Score:
    parsed = score_value_check(value, rule)
    return Score(
        chatbot=chatbot, conversation=conversation, turn=turn, external_id=external_id, name=name,
        data_type=parsed.data_type, value=parsed.number, category=parsed.category,
        comment=text_redact_for(chatbot, comment)[0] if comment else "", source=source, timestamp=at or timezone.now(),
    )


def turn_scores_build(*, chatbot: Chatbot, turn: Turn, hallucinated: bool | None, handoff: bool | None,
                      handoff_reason: str = "") -> list[Score]:
    """The scores a turn payload carries, unsaved (ingest bulk-creates them with its turns)."""
    scores = []
    if hallucinated is not None:
        scores.append(_score_build(chatbot=chatbot, conversation=turn.conversation, turn=turn, name=HALLUCINATED,
                                   value=hallucinated, rule=RESERVED[HALLUCINATED], at=turn.timestamp))
    if handoff is not None:
        scores.append(_score_build(chatbot=chatbot, conversation=turn.conversation, turn=turn, name="handed_off",
                                   value=handoff, rule=RESERVED["handed_off"], comment=handoff_reason, at=turn.timestamp))
    return scores


def outcomes_set(*, chatbot: Chatbot, conversation: Conversation, values: dict[str, Any], reason: str = "",
                 at: datetime | None = None, source: str = SOURCE_BOT) -> list[Score]:
    """Set the conversation's outcomes (reserved scores): one score per name and conversation,
    the latest value winning (a sale confirmed the next day replaces "not converted")."""
    rules = score_rules_for(chatbot=chatbot, names=set(values))
    stored = []
    for name, value in values.items():
        if name not in OUTCOMES:
            raise ScoreValueInvalid(f"unknown outcome {name!r}")
        built = _score_build(chatbot=chatbot, conversation=conversation, turn=None, name=name, value=value,
                             rule=rules.get(name), comment=reason if name == "handed_off" else "", source=source, at=at)
        fields = {f: getattr(built, f) for f in ("name", "data_type", "value", "category", "comment", "source", "timestamp")}
        with transaction.atomic():
            score, _ = Score.objects.update_or_create(
                chatbot=chatbot, external_id=f"outcome:{conversation.pk}:{name}",
                defaults={**fields, "conversation": conversation},
            )
        stored.append(score)
    return stored


def scores_record(*, chatbot: Chatbot, items: list[ScoreInput]) -> list[ScoreOutcome | ScoreRejected]:
    """Store the bot's scores; one outcome per item, in order.

    1. Resolve the conversations, turns, rules and stored score_ids: four queries in all.
    2. An item naming an unknown conversation or turn, or a value its rule refuses, is rejected
       alone; a stored score_id (or a repeat inside the batch) answers with the stored score.
    3. Bulk-insert the rest; should a concurrent request have stored one of the score_ids
       meanwhile, the unique constraint refuses the insert and the whole is retried once, the
       retry seeing it as a replay.
    """
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _scores_store(chatbot, items)
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")


def _scores_store(chatbot: Chatbot, items: list[ScoreInput]) -> list[ScoreOutcome | ScoreRejected]:
    conversations = {c.external_id: c for c in Conversation.objects.filter(
        chatbot=chatbot, external_id__in={i.conversation_id for i in items})}
    turn_keys = {(i.conversation_id, i.turn_id) for i in items if i.turn_id and i.conversation_id in conversations}
    turns = {
        (t.conversation_id, t.external_id): t
        for t in Turn.objects.filter(conversation__in=[conversations[c] for c, _ in turn_keys],
                                     external_id__in={t for _, t in turn_keys})
    } if turn_keys else {}
    rules = score_rules_for(chatbot=chatbot, names={i.name for i in items})
    score_ids = {i.score_id for i in items if i.score_id}
    stored = {s.external_id: s for s in Score.objects.filter(chatbot=chatbot, external_id__in=score_ids)
              .select_related("conversation", "turn")} if score_ids else {}

    results: list[ScoreOutcome | ScoreRejected | None] = [None] * len(items)
    new: dict[int, Score] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.score_id and item.score_id in stored:
            score = stored[item.score_id]
            results[index] = ScoreOutcome(False, score, score.conversation.external_id,
                                          score.turn.external_id if score.turn else None)
            continue
        if item.score_id and item.score_id in first:
            continue
        conversation = conversations.get(item.conversation_id)
        if conversation is None:
            results[index] = ScoreRejected(index, {"conversation_id": ["No such conversation for this chatbot."]})
            continue
        turn = None
        if item.turn_id:
            turn = turns.get((conversation.pk, item.turn_id))
            if turn is None:
                results[index] = ScoreRejected(index, {"turn_id": ["No such turn in this conversation."]})
                continue
        try:
            score = _score_build(chatbot=chatbot, conversation=conversation, turn=turn, name=item.name,
                                 value=item.value, rule=rules.get(item.name), comment=item.comment,
                                 source=item.source, at=item.timestamp, external_id=item.score_id)
        except ScoreValueInvalid as exc:
            results[index] = ScoreRejected(index, {"value": [str(exc)]})
            continue
        new[index] = score
        if item.score_id:
            first[item.score_id] = index
    Score.objects.bulk_create(list(new.values()))
    for index, score in new.items():
        results[index] = ScoreOutcome(True, score, score.conversation.external_id,
                                      score.turn.external_id if score.turn else None)
    for index, item in enumerate(items):
        if results[index] is None:
            original = results[first[item.score_id]]  # type: ignore[index]
            results[index] = ScoreOutcome(False, original.score, original.conversation_external_id,  # type: ignore[union-attr]
                                          original.turn_external_id)  # type: ignore[union-attr]
    return results  # type: ignore[return-value]
