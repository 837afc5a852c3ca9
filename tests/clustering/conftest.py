from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_conversation, make_turn

# Three clearly separate complaint themes, eight wordings each.
THEMES: dict[str, list[str]] = {
    "refund": [
        "I want a refund for my broken order",
        "how do I get my money back refund please",
        "refund my payment the product arrived broken",
        "still waiting for my refund money",
        "please refund the money for the broken blender",
        "when will the refund reach my card money back",
        "the refund never arrived I want my money",
        "request a refund money back for damaged order",
    ],
    "password": [
        "I cannot reset my password login fails",
        "password reset email never arrives login",
        "forgot my password how to reset login",
        "login says wrong password after reset",
        "reset password link expired cannot login",
        "my account login password is not accepted",
        "how to change my password login locked",
        "password reset does not work login error",
    ],
    "delivery": [
        "where is my parcel delivery is late",
        "delivery tracking shows no update parcel",
        "my parcel delivery was delayed again",
        "courier delivery never came parcel missing",
        "late delivery of my parcel tracking number",
        "parcel delivery status stuck tracking",
        "when will the delivery of my parcel arrive",
        "delivery driver lost my parcel tracking",
    ],
}


@pytest.fixture
def themed_turns(chatbot):
    """24 thumbs-down turns in three themes; returns {theme: [turn ids]}."""
    now = timezone.now()
    conversation = make_conversation(chatbot)
    ids: dict[str, list[int]] = {}
    # Interleave themes so turn order says nothing about the theme.
    for i in range(8):
        for j, (theme, messages) in enumerate(THEMES.items()):
            turn = make_turn(
                conversation,
                user_message=messages[i],
                bot_response=f"Sorry, I cannot help with that ({theme}).",
                thumbs_down=1,
                judge_overall=float(3 + j),
                timestamp=now - timedelta(hours=1 + i * 3 + j),
            )
            ids.setdefault(theme, []).append(turn.id)
    return ids
