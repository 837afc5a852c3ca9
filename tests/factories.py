"""Small builders for test data. They write rows directly; API tests go through the HTTP API."""

import itertools
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.chatbots.models import ApiKey, Chatbot
from apps.conversations.choices import RiskLevel
from apps.conversations.models import Conversation, Turn

_counter = itertools.count(1)


def make_chatbot(**fields: Any) -> Chatbot:
    n = next(_counter)
    defaults: dict[str, Any] = {"name": f"Bot {n}", "slug": f"bot-{n}", "model": "gpt-4o-mini"}
    defaults.update(fields)
    return Chatbot.objects.create(**defaults)


def make_api_key(chatbot: Chatbot, name: str = "test") -> tuple[ApiKey, str]:
    prefix, raw = ApiKey.generate()
    key = ApiKey.objects.create(chatbot=chatbot, name=name, prefix=prefix, key_hash=ApiKey.hash_key(raw))
    return key, raw


def make_conversation(chatbot: Chatbot, **fields: Any) -> Conversation:
    defaults: dict[str, Any] = {"external_id": f"conv-{next(_counter)}"}
    defaults.update(fields)
    return Conversation.objects.create(chatbot=chatbot, **defaults)


def make_turn(
    conversation: Conversation | None = None,
    *,
    chatbot: Chatbot | None = None,
    timestamp: datetime | None = None,
    **fields: Any,
) -> Turn:
    """A stored turn (no summary upkeep: use the ingest service when summaries matter)."""
    if conversation is None:
        conversation = make_conversation(chatbot or make_chatbot())
    risk_score = fields.pop("risk_score", 0)
    defaults: dict[str, Any] = {
        "user_message": "Where is my order?",
        "bot_response": "It ships tomorrow.",
        "latency_ms": 800,
        "risk_score": risk_score,
        "risk_level": RiskLevel.for_score(risk_score),
        "sequence": conversation.turns.count() + 1,
        "timestamp": timestamp or timezone.now(),
    }
    defaults.update(fields)
    return Turn.objects.create(conversation=conversation, chatbot=conversation.chatbot, **defaults)
