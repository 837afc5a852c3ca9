from django.contrib import admin

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin

from .models import PendingSpanContent


@admin.register(PendingSpanContent)
class PendingSpanContentAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    """Read-only: what log events are waiting for their span (a symptom of a missing traces exporter)."""

    list_display = ("trace_id", "span_id", "chatbot", "first_event_at", "received_at")
    list_filter = (ChatbotListFilter,)
    list_select_related = ("chatbot",)
    search_fields = ("=trace_id", "=span_id")
    show_full_result_count = False
    readonly_fields = ("chatbot", "trace_id", "span_id", "events", "first_event_at", "received_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
