"""Signed, expiring feedback tokens: one token rates exactly one turn of one chatbot.

A token is Django's signing of `[turn_id, chatbot_id]` with a timestamp, salted for this use
(so no other signed value of the project can pass as one) and keyed with SECRET_KEY (rotations
via SECRET_KEY_FALLBACKS keep old tokens valid). Changing any character breaks the signature,
so a token cannot be edited to rate another turn. It expires FEEDBACK_TOKEN_MAX_AGE_SECONDS
after it was issued (default 7 days).
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.utils import timezone

SALT = "chatmon.feedback.v1"


@dataclass(frozen=True)
class FeedbackTokenClaims:
    turn_id: int
    chatbot_id: int


class FeedbackTokenError(Exception):
    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class _IssuedAtSigner(signing.TimestampSigner):
    """Stamps a given issue time instead of now, so re-issuing a turn's token is stable."""

    def __init__(self, *, issued_at: datetime, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._issued_at = int(issued_at.timestamp())

    def timestamp(self) -> str:
        return signing.b62_encode(self._issued_at)


def feedback_token_for(*, turn_id: int, chatbot_id: int, issued_at: datetime | None = None) -> str:
    """The token for one turn. `issued_at` (e.g. the turn's creation) makes replays of an
    ingest answer return the same token, and starts the expiry from then; default now."""
    payload = [int(turn_id), int(chatbot_id)]
    if issued_at is None:
        return signing.dumps(payload, salt=SALT, compress=False)
    if timezone.is_naive(issued_at):
        issued_at = timezone.make_aware(issued_at)
    return _IssuedAtSigner(issued_at=issued_at, salt=SALT).sign_object(payload, compress=False)


def feedback_token_parse(token: str) -> FeedbackTokenClaims:
    if not isinstance(token, str) or not token:
        raise FeedbackTokenError("This feedback token is not valid.")
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.FEEDBACK_TOKEN_MAX_AGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise FeedbackTokenError("This feedback token has expired.", expired=True) from exc
    except (signing.BadSignature, ValueError, TypeError, UnicodeError) as exc:
        raise FeedbackTokenError("This feedback token is not valid.") from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in payload)
    ):
        raise FeedbackTokenError("This feedback token is not valid.")
    return FeedbackTokenClaims(turn_id=payload[0], chatbot_id=payload[1])
