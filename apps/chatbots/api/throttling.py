import time

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

# The request attribute where authentication leaves (counter key, count) when it counted already.
COUNTED_ATTRIBUTE = "_chatmon_throttle_counted"


class ApiKeyRateThrottle(BaseThrottle):
    """Fixed-window request counter per API key in Django's cache (Redis in production).

    One round trip per request (apps.core.cache's incr_window), unlike DRF's SimpleRateThrottle which stores every request time.
    Rate: the "ingest" scope of DEFAULT_THROTTLE_RATES (env INGEST_RATE_LIMIT, e.g. 6000/min).
    """

    scope = "ingest"
    _periods = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def __init__(self) -> None:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        count, period = rate.split("/")
        self.limit = int(count)
        self.period = self._periods[period[0]]
        self.wait_seconds = 0

    def allow_request(self, request, view) -> bool:
        prefix = getattr(getattr(request, "auth", None), "prefix", None)
        if prefix is None:
            return True
        # Authentication may have counted this request already, in its own Redis round trip.
        counted = getattr(request, COUNTED_ATTRIBUTE, None)
        return self.allow_key(prefix, counted=counted)

    def window_key(self, prefix: str) -> tuple[str, int]:
        """The counter of this window for the key with `prefix`, and how long it lives."""
        return f"throttle:{self.scope}:{prefix}:{int(time.time() // self.period)}", self.period + 1

    def allow_key(self, prefix: str, *, counted: tuple[str, int] | None = None) -> bool:
        """Count one request for the key with this prefix; False (and `wait()`) when over the rate.
        `counted`: (counter key, count) already taken for this request (apps.chatbots.api.authentication)."""
        now = time.time()
        window = int(now // self.period)
        cache_key = f"throttle:{self.scope}:{prefix}:{window}"
        incr_window = getattr(cache, "incr_window", None)  # Redis: one round trip
        if counted is not None and counted[0] == cache_key:
            used = counted[1]
        elif incr_window is not None:
            used = incr_window(cache_key, self.period + 1)
        elif cache.add(cache_key, 1, timeout=self.period + 1):
            return True
        else:
            try:
                used = cache.incr(cache_key)
            except ValueError:  # expired between add and incr
                cache.add(cache_key, 1, timeout=self.period + 1)
                return True
        if used <= self.limit:
            return True
        self.wait_seconds = max(1, int((window + 1) * self.period - now) + 1)
        return False

    def wait(self) -> float:
        return self.wait_seconds
