"""Reads for feedback: the demo transcript and a conversation's votes."""

from dataclasses import dataclass, field

from apps.chatbots.access import chatbot_scoped
from apps.conversations.models import Conversation, Turn

from .models import Feedback
from .services import voter_key_compute
from .tokens import feedback_token_for


@dataclass
class DemoTurn:
    turn: Turn
    token: str
    # The widget voter's current rating on this turn, so the demo shows the chosen state.
    rating: str


@dataclass
class DemoConversation:
    conversation: Conversation
    turns: list[DemoTurn] = field(default_factory=list)


def demo_transcript(
    *, chatbot_ids: list[int] | None, chatbot_slug: str = "", limit: int = 24
) -> list[DemoConversation]:
    """The most recent answered turns, grouped by conversation, each with a fresh token.

    `chatbot_ids=None` means every chatbot. Three queries, whatever the number of turns.
    """
    turns = Turn.objects.exclude(bot_response="").select_related("conversation__chatbot")
    turns = chatbot_scoped(turns, chatbot_ids)
    if chatbot_slug:
        turns = turns.filter(chatbot__slug=chatbot_slug)
    recent = list(turns.order_by("-timestamp", "-id")[:limit])

    voter_keys = {
        turn.pk: voter_key_compute(
            chatbot_id=turn.chatbot_id,
            turn_id=turn.pk,
            turn_end_user_hash=turn.end_user_hash or turn.conversation.end_user_hash,
        )
        for turn in recent
    }
    ratings = {
        (turn_id, voter_key): rating
        for turn_id, voter_key, rating in Feedback.objects.filter(
            turn_id__in=voter_keys.keys(), voter_key__in=set(voter_keys.values())
        ).values_list("turn_id", "voter_key", "rating")
    }

    by_conversation: dict[int, DemoConversation] = {}
    for turn in sorted(recent, key=lambda t: (t.conversation_id, t.sequence, t.timestamp, t.pk)):
        group = by_conversation.setdefault(
            turn.conversation_id, DemoConversation(conversation=turn.conversation)
        )
        group.turns.append(
            DemoTurn(
                turn=turn,
                token=feedback_token_for(turn_id=turn.pk, chatbot_id=turn.chatbot_id),
                rating=ratings.get((turn.pk, voter_keys[turn.pk]), ""),
            )
        )
    # Most recently active conversation first, like a support inbox.
    return sorted(
        by_conversation.values(),
        key=lambda g: max(t.turn.timestamp for t in g.turns),
        reverse=True,
    )
