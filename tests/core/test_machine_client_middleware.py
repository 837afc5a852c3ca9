"""MachineClientMiddleware: bot, OTLP and Langfuse-API paths skip the browser middleware; every
other path runs the whole chain."""

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from apps.audit.middleware import current_actor
from apps.core.middleware import MachineClientMiddleware

TURN = {"conversation_id": "c-1", "turn_id": "t-1", "user_message": "Hi", "bot_response": "Hello"}


@pytest.mark.django_db
def test_a_bot_request_skips_the_browser_middleware_and_keeps_the_security_headers(post_json, admin_client):
    response = post_json("/api/v1/ingest/turns", TURN)
    assert response.status_code == 201
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware runs before it
    assert "X-Frame-Options" not in response  # XFrameOptionsMiddleware did not run
    assert "Cookie" not in response.get("Vary", "")  # nor sessions
    assert not response.cookies

    page = admin_client.get("/admin/")  # a staff page runs the whole chain
    assert page.status_code == 200
    assert page["X-Frame-Options"] == "DENY"


def test_machine_paths_never_reach_the_rest_of_the_chain_and_others_always_do(rf: RequestFactory):
    calls = []

    def rest_of_chain(request):
        calls.append(request.path)
        return HttpResponse("page")

    middleware = MachineClientMiddleware(rest_of_chain)
    # Routed and answered on the short chain: an unknown machine path is a plain 404, no redirect.
    for path in ("/api/v1/ingest/nope", "/v1/nope", "/api/public/nope"):
        response = middleware(rf.post(path, b"{}", content_type="application/json"))
        assert response.status_code == 404, path
    assert calls == []
    for path in ("/admin/", "/api/v1/conversations/", "/api/v1/ingestion", "/v1", "/healthz"):
        assert middleware(rf.get(path)).content == b"page"
    assert calls == ["/admin/", "/api/v1/conversations/", "/api/v1/ingestion", "/v1", "/healthz"]


SEEN: list[str] = []


class ActorRecording:
    """A machine-client middleware for the test: records who the audit actor is."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        SEEN.append(current_actor()[1])
        return self.get_response(request)


def test_the_short_chain_runs_the_machine_client_middleware_in_order(rf: RequestFactory, settings):
    settings.MACHINE_CLIENT_MIDDLEWARE = ["apps.audit.middleware.AuditActorMiddleware",
                                          f"{__name__}.ActorRecording"]
    SEEN.clear()
    middleware = MachineClientMiddleware(lambda request: HttpResponse("page"))
    assert middleware(rf.post("/v1/nope")).status_code == 404
    assert SEEN == ["anonymous"]  # AuditActorMiddleware had set the request (outside one: "system")
