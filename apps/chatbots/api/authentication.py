"""Bot authentication: `Authorization: Bearer cm_<prefix>_<secret>`.

The prefix finds the row, the SHA-256 of the whole key is compared in constant time, revoked keys
fail at once. last_used_at is written at most once a minute per key (a cache key guards it), so
the hot path does not write per request.
"""

import hmac
import time

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.chatbots.models import ApiKey


class BotUser:
    """The request.user of a bot request: not a staff user, carries its chatbot."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.chatbot = api_key.chatbot
        self.pk = None

    def __str__(self) -> str:
        return f"api key cm_{self.api_key.prefix}"

    def get_username(self) -> str:
        return str(self)


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    prefix = ApiKey.parse_prefix(raw_key)
    if prefix is None:
        return None
    try:
        key = ApiKey.objects.select_related("chatbot").get(prefix=prefix)
    except ApiKey.DoesNotExist:
        return None
    if key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, ApiKey.hash_key(raw_key)):
        return None
    _touch_last_used(key)
    return key


_touched_at: dict[int, float] = {}  # per process: skip even the cache call most of the time


def api_key_last_used_cache_clear() -> None:
    """Forget when this process last wrote each key's last_used_at (for tests and resets)."""
    _touched_at.clear()


def _touch_last_used(key: ApiKey) -> None:
    resolution = settings.API_KEY_LAST_USED_RESOLUTION_SECONDS
    now_monotonic = time.monotonic()
    if now_monotonic - _touched_at.get(key.pk, -resolution) < resolution:
        return
    _touched_at[key.pk] = now_monotonic
    if cache.add(f"apikey:last_used:{key.pk}", 1, timeout=resolution):
        now = timezone.now()
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1", errors="replace")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise exceptions.AuthenticationFailed("Use the header 'Authorization: Bearer <api key>'.")
        key = api_key_authenticate(parts[1])
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return BotUser(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="chatmon"'
