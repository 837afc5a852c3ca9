"""Langfuse's public API, the parts its SDKs call, on chatmon's write path. No HTTP here.

Traces need nothing of their own: langfuse 3.x and later export OTLP (`/api/public/otel/v1/
traces`), and spans.py reads Langfuse's observation attributes like any other convention.
What is Langfuse's own:

- Keys (`langfuse_key_check`): LANGFUSE_PUBLIC_KEY is the visible part of a chatmon API key
  (`cm_<prefix>`), LANGFUSE_SECRET_KEY the whole key. The secret is checked as a Bearer key is
  (constant-time hash compare); the public key must name the same key.
- Scores (`langfuse_scores_record`): `POST /api/public/scores`. A score's traceId (and
  observationId) finds the turn: span ids are the turn and LLM call ids (f"{trace}:{span}").
  1. A name in LANGFUSE_FEEDBACK_SCORE_NAMES ("user-feedback", "thumbs", "feedback") is the end
     user's thumbs: 1/true/"up" → 👍, 0/-1/false/"down" → 👎, through apps.feedback.services
     (one vote per end user per turn: a re-sent score changes nothing).
  2. Any other name is a chatmon score (apps.scores), on the turn or, for a session score, the
     conversation; the Langfuse score id (prefixed "langfuse:") makes a re-send a replay.
  3. A score whose trace has not arrived yet (the SDK sends scores and spans on separate
     threads) is "waiting": the caller answers 503 with Retry-After so the SDK sends the batch
     again; the scores already stored are replays then.
"""

import hmac
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apps.chatbots.api.authentication import api_key_authenticate
from apps.chatbots.models import ApiKey, Chatbot
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.core.text import CONTROL_CHARACTERS_MESSAGE, control_characters_present
from apps.feedback.choices import FeedbackSource, Rating
from apps.feedback.services import FeedbackTurnNotFound, feedback_submit, feedback_voter_key
from apps.ingest.validation import ValidationFailed
from apps.scores.services import ScoreRejected, scores_record
from apps.scores.values import ScoreInput, parse_score

SCORE_ID_PREFIX = "langfuse:"
_UP_WORDS = {"up", "thumbs_up", "thumbs-up", "positive", "good", "yes", "true", "like", "👍"}
_DOWN_WORDS = {"down", "thumbs_down", "thumbs-down", "negative", "bad", "no", "false", "dislike", "👎"}


def langfuse_key_check(*, public_key: str, secret_key: str) -> ApiKey | None:
    """The API key for Basic `public:secret`, or None. The public key may also be the whole key
    (a bot that put the same value in both variables)."""
    key = api_key_authenticate(secret_key)
    if key is None:
        return None
    expected = f"cm_{key.prefix}"
    if hmac.compare_digest(public_key.encode(), expected.encode()) or hmac.compare_digest(
            public_key.encode(), secret_key.encode()):
        return key
    return None


@dataclass(frozen=True)
class ScoreAnswer:
    """One score's fate: stored (or a replay), waiting for its trace, or refused with a reason."""

    index: int
    status: str  # "stored", "waiting", "rejected"
    message: str = ""


def langfuse_scores_record(*, chatbot: Chatbot, items: list[Any]) -> list[ScoreAnswer]:
    """Store a batch of Langfuse scores; one answer per item, in order (module docstring)."""
    answers: list[ScoreAnswer] = []
    pending: list[tuple[int, ScoreInput]] = []
    feedback_names = set(settings.LANGFUSE_FEEDBACK_SCORE_NAMES)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            answers.append(ScoreAnswer(index, "rejected", "Expected a JSON object."))
            continue
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not name.strip() or value is None:
            answers.append(ScoreAnswer(index, "rejected", "name and value are required."))
            continue
        if any(isinstance(item.get(k), str) and control_characters_present(item[k])
               for k in ("traceId", "observationId", "sessionId", "id")):
            # No span can carry such an id: refuse it now rather than answer "retry" forever.
            answers.append(ScoreAnswer(index, "rejected", f"Ids: {CONTROL_CHARACTERS_MESSAGE}"))
            continue
        target = _score_target(chatbot, item)
        if isinstance(target, ScoreAnswer):
            answers.append(ScoreAnswer(index, target.status, target.message))
            continue
        conversation, turn = target
        if name in feedback_names:
            answers.append(_feedback_record(index, turn, item))
            continue
        try:
            score = parse_score({
                "conversation_id": conversation.external_id, "turn_id": turn.external_id if turn else None,
                "score_id": f"{SCORE_ID_PREFIX}{item['id']}" if item.get("id") else None, "name": name.strip(),
                "value": _score_value(item), "comment": item.get("comment") or "", "source": "langfuse",
                "timestamp": item.get("timestamp"),
            })
        except ValidationFailed as exc:
            answers.append(ScoreAnswer(index, "rejected", _errors_text(exc.errors)))
            continue
        except ValueError as exc:
            answers.append(ScoreAnswer(index, "rejected", str(exc)))
            continue
        pending.append((index, score))
    if pending:
        outcomes = scores_record(chatbot=chatbot, items=[score for _, score in pending])
        for (index, _), outcome in zip(pending, outcomes, strict=True):
            answers.append(ScoreAnswer(index, "rejected", _errors_text(outcome.errors))
                           if isinstance(outcome, ScoreRejected) else ScoreAnswer(index, "stored"))
    return sorted(answers, key=lambda a: a.index)


