from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from apps.chatbots.access import chatbot_scoped
from apps.chatbots.admin import ChatbotAdmin
from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin
from apps.core.admin import LargeTableAdmin
from apps.core.replica import replica_reads

from .choices import FailureSource, RunStatus
from .embeddings import EMBEDDING_BACKENDS
from .exports import cluster_finetune_jsonl
from .models import Cluster, ClusterRun, TurnEmbedding
from .runs import ClusteringInputError, cluster_run_request
from .selectors import cluster_members, run_themes

# Member rows shown on a cluster's page; the API and the export give all of them.
MEMBERS_SHOWN = 200


class ClusterRequestForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=3650, initial=14, help_text="Cluster the last N days.")
    backend = forms.ChoiceField(choices=(), required=False, help_text="Empty: the EMBEDDING_BACKEND setting.")
    sources = forms.MultipleChoiceField(
        choices=FailureSource.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="The failure signals to cluster; none ticked: the CLUSTERING_SOURCES setting (every signal).",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["backend"].choices = [("", f"default ({settings.EMBEDDING_BACKEND})")] + [
            (name, name) for name in sorted(EMBEDDING_BACKENDS)
        ]


@admin.action(description="Cluster failure turns of the last N days")
def cluster_admin_action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
    """Chatbot changelist action: ask for N days (and a backend), then queue one run per chatbot.

    Added to ChatbotAdmin.actions below. A chatbot with a run already pending or running is left alone.
    """
    chatbots = list(chatbot_scoped(queryset, request.user, field="pk").order_by("name"))
    if "apply" in request.POST:
        form = ClusterRequestForm(request.POST)
        if form.is_valid():
            started, busy = [], []
            for chatbot in chatbots:
                try:
                    run = cluster_run_request(
                        chatbot=chatbot, days=form.cleaned_data["days"],
                        backend=form.cleaned_data["backend"] or None,
                        sources=form.cleaned_data["sources"] or None, requested_by=request.user,
                    )
                except ClusteringInputError as exc:
                    modeladmin.message_user(request, str(exc), messages.ERROR)
                    return None
                (started if run else busy).append(chatbot.name)
            if started:
                modeladmin.message_user(
                    request, f"Clustering queued for {', '.join(started)}; see Cluster runs.", messages.SUCCESS
                )
            if busy:
                modeladmin.message_user(
                    request, f"A run is already pending or running for {', '.join(busy)}.", messages.WARNING
                )
            return None
    else:
        days = chatbots[0].clustering_window_days if len(chatbots) == 1 else 14
        form = ClusterRequestForm(initial={"days": days})
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Cluster failure turns",
        "chatbots": chatbots,
        "form": form,
        "queryset": queryset,
        "action_name": "cluster_admin_action",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/clustering/cluster_request.html", context)


ChatbotAdmin.actions.append(cluster_admin_action)


class ScopedToChatbotsMixin(ChatbotScopedAdminMixin):
    """Reviewers see only the runs and clusters of the chatbots they are assigned to; read-only."""

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:  # made by runs, not by hand
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # read-only pages

    # Any staff member may look; the queryset decides which chatbots' rows they see.
    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff


@admin.register(ClusterRun)
class ClusterRunAdmin(ScopedToChatbotsMixin, admin.ModelAdmin):
    list_display = ("id", "chatbot", "status", "backend", "turn_count", "cluster_count", "noise_count",
                    "total_seconds", "created_at")
    list_filter = ("status", "backend", ChatbotListFilter)
    list_select_related = ("chatbot",)
    show_full_result_count = False
    date_hierarchy = "created_at"
    readonly_fields = ("chatbot", "status", "message", "themes", "window_start", "window_end", "backend",
                       "embedding_model", "sources", "parameters", "turn_count", "cluster_count", "noise_count",
                       "timings", "requested_by", "previous_run", "created_at", "started_at", "finished_at")
    fields = readonly_fields

    @admin.display(description="themes (new and growing since the previous run)")
    def themes(self, obj: ClusterRun) -> str:
        if obj.status != RunStatus.DONE:
            return "—"
        return render_to_string("admin/clustering/run_themes.html", {
            "themes": run_themes(run=obj), "previous_run": obj.previous_run,
            "drift_similarity": obj.parameters.get("drift_similarity"),
        })

    @admin.display(description="failure sources")
    def sources(self, obj: ClusterRun) -> str:
        counts = obj.parameters.get("turns_by_source") or {}
        chosen = obj.parameters.get("sources") or ["thumbs_down"]  # runs before sources existed
        return ", ".join(
            f"{FailureSource(s).label if s in FailureSource.values else s} ({counts[s]})" if s in counts else s
            for s in chosen
        )

    @admin.display(description="seconds")
    def total_seconds(self, obj: ClusterRun) -> str:
        total = (obj.timings or {}).get("total")
        return f"{total:.1f}" if total is not None else "—"


@admin.action(description="Export as fine-tuning JSONL")
@replica_reads
def export_finetune_jsonl(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
    clusters = list(queryset.select_related("run", "run__chatbot").order_by("run_id", "index"))
    body, lines, skipped = cluster_finetune_jsonl(clusters=clusters, actor=request.user)
    response = HttpResponse(body, content_type="application/jsonl; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="clusters-finetune-{stamp}.jsonl"'
    response["X-Lines"] = str(lines)
    response["X-Skipped-Without-Answer"] = str(skipped)
    return response


@admin.register(Cluster)
class ClusterAdmin(ScopedToChatbotsMixin, admin.ModelAdmin):
    chatbot_scope_field = "run__chatbot"
    list_display = ("label", "chatbot", "run", "size", "share_percent", "avg_judge_score", "is_noise", "last_at")
    list_filter = ("is_noise", ChatbotListFilter)
    list_select_related = ("run", "run__chatbot")
    search_fields = ("label",)
    show_full_result_count = False
    actions = [export_finetune_jsonl]
    readonly_fields = ("run", "index", "label", "keywords", "size", "share_percent", "avg_judge_score",
                       "first_at", "last_at", "is_noise", "member_turns")
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).order_by("-run_id", "is_noise", "-size")

    @admin.display(description="chatbot")
    def chatbot(self, obj: Cluster) -> str:
        return obj.run.chatbot.name

    @admin.display(description="share")
    def share_percent(self, obj: Cluster) -> str:
        return f"{obj.share:.1%}"

    @admin.display(description="turns (closest to the centre first)")
    def member_turns(self, obj: Cluster) -> str:
        members = list(cluster_members(cluster=obj)[:MEMBERS_SHOWN])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    "★" if m.is_representative else "",
                    reverse("admin:conversations_conversation_change", args=[m.turn.conversation_id]),
                    m.turn.conversation.external_id,
                    ", ".join(str(FailureSource(r).label) if r in FailureSource.values else r for r in m.reasons or []),
                    Truncator(m.turn.user_message).chars(200),
                    Truncator(m.turn.bot_response).chars(200),
                    f"{m.distance:.3f}",
                    "—" if m.turn.judge_overall is None else f"{m.turn.judge_overall:.1f}",
                )
                for m in members
            ),
        )
        note = f"Showing {len(members)} of {obj.size}." if obj.size > len(members) else ""
        return format_html(
            "<table><thead><tr><th>rep.</th><th>conversation</th><th>why in</th><th>user message</th><th>bot answer</th>"
            "<th>distance</th><th>judge</th></tr></thead><tbody>{}</tbody></table><p>{}</p>",
            rows, note,
        )


@admin.register(TurnEmbedding)
class TurnEmbeddingAdmin(ChatbotScopedAdminMixin, LargeTableAdmin):
    chatbot_scope_field = "turn__chatbot"
    list_per_page = 100
    list_display = ("turn", "embedder", "dimensions", "created_at")
    list_filter = ("embedder",)
    raw_id_fields = ("turn",)
    show_full_result_count = False
    fields = ("turn", "embedder", "text_hash", "dimensions", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
