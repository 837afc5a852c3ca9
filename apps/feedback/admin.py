from django.contrib import admin

from apps.core.admin import LargeTableAdmin

from .models import Feedback


@admin.register(Feedback)
class FeedbackAdmin(LargeTableAdmin):
    list_display = ("id", "turn", "chatbot", "rating", "source", "comment", "created_at")
    list_filter = ("rating", "source", "chatbot")
    list_select_related = ("chatbot", "turn")
    raw_id_fields = ("turn", "chatbot")
