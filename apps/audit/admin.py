from django.contrib import admin

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.core.admin import LargeTableAdmin

from .models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    list_display = ("created_at", "actor_label", "action", "object_type", "object_id", "object_repr", "chatbot")
    list_filter = ("action", "object_type", ChatbotListFilter)
    list_select_related = ("chatbot",)
    search_fields = ("=object_id", "actor_label", "action")
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