def _score_target(chatbot: Chatbot, item: dict[str, Any]) -> tuple[Conversation, Turn | None] | ScoreAnswer:
    trace_id, observation_id, session_id = (_id_text(item.get(k)) for k in ("traceId", "observationId", "sessionId"))
    if not trace_id:
        if session_id:
            conversation = Conversation.objects.filter(chatbot=chatbot, external_id=session_id).first()
            if conversation is None:
                return ScoreAnswer(-1, "waiting", f"No conversation {session_id!r} yet.")
            return conversation, None
        return ScoreAnswer(-1, "rejected", "A score needs a traceId (or a sessionId).")
    turn = None
    if observation_id:
        key = f"{trace_id}:{observation_id}"
        turn = Turn.objects.filter(chatbot=chatbot, external_id=key).select_related("conversation").first()
        if turn is None:
            call = LLMCall.objects.filter(chatbot=chatbot, external_id=key).select_related(
                "turn__conversation").first()
            turn = call.turn if call is not None else None
    if turn is None:
        # The trace's turn: its root observation (the latest, should one trace hold several).
        turn = (Turn.objects.filter(chatbot=chatbot, external_id__startswith=f"{trace_id}:")
                .select_related("conversation").order_by("-timestamp", "-id").first())
    if turn is None:
        return ScoreAnswer(-1, "waiting", f"No turn for trace {trace_id} yet.")
    return turn.conversation, turn


def _feedback_record(index: int, turn: Turn | None, item: dict[str, Any]) -> ScoreAnswer:
    if turn is None:
        return ScoreAnswer(index, "rejected", "A thumbs score is given to a trace (a turn), not a session.")
    rating = _rating(item.get("value"))
    if rating is None:
        return ScoreAnswer(index, "rejected", f"{item['name']!r} is thumbs feedback: its value is 1 (up), "
                                              "0 or -1 (down), true/false or \"up\"/\"down\".")
    comment = item.get("comment")
    try:
        feedback_submit(turn_id=turn.pk, voter_key=feedback_voter_key(turn=turn), rating=rating,
                        comment=str(comment)[:4000] if comment else None, source=FeedbackSource.API)
    except FeedbackTurnNotFound:
        return ScoreAnswer(index, "rejected", "The turn was deleted.")
    return ScoreAnswer(index, "stored")


def _rating(value: Any) -> str | None:
    if isinstance(value, bool):
        return Rating.UP if value else Rating.DOWN
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        if value == 1:
            return Rating.UP
        if value in (0, -1):
            return Rating.DOWN
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        return Rating.UP if word in _UP_WORDS else Rating.DOWN if word in _DOWN_WORDS else None
    return None


def _score_value(item: dict[str, Any]) -> Any:
    """Langfuse's value and dataType → a chatmon score value (the SDK sends BOOLEAN as 1.0/0.0)."""
    data_type = str(item.get("dataType") or "").upper()
    value = item["value"]
    if data_type == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float) and value in (0, 1):
            return bool(value)
        raise ValueError("A BOOLEAN score's value is 1 or 0.")
    if data_type == "CORRECTION":
        raise ValueError("CORRECTION scores are not stored: send the corrected answer in chatmon's review.")
    if data_type in ("CATEGORICAL", "TEXT"):
        return str(value)
    return value


def _id_text(value: Any) -> str:
    return value.strip()[:255] if isinstance(value, str) else ""


def _errors_text(errors: dict[str, Any]) -> str:
    return "; ".join(f"{field}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
                     for field, messages in errors.items())[:300]
