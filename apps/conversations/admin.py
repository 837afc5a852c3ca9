from django.contrib import admin

from apps.core.admin import LargeTableAdmin

from .models import Conversation, LLMCall, Turn


class TurnInline(admin.StackedInline):
    model = Turn
    extra = 0
    fields = ("sequence", "timestamp", "user_message", "bot_response", "risk_score", "risk_level", "is_flagged", "flag_reasons", "latency_ms", "fallback_used", "has_error", "judge_overall", "thumbs_up", "thumbs_down")
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    max_num = 0
    ordering = ("sequence",)


class LLMCallInline(admin.TabularInline):
    model = LLMCall
    fk_name = "turn"
    extra = 0
    fields = ("function_name", "purpose", "model", "input_tokens", "output_tokens", "cost_usd", "duration_ms", "success")
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    max_num = 0


@admin.register(Conversation)
class ConversationAdmin(LargeTableAdmin):
    list_display = ("external_id", "chatbot", "channel", "turn_count", "max_risk_score", "min_judge_score", "thumbs_up", "thumbs_down", "is_flagged", "review_status", "assignee", "last_activity_at")
    list_filter = ("chatbot", "is_flagged", "review_status", "channel")
    list_select_related = ("chatbot", "assignee")
    search_fields = ("=external_id",)
    raw_id_fields = ("assignee",)
    date_hierarchy = None
    readonly_fields = ("chatbot", "external_id", "end_user_hash", "started_at", "last_activity_at", "turn_count", "total_tokens", "cost_usd", "error_count", "fallback_count", "thumbs_up", "thumbs_down", "max_risk_score", "min_judge_score", "is_flagged", "flag_reasons", "flagged_at", "created_at")
    inlines = [TurnInline]


@admin.register(Turn)
class TurnAdmin(LargeTableAdmin):
    list_display = ("id", "chatbot", "conversation", "timestamp", "short_user_message", "risk_score", "risk_level", "is_flagged", "latency_ms", "has_error", "fallback_used", "judge_overall")
    list_filter = ("chatbot", "risk_level", "is_flagged", "has_error", "fallback_used", "judge_status")
    list_select_related = ("chatbot", "conversation")
    raw_id_fields = ("conversation", "chatbot")
    search_fields = ("=external_id", "=conversation__external_id")
    readonly_fields = ("risk_score", "risk_level", "risk_reasons", "is_flagged", "flag_reasons", "total_tokens", "total_cost_usd", "tokens_estimated", "judge_status", "judge_overall", "judge_hallucination", "thumbs_up", "thumbs_down", "pii_found", "created_at")
    inlines = [LLMCallInline]

    @admin.display(description="User message")
    def short_user_message(self, obj: Turn) -> str:
        return (obj.user_message[:80] + "…") if len(obj.user_message) > 80 else obj.user_message


@admin.register(LLMCall)
class LLMCallAdmin(LargeTableAdmin):
    list_display = ("id", "timestamp", "chatbot", "purpose", "function_name", "provider", "model", "input_tokens", "output_tokens", "cost_usd", "duration_ms", "success")
    list_filter = ("purpose", "success", "provider", "chatbot")
    list_select_related = ("chatbot",)
    raw_id_fields = ("chatbot", "conversation", "turn")
    search_fields = ("=external_id", "model", "function_name")
