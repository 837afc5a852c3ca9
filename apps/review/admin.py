"""The review page and queue, with the turn and LLM-call admins they link to.

The conversation page is the review page. The review queue (flagged conversations) is
FlaggedConversationAdmin, a subclass of ConversationAdmin over a proxy model; both share the
review page and the bulk actions. Reviewers see only the chatbots they are assigned to
(ChatbotScopedAdminMixin).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from apps.audit.models import AuditEvent
from apps.chatbots.access import chatbot_ids_for_user, user_sees_all_chatbots
from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.conversations.choices import Channel, FlagReason, ReviewStatus, RiskLevel
from apps.conversations.models import Conversation, LLMCall, Turn
from apps.core.admin import LargeTableAdmin
from apps.core.text import ascii_int
from apps.evaluations.admin import EvaluationInline
from apps.evaluations.models import Evaluation
from apps.feedback.admin import FeedbackInline, RatingListFilter
from apps.privacy.admin import erase_end_user_admin_action

from . import services as review_services
from .api import exports as review_exports
from .filtersets import conversation_search, flag_reason_filter, risk_level_filter
from .models import FlaggedConversation
from .selectors import queue_neighbours, review_status_counts

# --- list filters ---------------------------------------------------------------------------

class RiskLevelFilter(admin.SimpleListFilter):
    """Risk level of the conversation's riskiest turn (a range on max_risk_score: indexed)."""

    title = "risk level"
    parameter_name = "risk"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(RiskLevel.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in RiskLevel.values:
            return risk_level_filter(queryset, "max_risk_score", [self.value()])
        return queryset


class JudgeScoreFilter(admin.SimpleListFilter):
    """Lowest judge overall of the conversation, in bands (0–10)."""

    title = "judge score (lowest)"
    parameter_name = "judge"
    BANDS = {
        "lt3": ("below 3", Q(min_judge_score__lt=3)),
        "3to5": ("3 to 5", Q(min_judge_score__gte=3, min_judge_score__lt=5)),
        "5to7": ("5 to 7", Q(min_judge_score__gte=5, min_judge_score__lt=7)),
        "gte7": ("7 and above", Q(min_judge_score__gte=7)),
        "none": ("not judged", Q(min_judge_score__isnull=True)),
    }

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.BANDS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        band = self.BANDS.get(self.value() or "")
        return queryset.filter(band[1]) if band else queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("me", "Assigned to me"), ("none", "Unassigned"), ("others", "Assigned to someone else")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "me":
            return queryset.filter(assignee=request.user)
        if value == "none":
            return queryset.filter(assignee__isnull=True)
        if value == "others":
            return queryset.filter(assignee__isnull=False).exclude(assignee=request.user)
        assignee_id = ascii_int(value)
        if assignee_id is not None:
            return queryset.filter(assignee_id=assignee_id)
        return queryset


class FlagReasonFilter(admin.SimpleListFilter):
    title = "flag reason"
    parameter_name = "reason"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(FlagReason.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in FlagReason.values:
            return flag_reason_filter(queryset, self.value())
        return queryset


class ChannelFilter(admin.SimpleListFilter):
    """The known channels (the stock filter would run SELECT DISTINCT over the whole table)."""

    title = "channel"
    parameter_name = "channel"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(Channel.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(channel=self.value()) if self.value() else queryset


# --- inlines for the plain change pages of turns ----------------------------------------------

class LLMCallInline(admin.TabularInline):
    model = LLMCall
    fk_name = "turn"
    extra = 0
    fields = ("function_name", "purpose", "model", "input_tokens", "output_tokens", "cost_usd", "duration_ms", "success", "error")
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    max_num = 0


# --- conversations: list, review page, actions ------------------------------------------------

class ReviewChangeList(ChangeList):
    """Riskiest first breaks ties newest first, matching the conv_review_risk index."""

    def _get_deterministic_ordering(self, ordering: list) -> list:
        ordering = list(ordering)
        for direction in ("-", ""):
            if f"{direction}max_risk_score" in ordering and not any("last_activity_at" in str(o) for o in ordering):
                ordering.insert(ordering.index(f"{direction}max_risk_score") + 1, f"{direction}last_activity_at")
        return super()._get_deterministic_ordering(ordering)


@admin.register(Conversation)
class ConversationAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    list_display = (
        "external_id", "chatbot", "risk_badge", "flag_reason_list", "min_judge_score", "thumbs",
        "turn_count", "review_status", "assignee", "last_activity_at",
    )
    list_filter = (
        ChatbotListFilter, RiskLevelFilter, RatingListFilter, JudgeScoreFilter, "review_status", AssigneeFilter,
        FlagReasonFilter, "is_flagged", ("last_activity_at", admin.DateFieldListFilter), ChannelFilter,
    )
    list_select_related = ("chatbot", "assignee")
    search_fields = ("external_id",)  # replaced by get_search_results: exact id or turn text
    search_help_text = "Conversation id (exact) or words from a user message or bot answer."
    ordering = ("-last_activity_at", "-id")
    actions = ("assign_to_me", "mark_in_review", "mark_resolved", "mark_false_positive", "rerun_judge", "export_json",
               erase_end_user_admin_action)
    review_template = "admin/review/conversation_review.html"

    # The review page replaces the edit form; these pages stay Django's.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting is erasure (apps.privacy, audited) or retention, not a review action.
        return request.user.is_superuser

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ReviewChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        return conversation_search(queryset, search_term), False

    # --- list columns ---
    @admin.display(description="risk", ordering="max_risk_score")
    def risk_badge(self, obj: Conversation) -> str:
        return format_html('<span class="cm-risk cm-risk-{}">{} · {}</span>', obj.risk_level, obj.max_risk_score, obj.risk_level)

    @admin.display(description="flagged for")
    def flag_reason_list(self, obj: Conversation) -> str:
        return ", ".join(FlagReason(r).label if r in FlagReason.values else str(r) for r in obj.flag_reasons or []) or "—"

    @admin.display(description="👍 / 👎")
    def thumbs(self, obj: Conversation) -> str:
        return f"{obj.thumbs_up} / {obj.thumbs_down}"

    # --- review page ---
    def get_urls(self) -> list:
        name = f"{self.opts.app_label}_{self.opts.model_name}_export"
        return [
            path("<path:object_id>/export/", self.admin_site.admin_view(self.export_view), name=name),
            *super().get_urls(),
        ]

    def _review_object(self, request: HttpRequest, object_id: str) -> Conversation:
        conversation = self.get_object(request, unquote(object_id))
        if conversation is None:
            raise Http404("No such conversation.")
        if not self.has_view_or_change_permission(request, conversation):
            raise PermissionDenied
        return conversation

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        conversation = self._review_object(request, object_id)
        if request.method == "POST":
            return self._review_action(request, conversation)
        return self.review_response(request, conversation)

    def review_response(self, request: HttpRequest, conversation: Conversation) -> TemplateResponse:
        turns = list(
            Turn.objects.filter(conversation=conversation).order_by("sequence", "id").prefetch_related(
                Prefetch("evaluations", queryset=Evaluation.objects.order_by("-created_at", "-id")),
                "feedback",
                Prefetch("llm_calls", queryset=LLMCall.objects.order_by("timestamp", "id")),
            )
        )
        conversation = Conversation.objects.select_related("chatbot", "assignee").get(pk=conversation.pk)
        neighbours = queue_neighbours(conversation=conversation, chatbot_ids=chatbot_ids_for_user(request.user))
        queue_url = reverse("admin:review_flaggedconversation_changelist")
        history = AuditEvent.objects.filter(
            object_type=Conversation._meta.label_lower, object_id=str(conversation.pk)
        ).order_by("-created_at")[:20]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Conversation {conversation.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": conversation,
            "conversation": conversation,
            "turns": turns,
            "llm_call_count": sum(len(turn.llm_calls.all()) for turn in turns),
            "previous_url": self._change_url(neighbours["previous"]),
            "next_url": self._change_url(neighbours["next"]),
            "queue_url": queue_url,
            "export_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_export", args=[conversation.pk]),
            "settable_statuses": [(s.value, s.label) for s in review_services.SETTABLE_STATUSES],
            "can_review": self.has_change_permission(request, conversation),
            "history": history,
            "sees_all": user_sees_all_chatbots(request.user),
        }
        return TemplateResponse(request, self.review_template, context)

    def _change_url(self, pk: int | None) -> str | None:
        if pk is None:
            return None
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[pk])

    def _review_action(self, request: HttpRequest, conversation: Conversation) -> HttpResponse:
        if not self.has_change_permission(request, conversation):
            raise PermissionDenied
        try:
            done = review_services.conversations_review_act(
                conversation_ids=[conversation.pk], actor=request.user, action=request.POST.get("action", ""),
                status=request.POST.get("status", ""), note=request.POST.get("note", ""),
            )
            self.message_user(request, done)
        except review_services.ReviewError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        target = self._change_url(conversation.pk)
        if request.POST.get("then") == "next":
            neighbours = queue_neighbours(conversation=conversation, chatbot_ids=chatbot_ids_for_user(request.user))
            target = self._change_url(neighbours["next"]) or reverse("admin:review_flaggedconversation_changelist")
        return HttpResponseRedirect(target)

    def export_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        conversation = self._review_object(request, object_id)
        data = review_exports.conversation_export_json(conversation_id=conversation.pk, actor=request.user)
        response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = f'attachment; filename="conversation-{conversation.pk}.json"'
        return response

    # --- bulk actions on the queue ---
    def _bulk(self, request: HttpRequest, queryset: QuerySet, **kwargs: Any) -> int:
        ids = list(queryset.values_list("pk", flat=True))
        if "assignee" in kwargs:
            return review_services.conversations_assign(conversation_ids=ids, actor=request.user, **kwargs)
        return review_services.conversations_review_status_set(conversation_ids=ids, actor=request.user, **kwargs)

    @admin.action(description="Assign to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.message_user(request, f"Assigned {self._bulk(request, queryset, assignee=request.user)} conversation(s) to you.")

    @admin.action(description="Mark in review", permissions=["change"])
    def mark_in_review(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.message_user(request, f"{self._bulk(request, queryset, status=ReviewStatus.IN_REVIEW)} conversation(s) in review.")

    @admin.action(description="Mark resolved", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet) -> None:
        self.message_user(request, f"{self._bulk(request, queryset, status=ReviewStatus.RESOLVED)} conversation(s) resolved.")

    @admin.action(description="Mark false positive", permissions=["change"])
    def mark_false_positive(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = self._bulk(request, queryset, status=ReviewStatus.FALSE_POSITIVE)
        self.message_user(request, f"{count} conversation(s) marked false positive.")

    @admin.action(description="Re-run the LLM judge", permissions=["change"])
    def rerun_judge(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            count = review_services.conversations_judge_rerun(
                conversation_ids=list(queryset.values_list("pk", flat=True)), actor=request.user
            )
        except review_services.ReviewError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Judge queued for {count} turn(s).")

    @admin.action(description="Export as JSON", permissions=["view"])
    def export_json(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:500])
        data = review_exports.conversations_export_json(conversation_ids=ids, actor=request.user)
        response = JsonResponse(data, safe=False, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = 'attachment; filename="conversations.json"'
        return response


@admin.register(Turn)
class TurnAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    list_display = ("id", "chatbot", "conversation_link", "timestamp", "short_user_message", "risk_score", "risk_level", "is_flagged", "latency_ms", "has_error", "fallback_used", "judge_overall", "thumbs_up", "thumbs_down")
    list_filter = (ChatbotListFilter, "risk_level", "is_flagged", "has_error", "fallback_used", "judge_status", ("timestamp", admin.DateFieldListFilter))
    list_select_related = ("chatbot", "conversation")
    raw_id_fields = ("conversation", "chatbot")
    search_fields = ("=external_id", "=conversation__external_id")
    readonly_fields = ("risk_score", "risk_level", "risk_reasons", "is_flagged", "flag_reasons", "total_tokens", "total_cost_usd", "tokens_estimated", "judge_status", "judge_overall", "judge_hallucination", "thumbs_up", "thumbs_down", "pii_found", "created_at")
    ordering = ("-timestamp", "-id")

    def get_inlines(self, request: HttpRequest, obj: Turn | None) -> list:
        return [EvaluationInline, LLMCallInline, FeedbackInline]

    @admin.display(description="User message")
    def short_user_message(self, obj: Turn) -> str:
        return Truncator(obj.user_message).chars(80)

    @admin.display(description="conversation", ordering="conversation")
    def conversation_link(self, obj: Turn) -> str:
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, obj.conversation.external_id)


@admin.register(LLMCall)
class LLMCallAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    list_display = ("id", "timestamp", "chatbot", "purpose", "function_name", "provider", "model", "input_tokens", "output_tokens", "cost_usd", "duration_ms", "success")
    list_filter = (ChatbotListFilter, "purpose", "success", "provider", ("timestamp", admin.DateFieldListFilter))
    list_select_related = ("chatbot",)
    raw_id_fields = ("chatbot", "conversation", "turn")
    search_fields = ("=external_id", "=model", "=function_name")
    ordering = ("-timestamp", "-id")


# --- the review queue -------------------------------------------------------------------

def _query(request: HttpRequest, **changes: str | None) -> str:
    """The current changelist query string with `changes` applied (None removes) and page reset."""
    params = request.GET.copy()
    params.pop("p", None)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + params.urlencode() if params else "?"


def _tab_scope(request: HttpRequest) -> list[int] | None:
    """The chatbots the status tabs count: the one the queue is filtered to, if the user sees it."""
    visible = chatbot_ids_for_user(request.user)
    selected = ascii_int(request.GET.get("chatbot"))
    if selected is not None and (visible is None or selected in visible):
        return [selected]
    return visible


@admin.register(FlaggedConversation)
class FlaggedConversationAdmin(ConversationAdmin):
    list_filter = tuple(f for f in ConversationAdmin.list_filter if f != "is_flagged")
    change_list_template = "admin/review/flaggedconversation/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        counts = review_status_counts(chatbot_ids=_tab_scope(request))
        current = request.GET.get("review_status__exact", "")
        risk_column = self.list_display.index("risk_badge") + 1  # the admin's `o` index is 1-based
        riskiest = request.GET.get("o", "").startswith(f"-{risk_column}")
        extra_context = {
            **(extra_context or {}),
            "status_tabs": [
                {"label": "All flagged", "count": sum(counts.values()), "active": not current,
                 "url": _query(request, review_status__exact=None)},
                *({"label": label, "count": counts[value], "active": current == value,
                   "url": _query(request, review_status__exact=value)}
                  for value, label in ReviewStatus.choices),
            ],
            "riskiest_first": riskiest,
            "newest_url": _query(request, o=None),
            "riskiest_url": _query(request, o=f"-{risk_column}"),
        }
        return super().changelist_view(request, extra_context)
