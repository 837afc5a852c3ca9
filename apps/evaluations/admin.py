from django.contrib import admin

from apps.core.admin import LargeTableAdmin

from .models import Evaluation


@admin.register(Evaluation)
class EvaluationAdmin(LargeTableAdmin):
    list_display = ("id", "turn", "chatbot", "evaluator", "evaluator_version", "status", "overall", "hallucination", "created_at")
    list_filter = ("evaluator", "status", "hallucination", "chatbot")
    list_select_related = ("chatbot", "turn")
    raw_id_fields = ("turn", "chatbot", "llm_call", "created_by")
