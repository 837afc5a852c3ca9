"""Chatbot scoping for every admin whose rows belong to a chatbot.

Add `ChatbotScopedAdminMixin` first in the bases of a ModelAdmin (before ModelAdmin/LargeTableAdmin):
reviewers then see only rows of the chatbots they are assigned to; an object outside their scope
is a 404 on its change, delete and history pages; chatbot choices in forms and the list filter
are narrowed the same way. Superusers and "Chatbot admin" members are not filtered.

    class EvaluationAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
        list_filter = (ChatbotListFilter, "status")

Set `chatbot_scope_field` when the path to the chatbot is not `chatbot` (e.g. "run__chatbot",
or "pk" on the Chatbot admin itself).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from apps.chatbots.models import Chatbot
from apps.core.text import ascii_int

from .access import chatbot_scoped, chatbots_for_user, user_sees_all_chatbots


class ChatbotScopedAdminMixin:
    chatbot_scope_field = "chatbot"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return chatbot_scoped(queryset, request.user, field=self.chatbot_scope_field)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None and not user_sees_all_chatbots(request.user):
            # Out of scope or missing look the same: a plain 404, not a hint that the id exists.
            raise Http404("No such object among the chatbots you review.")
        return obj

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.related_model is Chatbot and not user_sees_all_chatbots(request.user):
            kwargs["queryset"] = chatbots_for_user(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class ChatbotListFilter(admin.SimpleListFilter):
    """"By chatbot" listing only the chatbots the user may see (the stock filter lists them all)."""

    title = "chatbot"
    parameter_name = "chatbot"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        self.scope_field = getattr(model_admin, "chatbot_scope_field", "chatbot")
        return [(str(pk), name) for pk, name in chatbots_for_user(request.user).values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        chatbot_id = ascii_int(value)
        if chatbot_id is None:
            return queryset.none()
        field = getattr(self, "scope_field", "chatbot")
        return queryset.filter(**{field if field == "pk" else f"{field}_id": chatbot_id})
