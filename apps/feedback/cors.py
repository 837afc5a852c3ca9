"""CORS for the public feedback endpoint, without a global CORS middleware.

Only `POST /api/v1/feedback` is cross-origin; everything else in chatmon stays same-origin.

- A preflight (OPTIONS) carries no body, so the token and its chatbot are unknown: the origin
  is allowed when it is in *any* chatbot's `allowed_origins` (or is chatmon's own origin). That
  reveals nothing a browser could not learn by trying.
- The actual POST is then checked against the token's chatbot: an origin that belongs to
  another chatbot gets 403 and no `Access-Control-Allow-Origin`, so a site cannot rate another
  company's bot even with a leaked token.
- Error answers given before the token is known (bad JSON, throttled) follow the preflight rule
  so a legitimate widget can read them and show the right message.
- Requests without an `Origin` header (curl, server-side code) are not CORS and are allowed:
  the signed token is the credential, CORS only limits which web pages may use it.
- An entry "*" in a chatbot's `allowed_origins` allows every origin for that chatbot.
"""

from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from apps.chatbots.models import Chatbot

PREFLIGHT_MAX_AGE_SECONDS = 600


def origin_normalise(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_own(request: HttpRequest) -> set[str]:
    """chatmon's own origin(s): the demo page and the admin are same-origin callers."""
    own = {origin_normalise(f"{request.scheme}://{request.get_host()}")}
    if settings.SITE_URL:
        own.add(origin_normalise(settings.SITE_URL))
    return own


def _origin_in(origin: str, allowed: Iterable[object]) -> bool:
    for entry in allowed:
        if not isinstance(entry, str):
            continue
        entry = origin_normalise(entry)
        if entry == "*" or entry == origin:
            return True
    return False


def origin_allowed_for_chatbot(*, request: HttpRequest, origin: str, chatbot: Chatbot) -> bool:
    origin = origin_normalise(origin)
    return origin in origin_own(request) or _origin_in(origin, chatbot.allowed_origins or [])


def origin_allowed_for_any_chatbot(*, request: HttpRequest, origin: str) -> bool:
    origin = origin_normalise(origin)
    if origin in origin_own(request):
        return True
    # A handful of chatbots per installation: reading their origin lists is cheap, and the
    # same code works on SQLite (no JSON containment lookup there).
    return any(
        _origin_in(origin, allowed or [])
        for allowed in Chatbot.objects.exclude(allowed_origins=[]).values_list(
            "allowed_origins", flat=True
        )
        if isinstance(allowed, list)
    )


def cors_allow(response: HttpResponse, origin: str) -> None:
    response["Access-Control-Allow-Origin"] = origin
    # The widget reads Retry-After on 429 to tell the user when to try again.
    response["Access-Control-Expose-Headers"] = "Retry-After"


def cors_preflight_allow(response: HttpResponse, origin: str) -> None:
    cors_allow(response, origin)
    response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
    # Only Content-Type: a browser can never send an API key (Authorization) cross-origin.
    response["Access-Control-Allow-Headers"] = "Content-Type"
    response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)


def vary_on_origin(response: HttpResponse) -> None:
    existing = [v.strip() for v in response.get("Vary", "").split(",") if v.strip()]
    if "origin" not in {v.lower() for v in existing}:
        response["Vary"] = ", ".join([*existing, "Origin"])
