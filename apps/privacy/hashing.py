"""End-user ids as keyed hashes: the one place an end-user id is normalised and hashed.

Every path that receives an end-user id (REST turns, the bot's feedback API, OTLP `user.id` /
`enduser.id`, the erasure endpoint, the admin's erasure action) goes through `end_user_hash`,
so the id a bot sends at ingest and the id it sends to erase the user give the same hash.
"""

import hashlib
import hmac

from django.conf import settings


def end_user_id_normalise(user_id: object) -> str:
    """The one form of an end-user id: as text, without surrounding whitespace.

    Numbers are accepted where ids are (ingest takes `42` and `"42"` alike), and `" carol "` is
    `"carol"` everywhere. Nothing else is folded (case, Unicode forms): ids are the bot's, and
    `Carol` may be another user than `carol`.
    """
    if user_id is None:
        return ""
    return str(user_id).strip()


def _keyed_hash(message: str) -> str:
    # A bare hash could be reversed by hashing a list of candidate emails; the key prevents that.
    return hmac.new(settings.END_USER_HASH_KEY.encode(), message.encode(), hashlib.sha256).hexdigest()


def end_user_hash(*, chatbot_id: int, user_id: object) -> str:
    """HMAC-SHA256 of a normalised end-user id, keyed with a server secret, scoped to one
    chatbot; "" when there is no id."""
    normalised = end_user_id_normalise(user_id)
    if not normalised:
        return ""
    return _keyed_hash(f"{chatbot_id}:{normalised}")


def anonymous_turn_voter_hash(*, turn_id: int) -> str:
    """The voter of an anonymous vote on one turn (no end user known): a keyed hash of the turn."""
    return _keyed_hash(f"anonymous-turn:{turn_id}")
