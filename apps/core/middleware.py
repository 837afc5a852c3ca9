from collections.abc import Callable

from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

# chatmon's own pages load scripts and styles only from itself; the admin needs inline styles.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)


class ContentSecurityPolicyMiddleware:
    """Adds a Content-Security-Policy to HTML responses that do not set their own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = DEFAULT_CSP
        return response


class MachineClientMiddleware:
    """Requests of machine clients (paths under MACHINE_CLIENT_PATH_PREFIXES: the bot ingest API,
    OTLP, Langfuse's public API) skip the middleware listed after this one, which serves browsers
    and staff: static files, sessions, CSRF, authentication by session, messages, clickjacking
    headers, the admin login lockout. They authenticate by API key in the view, so they run only
    MACHINE_CLIENT_MIDDLEWARE (the audit actor, so audit receivers name the bot), then URL
    routing and the view. Other paths run the whole chain. Exceptions become responses as
    Django's own handler makes them (404, 400, 500 pages).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.MACHINE_CLIENT_PATH_PREFIXES)
        # URL routing and the view without middleware: Django's handler, its hook lists empty.
        view_only = BaseHandler()
        view_only._view_middleware = []
        view_only._template_response_middleware = []
        view_only._exception_middleware = []
        chain = convert_exception_to_response(view_only._get_response)
        for path in reversed(settings.MACHINE_CLIENT_MIDDLEWARE):
            chain = convert_exception_to_response(import_string(path)(chain))
        self.machine_response = chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.prefixes and request.path_info.startswith(self.prefixes):
            return self.machine_response(request)
        return self.get_response(request)
