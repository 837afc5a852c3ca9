from django.contrib import admin

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.core.admin import LargeTableAdmin

from .models import Score, ScoreDefinition


@admin.register(ScoreDefinition)
class ScoreDefinitionAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "chatbot", "data_type", "min_value", "max_value", "higher_is_better")
    list_filter = (ChatbotListFilter, "data_type")
    search_fields = ("name",)


@admin.register(Score)
class ScoreAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    """What bots reported: read-only evidence, like turns."""

    list_display = ("id", "timestamp", "chatbot", "name", "display_value", "source", "conversation", "turn")
    list_filter = (ChatbotListFilter, "name", "data_type", "source")
    list_select_related = ("chatbot", "conversation", "turn")
    raw_id_fields = ("chatbot", "conversation", "turn")
    search_fields = ("=external_id", "=name", "=conversation__external_id")
    ordering = ("-timestamp", "-id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
