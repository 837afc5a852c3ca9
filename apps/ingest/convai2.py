"""Replay the ConvAI2 "wild evaluation" dialogues (DeepPavlov) as real traffic.

Each dialogue becomes a conversation of the research bot that took part (one chatbot per bot
id, e.g. "convai2-bot-006"); a run of human messages followed by a bot message is one turn, and
the bot message's real rating (evaluation_score 1/0) becomes a thumbs-up/down by that human.
Ids are derived from the file, so replaying twice stores nothing twice.
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from apps.chatbots.models import Chatbot
from apps.conversations.models import Turn

from .services import turns_ingest
from .validation import parse_turn


def _participants(dialogue: dict[str, Any]) -> tuple[str, str, str]:
    """(human sender key, human user id, bot user id)."""
    human = bot = None
    for key in ("participant1", "participant2"):
        info = dialogue.get(f"{key}_id") or {}
        if info.get("class") == "Bot":
            bot = (key, info.get("user_id", "Bot"))
        else:
            human = (key, info.get("user_id", "User"))
    human = human or ("participant1", "User")
    bot = bot or ("participant2", "Bot")
    return human[0], human[1], bot[1]


def dialogue_turns(dialogue: dict[str, Any], conversation_id: str) -> Iterator[tuple[dict[str, Any], int | None]]:
    """(turn payload, rating 1/0/None) for each bot message, with the human text before it."""
    _, human_id, _ = _participants(dialogue)
    start = parse_datetime(dialogue.get("start_time") or "") or datetime(2018, 10, 29, tzinfo=UTC)
    end = parse_datetime(dialogue.get("end_time") or "") or start
    if start.tzinfo is None:
        start, end = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    messages = dialogue.get("dialog") or []
    step = (end - start) / max(1, len(messages))
    pending: list[str] = []
    for position, message in enumerate(messages):
        text = (message.get("text") or "").strip()
        if message.get("sender_class") == "Bot":
            yield {
                "conversation_id": conversation_id, "turn_id": f"{conversation_id}-{message.get('id', position)}",
                "user_id": human_id, "channel": "website", "user_message": "\n".join(pending), "bot_response": text,
                "timestamp": (start + step * position).isoformat(), "model": "",
                "metadata": {"source": "convai2"},
            }, message.get("evaluation_score")
            pending = []
        elif text:
            pending.append(text)
    if pending:
        yield {
            "conversation_id": conversation_id, "turn_id": f"{conversation_id}-end", "user_id": human_id,
            "channel": "website", "user_message": "\n".join(pending), "bot_response": "",
            "timestamp": (end + timedelta(seconds=1)).isoformat(), "metadata": {"source": "convai2"},
        }, None


def convai2_replay(path: Path, *, limit: int | None = None) -> dict[str, int]:
    """Load one ConvAI2 JSON file; returns counts of turns, thumbs-up and thumbs-down stored."""
    from apps.feedback.services import feedback_submit, voter_key_compute

    dialogues = json.loads(Path(path).read_text())
    if limit is not None:
        dialogues = dialogues[:limit]
    stem = slugify(Path(path).stem)
    counts = {"dialogues": 0, "turns": 0, "up": 0, "down": 0}
    chatbots: dict[str, Chatbot] = {}
    for index, dialogue in enumerate(dialogues):
        _, human_id, bot_id = _participants(dialogue)
        slug = f"convai2-{slugify(bot_id)}"
        if slug not in chatbots:
            chatbots[slug], _ = Chatbot.objects.get_or_create(
                slug=slug, defaults={"name": f"ConvAI2 {bot_id}", "company": "ConvAI2 (DeepPavlov)",
                                     "provider": "self_hosted", "description": "Research bot from the ConvAI2 wild evaluation."},
            )
        chatbot = chatbots[slug]
        pairs = list(dialogue_turns(dialogue, f"convai2-{stem}-{index:05d}"))
        if not pairs:
            continue
        turns_ingest(chatbot=chatbot, turns=[parse_turn(payload) for payload, _ in pairs])
        counts["dialogues"] += 1
        counts["turns"] += len(pairs)
        rated = {payload["turn_id"]: score for payload, score in pairs if score in (0, 1)}
        if not rated:
            continue
        for turn in Turn.objects.filter(chatbot=chatbot, conversation__external_id=pairs[0][0]["conversation_id"],
                                        external_id__in=list(rated)):
            rating = "up" if rated[turn.external_id] == 1 else "down"
            feedback_submit(
                turn_id=turn.pk, rating=rating, source="import",
                voter_key=voter_key_compute(chatbot_id=chatbot.pk, turn_id=turn.pk, turn_end_user_hash="",
                                            user_id=human_id),
            )
            counts[rating] += 1
    return counts
