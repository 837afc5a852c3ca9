"""The review page and queue, with the turn and LLM-call admins they link to.

The conversation page is the review page. The review queue (flagged conversations) is
FlaggedConversationAdmin, a subclass of ConversationAdmin over a proxy model; both share the
review page and the bulk actions. Reviewers see only the chatbots they are assigned to
(ChatbotScopedAdminMixin).
"""

from __future__ import annotations

import copy
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.timesince import timesince

from apps.chatbots.access import chatbot_ids_for_user, user_sees_all_chatbots
from apps.chatbots.admin import ChatbotAdmin
from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.chatbots.models import Chatbot
from apps.conversations.choices import Channel, FlagReason, ReviewStatus, RiskLevel
from apps.conversations.models import Conversation, LLMCall, Step, Turn
from apps.core.admin import LargeTableAdmin
from apps.core.replica import replica_reads
from apps.core.text import ascii_int
from apps.datasets.admin import (
    add_conversations_to_dataset_admin_action,
    add_turns_to_dataset_admin_action,
)
from apps.evaluations.admin import EvaluationInline
from apps.evaluations.choices import CRITERIA, Evaluator
from apps.evaluations.models import Evaluation
from apps.evaluations.selectors import conversation_evaluation_latest, conversation_judge_overall
from apps.feedback.admin import FeedbackInline, RatingListFilter
from apps.privacy.admin import ConversationDeletionAdminMixin, erase_end_user_admin_action
from apps.privacy.policy import NO_CONTENT_MARKER
from apps.review.templatetags.review_tags import usd
from apps.scores.selectors import (
    ScoreConditionInvalid,
    conversations_with_score,
    score_condition_parse,
)

from . import services as review_services
from .api import exports as review_exports
from .filtersets import conversation_search, flag_reason_filter, risk_level_filter
from .models import FlaggedConversation
from .selectors import (
    OPEN_REVIEW_STATUSES,
    judge_human_agreement,
    queue_neighbours,
    queue_row_reasons,
    review_history,
    review_status_counts,
)

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


