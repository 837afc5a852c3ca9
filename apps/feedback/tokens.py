"""Signed, expiring feedback tokens: one token rates exactly one turn of one chatbot."""

from dataclasses import dataclass

from django.conf import settings
from django.core import signing

SALT = "chatmon.feedback.v1"


@dataclass(frozen=True)
class FeedbackTokenClaims:
    turn_id: int
    chatbot_id: int


class FeedbackTokenError(Exception):
    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


def feedback_token_for(*, turn_id: int, chatbot_id: int) -> str:
    return signing.dumps([turn_id, chatbot_id], salt=SALT, compress=False)


def feedback_token_parse(token: str) -> FeedbackTokenClaims:
    try:
        turn_id, chatbot_id = signing.loads(
            token, salt=SALT, max_age=settings.FEEDBACK_TOKEN_MAX_AGE_SECONDS
        )
    except signing.SignatureExpired as exc:
        raise FeedbackTokenError("This feedback token has expired.", expired=True) from exc
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise FeedbackTokenError("This feedback token is not valid.") from exc
    if not isinstance(turn_id, int) or not isinstance(chatbot_id, int):
        raise FeedbackTokenError("This feedback token is not valid.")
    return FeedbackTokenClaims(turn_id=turn_id, chatbot_id=chatbot_id)
