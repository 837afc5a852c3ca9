"""Remembers the current request so audit receivers (model signals) can name the actor."""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

_current_request: ContextVar[HttpRequest | None] = ContextVar("chatmon_current_request", default=None)


def current_actor() -> tuple[Any, str]:
    """(user or None, label) of whoever made the current request; ("system") outside requests.

    DRF copies its authenticated user onto the Django request, so API-key and token users are
    seen here too.
    """
    request = _current_request.get()
    if request is None:
        return None, "system"
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None, "anonymous"
    if hasattr(user, "api_key"):  # a bot (apps.ingest BotUser)
        return None, str(user)
    return user, user.get_username()


class AuditActorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)
