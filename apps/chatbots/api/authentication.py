"""Bot authentication: `Authorization: Bearer cm_<prefix>_<secret>`.

The prefix finds the row, the SHA-256 of the whole key is compared in constant time, revoked keys
fail at once. last_used_at is written at most once a minute per key (a cache key guards it), so
the hot path does not write per request.

Keys (with their chatbot) are kept in a per-process cache for API_KEY_CACHE_SECONDS, so a bot
request costs no database query for authentication. Revocation stays immediate through a
version stamp in the shared cache (Redis):

1. Saving or deleting any API key or chatbot replaces the stamp with a new random value, at
   once and again when the transaction commits (`api_keys_stamp_bump`, connected in
   apps.chatbots.apps). Queryset `.update()` sends no signal: call `api_keys_stamp_bump()` after
   one that changes what a bot request reads (only last_used_at is written that way today).
2. Every request reads the stamp (one Redis GET) before anything else; a cached key is used
   only if it was fetched under the same stamp and within the TTL. The stamp is read before the
   database fetch, so a revocation committing in between leaves the entry under the old stamp.
3. When the stamp is missing (Redis flushed, or unreachable: the cache fails open) nothing
   cached is trusted: the key is read from the database, as without the cache, and a fresh
   random stamp is set, which no older entry can carry.
"""

import hmac
import secrets
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.chatbots.models import ApiKey

from .throttling import COUNTED_ATTRIBUTE, ApiKeyRateThrottle


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


STAMP_KEY = "apikey:stamp"
_CACHE_LIMIT = 10_000
# SHA-256 of the raw key → (monotonic time fetched, stamp it was fetched under, key with chatbot)
_keys: dict[str, tuple[float, str, ApiKey]] = {}


def api_keys_stamp_bump() -> None:
    """Invalidate every process's cached keys (and their chatbots): a new random stamp."""
    cache.set(STAMP_KEY, secrets.token_hex(8), timeout=None)


def api_key_cache_clear() -> None:
    """Forget this process's cached keys (for tests and resets)."""
    _keys.clear()


def api_key_authenticate(raw_key: str, *, request: Any = None) -> ApiKey | None:
    """The key `raw_key` names, or None. With `request` (a throttled bot endpoint) and a key this
    process verified before, the stamp GET also counts the request for ApiKeyRateThrottle, in
    one Redis round trip; the count is left on the request for the throttle. Only a key whose
    hash matched a stored key before is counted so (a wrong secret never uses a key's quota)."""
    prefix = ApiKey.parse_prefix(raw_key)
    if prefix is None:
        return None
    key_hash = ApiKey.hash_key(raw_key)
    ttl = settings.API_KEY_CACHE_SECONDS
    cached = _keys.get(key_hash)
    get_and_count = getattr(cache, "get_and_incr_window", None)
    if ttl > 0 and request is not None and cached is not None and get_and_count is not None:
        counter_key, timeout = ApiKeyRateThrottle().window_key(cached[2].prefix)
        stamp, used = get_and_count(STAMP_KEY, counter_key, timeout)  # fails open: (None, 1)
        setattr(request, COUNTED_ATTRIBUTE, (counter_key, used))
    else:
        stamp = cache.get(STAMP_KEY) if ttl > 0 else None
    now = time.monotonic()
    if stamp is None:
        cached = None
    if cached is not None and cached[1] == stamp and now - cached[0] < ttl:
        key = cached[2]
    else:
        if stamp is None and ttl > 0:
            cache.add(STAMP_KEY, secrets.token_hex(8), timeout=None)
        try:
            key = ApiKey.objects.select_related("chatbot").get(prefix=prefix)
        except ApiKey.DoesNotExist:
            return None
        if key.revoked_at is not None or not hmac.compare_digest(key.key_hash, key_hash):
            return None
        if stamp is not None:
            if len(_keys) >= _CACHE_LIMIT:
                _keys.clear()
            _keys[key_hash] = (now, stamp, key)
    if key.revoked_at is not None:
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
        key = api_key_authenticate(parts[1], request=request)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return BotUser(key), key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="chatmon"'
