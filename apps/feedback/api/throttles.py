"""Rate limits for feedback, kept in Django's cache (Redis in production).

Public widget votes are limited per client IP (`feedback_ip`) and per token (`feedback_token`);
a bot posting with its API key is limited per key instead (the ingest budget of that key,
apps.chatbots.api.throttling), since a bot relays every user's votes from one server address.

The client IP comes from DRF's `get_ident`: behind a reverse proxy set REST_FRAMEWORK
`NUM_PROXIES` so a client cannot pick its own X-Forwarded-For.
"""

import hashlib

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from apps.chatbots.models import ApiKey


def _is_bot(request: Request) -> bool:
    return isinstance(request.auth, ApiKey)


class _LiveRateThrottle(SimpleRateThrottle):
    """Reads the rate when used, not at import, so settings changes (and tests) take effect."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class FeedbackIpThrottle(_LiveRateThrottle):
    scope = "feedback_ip"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if _is_bot(request):
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class FeedbackTokenThrottle(_LiveRateThrottle):
    scope = "feedback_token"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if _is_bot(request):
            return None
        data = request.data
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            return None  # the serializer answers 400 for a missing token
        ident = hashlib.sha256(token.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": ident}
