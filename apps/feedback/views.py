"""The widget demo page: a mock chat of recent turns, each with a live feedback widget."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.chatbots.access import chatbot_ids_for_user, chatbot_scoped
from apps.chatbots.models import Chatbot
from apps.core.text import control_characters_present

from .selectors import demo_transcript


@require_GET
def widget_demo(request: HttpRequest) -> HttpResponse:
    # The page shows real conversations: public only when FEEDBACK_DEMO_PUBLIC (DEBUG by
    # default), otherwise staff see the chatbots they may review.
    if settings.FEEDBACK_DEMO_PUBLIC:
        chatbot_ids = None
    elif request.user.is_authenticated and request.user.is_staff:
        chatbot_ids = chatbot_ids_for_user(request.user)
    else:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))

    chatbot_slug = request.GET.get("chatbot", "")[:100]
    if control_characters_present(chatbot_slug):
        chatbot_slug = ""  # no slug has them (and PostgreSQL compares no NUL): every chatbot
    chatbots = Chatbot.objects.order_by("name").only("name", "slug")
    chatbots = chatbot_scoped(chatbots, chatbot_ids, field="pk")
    context = {
        "conversations": demo_transcript(chatbot_ids=chatbot_ids, chatbot_slug=chatbot_slug),
        "chatbots": list(chatbots[:50]),
        "chatbot_slug": chatbot_slug,
        "endpoint": reverse("feedback-api"),
        "max_comment_chars": settings.FEEDBACK_MAX_COMMENT_CHARS,
    }
    response = render(request, "feedback/widget_demo.html", context)
    # Fresh tokens in every render: never cache the page.
    response["Cache-Control"] = "no-store"
    return response
