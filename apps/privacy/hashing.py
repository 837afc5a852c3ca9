import hashlib
import hmac

from django.conf import settings


def end_user_hash(*, chatbot_id: int, user_id: str) -> str:
    """HMAC-SHA256 of an end-user id, keyed with a server secret and scoped to one chatbot.

    A bare hash could be reversed by hashing a list of candidate emails; the key prevents that.
    """
    if not user_id:
        return ""
    message = f"{chatbot_id}:{user_id}".encode()
    return hmac.new(settings.END_USER_HASH_KEY.encode(), message, hashlib.sha256).hexdigest()