class ConversationJudgeFilter(admin.SimpleListFilter):
    """The conversation judge's overall (latest completed grade of the whole conversation), in bands."""

    title = "conversation judge"
    parameter_name = "conversation_judge"
    BANDS = {
        "lt3": ("below 3", Q(conversation_judge_score__lt=3)),
        "3to5": ("3 to 5", Q(conversation_judge_score__gte=3, conversation_judge_score__lt=5)),
        "5to7": ("5 to 7", Q(conversation_judge_score__gte=5, conversation_judge_score__lt=7)),
        "gte7": ("7 and above", Q(conversation_judge_score__gte=7)),
        "none": ("not judged", Q(conversation_judge_score__isnull=True)),
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


class ExactValueFilter(admin.SimpleListFilter):
    """One Turn field equal to the value in the URL: the dashboard's breakdown rows link here.
    Its only choice is the value asked for (listing every model or intent would scan the table)."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value or "(none)")] if value is not None else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(**{self.field: self.value()}) if self.value() is not None else queryset


class TurnModelFilter(ExactValueFilter):
    title = "model"
    parameter_name = "model"
    field = "model"


class TurnIntentFilter(ExactValueFilter):
    title = "intent"
    parameter_name = "intent"
    field = "intent"


class TurnChannelFilter(ExactValueFilter):
    title = "channel"
    parameter_name = "channel"
    field = "conversation__channel"


class ScoreConditionFilter(admin.SimpleListFilter):
    """Conversations with a score or outcome satisfying `?score=csat<=2` (apps.scores.selectors)."""

    title = "score"
    parameter_name = "score"
    presets = ("csat<=2", "nps<=6", "converted=false", "resolved=false", "handed_off=true")

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        shown = [*self.presets, *([value] if value and value not in self.presets else [])]
        return [(condition, condition.replace("<=", " ≤ ").replace(">=", " ≥ ")) for condition in shown]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        try:
            return conversations_with_score(queryset, score_condition_parse(self.value()))
        except ScoreConditionInvalid as exc:
            raise IncorrectLookupParameters(str(exc)) from None


class ReleaseFilter(ExactValueFilter):
    """The bot or prompt version (a turn's own; a conversation's is that of its latest turn)."""

    title = "release"
    parameter_name = "release"
    field = "release"


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

def _posted_scores(request: HttpRequest) -> dict[str, float | None]:
    scores: dict[str, float | None] = {}
    for name in CRITERIA:
        raw = (request.POST.get(name) or "").strip().replace(",", ".")
        if not raw:
            scores[name] = None
            continue
        try:
            scores[name] = float(raw)
        except ValueError:
            raise review_services.ReviewError(f"{name} must be a number from 0 to 10.") from None
    return scores


def _posted_yes_no(request: HttpRequest, name: str) -> bool | None:
    return {"yes": True, "no": False}.get(request.POST.get(name, ""))


class ReviewChangeList(ChangeList):
    """Riskiest first breaks ties newest first, matching the conv_review_risk index."""

    def _get_deterministic_ordering(self, ordering: list) -> list:
        ordering = list(ordering)
        for direction in ("-", ""):
            if f"{direction}max_risk_score" in ordering and not any("last_activity_at" in str(o) for o in ordering):
                ordering.insert(ordering.index(f"{direction}max_risk_score") + 1, f"{direction}last_activity_at")
        return super()._get_deterministic_ordering(ordering)

    def get_results(self, request: HttpRequest) -> None:
        if getattr(request, "_cm_queue_only", False):
            return  # the review page wants the filtered, ordered queryset, not a page of rows
        super().get_results(request)
        if getattr(self.model_admin, "shows_row_reasons", False):
            # Why each row is here, for the whole page in three queries (no per-row queries).
            self.result_list = list(self.result_list)
            reasons = queue_row_reasons(conversation_ids=[row.pk for row in self.result_list])
            for row in self.result_list:
                row.queue_reasons = reasons.get(row.pk)


def _decimal_score(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _threshold_note(score: int, threshold: int) -> str:
    if score >= threshold:
        return f"at or above this chatbot's threshold {threshold}"
    return f"below this chatbot's threshold {threshold}"


@admin.register(Conversation)
class ConversationAdmin(ConversationDeletionAdminMixin, ChatbotScopedAdminMixin, LargeTableAdmin):
    list_display = (
        "external_id", "chatbot", "risk_badge", "flag_reason_list", "min_judge_score", "conversation_judge", "thumbs",
        "turn_count", "review_status", "assignee", "last_activity_at",
    )
    list_filter = (
        ChatbotListFilter, RiskLevelFilter, RatingListFilter, JudgeScoreFilter, ConversationJudgeFilter,
        "review_status", AssigneeFilter,
        FlagReasonFilter, "is_flagged", ("last_activity_at", admin.DateFieldListFilter), ChannelFilter,
        ReleaseFilter, ScoreConditionFilter, "consent",
    )
    list_select_related = ("chatbot", "assignee")
    search_fields = ("external_id",)  # replaced by get_search_results: exact id or turn text
    search_help_text = "Conversation id (exact) or words from a user message or bot answer."
    ordering = ("-last_activity_at", "-id")
    actions = ("assign_to_me", "mark_in_review", "mark_resolved", "mark_false_positive", "rerun_judge", "export_json",
               add_conversations_to_dataset_admin_action, erase_end_user_admin_action)
    review_template = "admin/review/conversation_review.html"
    shows_row_reasons = False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        # Deleting is destructive: last in the list, never the first choice.
        delete = actions.pop("delete_selected", None)
        if delete is not None:
            actions["delete_selected"] = delete
        return actions

    # The review page replaces the edit form; these pages stay Django's.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting is erasure (apps.privacy, audited) or retention, not a review action.
        return request.user.is_superuser

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ReviewChangeList

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The conversation judge's overall, for its filter, column and sort (one subquery per page).
        return super().get_queryset(request).annotate(
            conversation_judge_score=conversation_judge_overall(),
            conversation_judge_reasoning=conversation_judge_overall(field="reasoning"),
        )

    @admin.display(description="conv. judge", ordering="conversation_judge_score")
    def conversation_judge(self, obj: Conversation) -> str:
        return _decimal_score(getattr(obj, "conversation_judge_score", None))

    def queue_queryset(self, request: HttpRequest) -> QuerySet:
        """The list the reviewer came from, as they saw it: this admin's changelist with the
        filters, search and order of `_changelist_filters` (Django's preserved filters)."""
        listing = copy.copy(request)
        listing.GET = QueryDict(request.GET.get("_changelist_filters", ""))
        listing.method = "GET"
        listing._cm_queue_only = True
        try:
            return self.get_changelist_instance(listing).queryset
        except IncorrectLookupParameters:
            listing.GET = QueryDict("")
            return self.get_changelist_instance(listing).queryset

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

    def _url(self, request: HttpRequest, name: str, *args: Any) -> str:
        """An admin URL of this model carrying the reviewer's queue filters along."""
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args)
        return add_preserved_filters({"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}, url)

    def _queue_url(self, request: HttpRequest) -> str:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        filters = request.GET.get("_changelist_filters", "")
        return f"{url}?{filters}" if filters else url

    def _neighbour_urls(self, request: HttpRequest, conversation: Conversation) -> dict[str, str | None]:
        neighbours = queue_neighbours(queue=self.queue_queryset(request), conversation=conversation)
        return {key: (self._url(request, "change", pk) if pk is not None else None) for key, pk in neighbours.items()}

    def review_response(self, request: HttpRequest, conversation: Conversation) -> TemplateResponse:
        turns = list(
            Turn.objects.filter(conversation=conversation).order_by("sequence", "id").prefetch_related(
                Prefetch("evaluations", queryset=Evaluation.objects.select_related("reviewer").order_by("-created_at", "-id")),
                "feedback",
                Prefetch("llm_calls", queryset=LLMCall.objects.order_by("timestamp", "id")),
                Prefetch("steps", queryset=Step.objects.order_by("position", "id")),
                "scores",
            )
        )
        conversation = Conversation.objects.select_related("chatbot", "assignee").get(pk=conversation.pk)
        conversation_scores = list(conversation.scores.filter(turn__isnull=True).order_by("name", "-timestamp"))
        neighbours = self._neighbour_urls(request, conversation)
        threshold = conversation.chatbot.risk_threshold
        down_comments = []
        for turn in turns:
            evaluations = list(turn.evaluations.all())
            turn.judge_evaluations = [e for e in evaluations if e.evaluator != Evaluator.HUMAN]
            turn.human_evaluations = [e for e in evaluations if e.evaluator == Evaluator.HUMAN]
            turn.my_evaluation = next((e for e in turn.human_evaluations if e.reviewer_id == request.user.pk), None)
            turn.down_comments = [v for v in turn.feedback.all() if v.rating == "down" and v.comment]
            turn.threshold_note = _threshold_note(turn.risk_score, threshold)
            calls = turn.llm_calls.all()
            turn.call_tokens = sum(call.total_tokens for call in calls)
            down_comments += [(turn, vote) for vote in turn.down_comments]
        flagged = [t for t in turns if t.is_flagged]
        focus = max(flagged or turns, key=lambda t: (t.risk_score, -(t.judge_overall if t.judge_overall is not None else 11), -t.pk),
                    default=None)
        agreement = judge_human_agreement(chatbot_ids=[conversation.chatbot_id])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Conversation {conversation.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": conversation,
            "conversation": conversation,
            "turns": turns,
            "focus_turn": focus,
            "down_comments": down_comments,
            "threshold": threshold,
            "threshold_note": _threshold_note(conversation.max_risk_score, threshold),
            "llm_call_count": sum(len(turn.llm_calls.all()) for turn in turns),
            "conversation_scores": conversation_scores,
            "conversation_evaluation": conversation_evaluation_latest(conversation_id=conversation.pk),
            "previous_url": neighbours["previous"],
            "next_url": neighbours["next"],
            "queue_url": self._queue_url(request),
            "queue_filtered": bool(request.GET.get("_changelist_filters")),
            "export_url": self._url(request, "export", conversation.pk),
            "decision_statuses": [(s.value, s.label, key) for s, key in review_services.DECISION_KEYS],
            "can_review": self.has_change_permission(request, conversation),
            "history": review_history(conversation=conversation, turn_sequences={t.pk: t.sequence for t in turns}),
            "criteria": CRITERIA,
            "review_labels": list(conversation.chatbot.review_labels or []),
            "agreement": agreement[0] if agreement else None,
            "sees_all": user_sees_all_chatbots(request.user),
            "no_content_marker": NO_CONTENT_MARKER,
        }
        return TemplateResponse(request, self.review_template, context)

    def _review_action(self, request: HttpRequest, conversation: Conversation) -> HttpResponse:
        if not self.has_change_permission(request, conversation):
            raise PermissionDenied
        then_next = request.POST.get("then") == "next"
        # Where "next" is, before the action moves this item out of the reviewer's view.
        next_url = self._neighbour_urls(request, conversation)["next"] if then_next else None
        turn_id = ascii_int(request.POST.get("turn", ""))
        try:
            done = review_services.conversations_review_act(
                conversation_ids=[conversation.pk], actor=request.user, action=request.POST.get("action", ""),
                status=request.POST.get("status", ""), note=request.POST.get("note", ""),
                turn_id=turn_id, scores=_posted_scores(request), hallucination=_posted_yes_no(request, "hallucination"),
                labels=request.POST.getlist("labels"), corrected_answer=request.POST.get("corrected_answer", ""),
            )
            self.message_user(request, done)
        except review_services.ReviewError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            then_next = False
        target = self._url(request, "change", conversation.pk)
        if turn_id is not None:
            target += f"#turn-{turn_id}"
        if then_next:
            target = next_url or self._queue_url(request)
        return HttpResponseRedirect(target)

    @replica_reads
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
    @replica_reads
    def export_json(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:500])
        data = review_exports.conversations_export_json(conversation_ids=ids, actor=request.user)
        response = JsonResponse(data, safe=False, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = 'attachment; filename="conversations.json"'
        return response


class IngestedEvidenceAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    """Turns and LLM calls are what the bot sent: evidence, read-only for everyone (erasure and
    retention delete them; corrections are written beside them from the review page)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Turn)
class TurnAdmin(IngestedEvidenceAdmin):
    # Fourteen columns did not fit at 1440 px: risk and the votes are one column each.
    list_display = ("id", "chatbot", "conversation_link", "timestamp", "short_user_message", "risk", "flagged", "latency", "errored", "fallback", "judge", "votes")
    list_filter = (ChatbotListFilter, "risk_level", "is_flagged", "has_error", "fallback_used", RatingListFilter,
                   "judge_status", "judge_hallucination", ("timestamp", admin.DateFieldListFilter), TurnModelFilter,
                   TurnIntentFilter, TurnChannelFilter, ReleaseFilter)
    list_select_related = ("chatbot", "conversation")
    raw_id_fields = ("conversation", "chatbot")
    search_fields = ("=external_id", "=conversation__external_id")
    ordering = ("-timestamp", "-id")
    actions = ("rerun_judge", add_turns_to_dataset_admin_action)
    change_form_template = "admin/review/turn_change_form.html"

    # Short headers: the model's verbose names ("fallback used", "judge overall") made the list
    # wider than a 1440 px screen.
    @admin.display(description="flagged", boolean=True, ordering="is_flagged")
    def flagged(self, obj: Turn) -> bool:
        return obj.is_flagged

    @admin.display(description="latency (ms)", ordering="latency_ms")
    def latency(self, obj: Turn) -> int | None:
        return obj.latency_ms

    # Not "error": a list column named like a model field shows the field (the error text).
    @admin.display(description="error", boolean=True, ordering="has_error")
    def errored(self, obj: Turn) -> bool:
        return obj.has_error

    @admin.display(description="fallback", boolean=True, ordering="fallback_used")
    def fallback(self, obj: Turn) -> bool:
        return obj.fallback_used

    @admin.display(description="judge", ordering="judge_overall")
    def judge(self, obj: Turn) -> float | None:
        return obj.judge_overall

    @admin.display(description="risk", ordering="risk_score")
    def risk(self, obj: Turn) -> str:
        return f"{obj.risk_score} · {RiskLevel(obj.risk_level).label.lower() if obj.risk_level in RiskLevel.values else obj.risk_level}"

    @admin.display(description="👍 / 👎")
    def votes(self, obj: Turn) -> str:
        return f"{obj.thumbs_up} / {obj.thumbs_down}"

    def get_inlines(self, request: HttpRequest, obj: Turn | None) -> list:
        return [EvaluationInline, LLMCallInline, FeedbackInline]

    def has_rerun_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("conversations.change_conversation")

    def get_urls(self) -> list:
        return [
            path("<path:object_id>/rerun-judge/", self.admin_site.admin_view(self.rerun_judge_view),
                 name="conversations_turn_rerun_judge"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_rerun_judge": self.has_rerun_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def rerun_judge_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        turn = self.get_object(request, unquote(object_id))
        if turn is None:
            raise Http404("No such turn.")
        if request.method != "POST" or not self.has_rerun_permission(request):
            raise PermissionDenied
        review_services.conversations_review_act(
            conversation_ids=[turn.conversation_id], actor=request.user, action="rerun_judge", turn_id=turn.pk
        )
        self.message_user(request, "Judge queued for this turn.")
        return HttpResponseRedirect(reverse("admin:conversations_turn_change", args=[turn.pk]))

    @admin.action(description="Re-run the LLM judge", permissions=["rerun"])
    def rerun_judge(self, request: HttpRequest, queryset: QuerySet) -> None:
        from apps.evaluations.services import judge_rerun

        count = judge_rerun(turn_ids=list(queryset.values_list("pk", flat=True)), actor=request.user)
        self.message_user(request, f"Judge queued for {count} turn(s).")

    @admin.display(description="User message")
    def short_user_message(self, obj: Turn) -> str:
        return Truncator(obj.user_message).chars(80)

    @admin.display(description="conversation", ordering="conversation")
    def conversation_link(self, obj: Turn) -> str:
        url = reverse("admin:conversations_conversation_change", args=[obj.conversation_id])
        return format_html('<a href="{}">{}</a>', url, obj.conversation.external_id)


@admin.register(LLMCall)
class LLMCallAdmin(IngestedEvidenceAdmin):
    list_display = ("id", "timestamp", "chatbot", "purpose", "function_name", "provider", "model", "tokens", "cost", "duration", "success")
    list_filter = (ChatbotListFilter, "purpose", "success", "provider", ("timestamp", admin.DateFieldListFilter))
    list_select_related = ("chatbot",)
    raw_id_fields = ("chatbot", "conversation", "turn")
    search_fields = ("=external_id", "=model", "=function_name")
    ordering = ("-timestamp", "-id")

    @admin.display(description="tokens in / out", ordering="input_tokens")
    def tokens(self, obj: LLMCall) -> str:
        return f"{obj.input_tokens} / {obj.output_tokens}"

    @admin.display(description="cost ($)", ordering="cost_usd")
    def cost(self, obj: LLMCall) -> str:
        return usd(obj.cost_usd)

    @admin.display(description="duration (ms)", ordering="duration_ms")
    def duration(self, obj: LLMCall) -> int | None:
        return obj.duration_ms


@admin.register(Step)
class StepAdmin(IngestedEvidenceAdmin):
    list_display = ("id", "timestamp", "chatbot", "kind", "name", "short_shape", "duration_ms", "rows", "success")
    list_filter = (ChatbotListFilter, "kind", "success", ("timestamp", admin.DateFieldListFilter))
    list_select_related = ("chatbot",)
    raw_id_fields = ("chatbot", "conversation", "turn")
    search_fields = ("=fingerprint", "=name")
    ordering = ("-timestamp", "-id")

    @admin.display(description="query / name")
    def short_shape(self, obj: Step) -> str:
        return Truncator(obj.shape).chars(80)


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


class QueueStatusFilter(admin.SimpleListFilter):
    """Review status of a queue item; open items (new and in review) when nothing is chosen."""

    title = "review status"
    parameter_name = "status"
    OPEN, ALL = "open", "all"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(self.OPEN, "Open (new + in review)"), *ReviewStatus.choices, (self.ALL, "All flagged")]

    def value(self) -> str:
        return super().value() or self.OPEN

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == self.OPEN:
            return queryset.filter(review_status__in=OPEN_REVIEW_STATUSES)
        if value in ReviewStatus.values:
            return queryset.filter(review_status=value)
        return queryset

    def choices(self, changelist: ChangeList) -> Any:
        for value, label in self.lookup_choices:
            yield {
                "selected": self.value() == value,
                "query_string": changelist.get_query_string(
                    remove=[self.parameter_name] if value == self.OPEN else [],
                    new_params={} if value == self.OPEN else {self.parameter_name: value},
                ),
                "display": label,
            }


@admin.register(FlaggedConversation)
class FlaggedConversationAdmin(ConversationAdmin):
    """The review queue: open flagged conversations, each row saying why it is here."""

    list_display = ("conversation", "why", "risk_badge", "lowest_judge", "conversation_judge", "review_status", "assignee",
                    "age")
    list_display_links = ("conversation",)
    list_filter = tuple(QueueStatusFilter if f == "review_status" else f for f in ConversationAdmin.list_filter
                        if f != "is_flagged")
    change_list_template = "admin/review/flaggedconversation/change_list.html"
    shows_row_reasons = True

    @admin.display(description="conversation", ordering="external_id")
    def conversation(self, obj: Conversation) -> str:
        return format_html('{}<br><small class="quiet">{} · {} turn{}</small>', Truncator(obj.external_id).chars(28),
                           obj.chatbot.name, obj.turn_count, "" if obj.turn_count == 1 else "s")

    @admin.display(description="why it is here")
    def why(self, obj: Conversation) -> str:
        reasons: Any = getattr(obj, "queue_reasons", None)
        flags = format_html_join(" ", '<span class="cm-badge cm-badge-flag">{}</span>',
                                 ((FlagReason(r).label if r in FlagReason.values else r,) for r in obj.flag_reasons or []))
        parts = [format_html('<div class="cm-why-flags">{}</div>', flags)]
        if reasons is not None:
            if reasons.rules:
                parts.append(format_html('<div class="cm-why-line"><b>Rules:</b> {}</div>', ", ".join(reasons.rules)))
            if reasons.judge_reasoning:
                parts.append(format_html('<div class="cm-why-line"><b>Judge:</b> {}</div>',
                                         Truncator(reasons.judge_reasoning.splitlines()[0]).chars(140)))
            if FlagReason.CONVERSATION_JUDGE in (obj.flag_reasons or []) and getattr(
                obj, "conversation_judge_reasoning", None
            ):
                parts.append(format_html('<div class="cm-why-line"><b>Conversation:</b> {}</div>',
                                         Truncator(obj.conversation_judge_reasoning).chars(140)))
            if reasons.thumbs_down_comment:
                parts.append(format_html('<div class="cm-why-line cm-why-comment">👎 “{}”</div>',
                                         Truncator(reasons.thumbs_down_comment).chars(140)))
            if reasons.turn_id is not None:
                parts.append(format_html(
                    '<div class="cm-why-snippet"><span class="quiet">#{}</span> {} <span class="quiet">→</span> {}</div>',
                    reasons.turn_sequence, Truncator(reasons.user_message).chars(90),
                    Truncator(reasons.bot_response or "(no answer)").chars(90),
                ))
        return format_html_join("", "{}", ((part,) for part in parts))

    @admin.display(description="risk", ordering="max_risk_score")
    def risk_badge(self, obj: Conversation) -> str:
        return format_html('<span class="cm-risk cm-risk-{}">{} · {}</span><br><small class="quiet">{}</small>',
                           obj.risk_level, obj.max_risk_score, obj.risk_level,
                           _threshold_note(obj.max_risk_score, obj.chatbot.risk_threshold))

    @admin.display(description="lowest judge", ordering="min_judge_score")
    def lowest_judge(self, obj: Conversation) -> str:
        return _decimal_score(obj.min_judge_score)

    @admin.display(description="age", ordering="last_activity_at")
    def age(self, obj: Conversation) -> str:
        return format_html('<span title="last activity {}">{}</span>',
                           timezone.localtime(obj.last_activity_at).strftime("%Y-%m-%d %H:%M"),
                           timesince(obj.last_activity_at, depth=1))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        counts = review_status_counts(chatbot_ids=_tab_scope(request))
        current = request.GET.get("status", "") or QueueStatusFilter.OPEN
        risk_column = self.list_display.index("risk_badge") + 1  # the admin's `o` index is 1-based
        riskiest = request.GET.get("o", "").startswith(f"-{risk_column}")
        open_count = sum(counts[s] for s in OPEN_REVIEW_STATUSES)
        extra_context = {
            **(extra_context or {}),
            "title": "Review queue",
            "status_tabs": [
                {"label": "Open", "count": open_count, "active": current == QueueStatusFilter.OPEN,
                 "url": _query(request, status=None)},
                *({"label": label, "count": counts[value], "active": current == value,
                   "url": _query(request, status=value)}
                  for value, label in ReviewStatus.choices),
                {"label": "All flagged", "count": sum(counts.values()), "active": current == QueueStatusFilter.ALL,
                 "url": _query(request, status=QueueStatusFilter.ALL)},
            ],
            "riskiest_first": riskiest,
            "newest_url": _query(request, o=None),
            "riskiest_url": _query(request, o=f"-{risk_column}"),
        }
        return super().changelist_view(request, extra_context)


# --- the chatbot page: how far its judge is from its reviewers ----------------------------------

@admin.display(description="judge vs reviewers")
def chatbot_judge_agreement(model_admin: admin.ModelAdmin, obj: Chatbot) -> str:
    from django.template.loader import render_to_string

    rows = judge_human_agreement(chatbot_ids=[obj.pk]) if obj.pk else []
    return render_to_string("admin/review/agreement.html", {"agreement": rows[0] if rows else None})


# Added from here (the review app owns human evaluations), like clustering adds its action.
ChatbotAdmin.judge_agreement = chatbot_judge_agreement
ChatbotAdmin.readonly_fields = (*ChatbotAdmin.readonly_fields, "judge_agreement")
ChatbotAdmin.fieldsets = tuple(
    (name, {**options, "fields": (*options["fields"], "judge_agreement")}) if name == "Review" else (name, options)
    for name, options in ChatbotAdmin.fieldsets
)

