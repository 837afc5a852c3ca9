from django.contrib import admin

from .models import DetectionRule


@admin.register(DetectionRule)
class DetectionRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "chatbot", "applies_to", "points", "severity", "is_active", "updated_at")
    list_filter = ("is_active", "severity", "applies_to", "chatbot")
    list_select_related = ("chatbot",)
    search_fields = ("name", "description")
