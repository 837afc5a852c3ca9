"""The review queue: flagged conversations, newest or riskiest first, counts per review status."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from apps.conversations.admin import ConversationAdmin
from apps.conversations.choices import ReviewStatus
from apps.core.text import ascii_int

from .access import chatbot_ids_for_user
from .models import FlaggedConversation
from .selectors import review_status_counts


def _query(request: HttpRequest, **changes: str | None) -> str:
    """The current changelist query string with `changes` applied (None removes) and page reset."""
    params = request.GET.copy()
    params.pop("p", None)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + params.urlencode() if params else "?"


def _tab_scope(request: HttpRequest) -> list[int] | None:
    """The chatbots the status tabs count: the one the queue is filtered to, if the user sees it."""
    visible = chatbot_ids_for_user(request.user)
    selected = ascii_int(request.GET.get("chatbot"))
    if selected is not None and (visible is None or selected in visible):
        return [selected]
    return visible


@admin.register(FlaggedConversation)
class FlaggedConversationAdmin(ConversationAdmin):
    list_filter = tuple(f for f in ConversationAdmin.list_filter if f != "is_flagged")
    change_list_template = "admin/review/flaggedconversation/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        counts = review_status_counts(chatbot_ids=_tab_scope(request))
        current = request.GET.get("review_status__exact", "")
        risk_column = self.list_display.index("risk_badge") + 1  # the admin's `o` index is 1-based
        riskiest = request.GET.get("o", "").startswith(f"-{risk_column}")
        extra_context = {
            **(extra_context or {}),
            "status_tabs": [
                {"label": "All flagged", "count": sum(counts.values()), "active": not current,
                 "url": _query(request, review_status__exact=None)},
                *({"label": label, "count": counts[value], "active": current == value,
                   "url": _query(request, review_status__exact=value)}
                  for value, label in ReviewStatus.choices),
            ],
            "riskiest_first": riskiest,
            "newest_url": _query(request, o=None),
            "riskiest_url": _query(request, o=f"-{risk_column}"),
        }
        return super().changelist_view(request, extra_context)
