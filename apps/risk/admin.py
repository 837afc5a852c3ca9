from django.contrib import admin

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin

from .models import DetectionRule


@admin.register(DetectionRule)
class DetectionRuleAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "chatbot", "applies_to", "points", "severity", "is_active", "updated_at")
    list_filter = ("is_active", "severity", "applies_to", ChatbotListFilter)
    list_select_related = ("chatbot",)
    search_fields = ("name", "description")
