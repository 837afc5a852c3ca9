"""Feedback in the admin: its own list, a read-only inline for the Turn page, a rating filter
for conversations. Comments are plain text: shown through Django's auto-escaping, never
marked safe."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.core.admin import LargeTableAdmin
from apps.core.text import ascii_int

from .models import Feedback
from .services import feedback_delete


class FeedbackInline(admin.TabularInline):
    """Read-only votes of one turn (for the Turn admin). Deleting goes through the Feedback
    admin so the thumbs counters follow."""

    model = Feedback
    fk_name = "turn"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    fields = ("rating", "comment", "source", "voter_key", "created_at", "updated_at")
    readonly_fields = fields
    ordering = ("-created_at",)
    verbose_name_plural = "feedback"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RatingListFilter(admin.SimpleListFilter):
    """For the Conversation admin (review queue): filter by the end users' thumbs."""

    title = "rating"
    parameter_name = "rating"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("down", "👎 Any thumbs down"),
            ("up", "👍 Any thumbs up"),
            ("only_up", "👍 Only thumbs up"),
            ("rated", "Rated"),
            ("unrated", "Not rated"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "down":
            return queryset.filter(thumbs_down__gt=0)
        if value == "up":
            return queryset.filter(thumbs_up__gt=0)
        if value == "only_up":
            return queryset.filter(thumbs_up__gt=0, thumbs_down=0)
        if value == "rated":
            return queryset.filter(Q(thumbs_up__gt=0) | Q(thumbs_down__gt=0))
        if value == "unrated":
            return queryset.filter(thumbs_up=0, thumbs_down=0)
        return queryset


class ConversationFilter(admin.SimpleListFilter):
    """`?conversation=<id>`: the feedback of one conversation (the review page shows it inline)."""

    title = "conversation"
    parameter_name = "conversation"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"Conversation {value}")] if ascii_int(value) is not None else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        conversation_id = ascii_int(self.value())
        if conversation_id is not None:
            return queryset.filter(turn__conversation_id=conversation_id)
        return queryset


@admin.register(Feedback)
class FeedbackAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    list_display = (
        "created_at",
        "rating",
        "comment_short",
        "chatbot",
        "turn_link",
        "conversation_link",
        "source",
    )
    list_filter = ("rating", "source", ChatbotListFilter, ConversationFilter)
    list_select_related = ("chatbot", "turn", "turn__conversation")
    search_fields = ("comment",)
    date_hierarchy = "created_at"
    raw_id_fields = ("turn", "chatbot")
    readonly_fields = (
        "turn",
        "chatbot",
        "voter_key",
        "rating",
        "source",
        "created_at",
        "updated_at",
    )
    fields = (
        "turn",
        "chatbot",
        "rating",
        "comment",
        "source",
        "voter_key",
        "created_at",
        "updated_at",
    )
    actions = ["delete_selected_feedback"]

    @admin.display(description="comment")
    def comment_short(self, feedback: Feedback) -> str:
        return Truncator(feedback.comment).chars(80)

    @admin.display(description="turn", ordering="turn")
    def turn_link(self, feedback: Feedback) -> str:
        url = reverse("admin:conversations_turn_change", args=[feedback.turn_id])
        return format_html('<a href="{}">{}</a>', url, feedback.turn)

    @admin.display(description="conversation")
    def conversation_link(self, feedback: Feedback) -> str:
        conversation = feedback.turn.conversation
        url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
        return format_html('<a href="{}">{}</a>', url, conversation)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Votes come from end users through the API; an admin-made vote would have no voter.
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        # Django's bulk delete skips the service and would leave the thumbs counters wrong.
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request: HttpRequest, obj: Feedback) -> None:
        feedback_delete(feedback_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for feedback_id in queryset.values_list("pk", flat=True):
            feedback_delete(feedback_id=feedback_id)

    @admin.action(
        description="Delete selected feedback (updates the thumbs counts)", permissions=["delete"]
    )
    def delete_selected_feedback(self, request: HttpRequest, queryset: QuerySet) -> None:
        deleted = sum(
            feedback_delete(feedback_id=pk) for pk in queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"Deleted {deleted} feedback.", messages.SUCCESS)
