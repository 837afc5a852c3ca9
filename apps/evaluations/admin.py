from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.core.admin import LargeTableAdmin

from .choices import CONVERSATION_CRITERIA
from .conversation_judge import conversation_judge_rerun
from .models import ConversationEvaluation, Evaluation
from .services import judge_rerun

SCORE_FIELDS = ("accuracy", "relevance", "clarity", "helpfulness", "safety", "overall", "hallucination")


def _evaluator_label(obj: Evaluation) -> str:
    # The evaluator kind comes first so an offline heuristic grade is never mistaken for the LLM's;
    # a human grade names its reviewer (its version, "human:<user id>", is an internal key).
    if obj.reviewer_id is not None:
        return f"{obj.get_evaluator_display()} · {obj.reviewer.get_username()}"
    return f"{obj.get_evaluator_display()} · {obj.evaluator_version}"


class EvaluationInline(admin.TabularInline):
    """Read-only grades of one turn, newest first; added to the Turn admin by apps.review."""

    model = Evaluation
    fk_name = "turn"
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)
    fields = ("evaluator_label", "status", *SCORE_FIELDS, "reasoning", "error", "attempts", "completed_at")
    readonly_fields = fields
    verbose_name_plural = "judge evaluations"

    @admin.display(description="Evaluator")
    def evaluator_label(self, obj: Evaluation) -> str:
        return _evaluator_label(obj)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Evaluation)
class EvaluationAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    list_display = (
        "id", "turn_link", "chatbot", "evaluator_label", "status", "overall", "hallucination",
        "safety", "attempts", "created_at",
    )
    list_filter = ("status", "evaluator", "hallucination", ChatbotListFilter)
    list_select_related = ("chatbot", "turn", "reviewer")
    search_fields = ("=turn__id", "=turn__external_id", "evaluator_version")
    raw_id_fields = ("turn", "chatbot", "llm_call", "created_by")
    actions = ["rerun_judge"]
    fieldsets = (
        (None, {"fields": ("turn", "chatbot", "evaluator", "evaluator_version", "status", "created_by")}),
        ("Scores (0–10)", {"fields": SCORE_FIELDS}),
        ("Explanation", {"fields": ("reasoning", "signals")}),
        ("Run", {"fields": ("attempts", "error", "llm_call", "created_at", "completed_at")}),
    )
    readonly_fields = (
        "turn", "chatbot", "evaluator", "evaluator_version", "status", "created_by", *SCORE_FIELDS,
        "reasoning", "signals", "attempts", "error", "llm_call", "created_at", "completed_at",
    )

    # Evaluations are written by the judge; staff read them and ask for re-runs.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.display(description="Evaluator", ordering="evaluator")
    def evaluator_label(self, obj: Evaluation) -> str:
        return _evaluator_label(obj)

    @admin.display(description="Turn", ordering="turn_id")
    def turn_link(self, obj: Evaluation) -> str:
        url = reverse("admin:conversations_turn_change", args=[obj.turn_id])
        return format_html('<a href="{}">{}</a>', url, obj.turn)

    @admin.action(description="Re-run judge on the selected evaluations' turns", permissions=["rerun"])
    def rerun_judge(self, request: HttpRequest, queryset: QuerySet[Evaluation]) -> None:
        turn_ids = list(queryset.values_list("turn_id", flat=True).distinct())
        count = judge_rerun(turn_ids=turn_ids, actor=request.user)
        self.message_user(request, f"Re-running the judge on {count} turn(s).", messages.SUCCESS)


CONVERSATION_SCORE_FIELDS = (*CONVERSATION_CRITERIA, "overall", "handoff_needed", "failed_turn")


@admin.register(ConversationEvaluation)
class ConversationEvaluationAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    """The conversation judge's grades (read-only); staff ask for re-runs."""

    list_display = ("id", "conversation_link", "chatbot", "evaluator", "trigger", "status",
                    "overall", "handoff_needed", "turn_count", "attempts", "completed_at")
    list_filter = ("status", "evaluator", "trigger", "handoff_needed", ChatbotListFilter)
    list_select_related = ("chatbot", "conversation")
    search_fields = ("=conversation__id", "=conversation__external_id", "evaluator_version")
    raw_id_fields = ("conversation", "chatbot", "llm_call", "created_by")
    actions = ["rerun_conversation_judge"]
    fieldsets = (
        (None, {"fields": ("conversation", "chatbot", "evaluator", "evaluator_version", "trigger", "status")}),
        ("Scores (0–10)", {"fields": CONVERSATION_SCORE_FIELDS}),
        ("Explanation", {"fields": ("reasoning", "signals", "transcript")}),
        ("Run", {"fields": ("turn_count", "attempts", "error", "llm_call", "created_by", "created_at",
                            "completed_at")}),
    )
    readonly_fields = (
        "conversation", "chatbot", "evaluator", "evaluator_version", "trigger", "status", *CONVERSATION_SCORE_FIELDS,
        "reasoning", "signals", "transcript", "turn_count", "attempts", "error", "llm_call", "created_by",
        "created_at", "completed_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    @admin.display(description="Conversation", ordering="conversation_id")
    def conversation_link(self, obj: ConversationEvaluation) -> str:
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, obj.conversation)

    @admin.action(description="Re-run the conversation judge on the selected conversations", permissions=["rerun"])
    def rerun_conversation_judge(self, request: HttpRequest, queryset: QuerySet[ConversationEvaluation]) -> None:
        conversation_ids = list(queryset.values_list("conversation_id", flat=True).distinct())
        count = conversation_judge_rerun(conversation_ids=conversation_ids, actor=request.user)
        self.message_user(request, f"Re-running the conversation judge on {count} conversation(s).", messages.SUCCESS)
