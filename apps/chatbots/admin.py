from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from apps.chatbots.admin_mixins import ChatbotListFilter, ChatbotScopedAdminMixin

from .models import ApiKey, Chatbot
from .services import api_key_curl_example, api_key_issue, api_key_revoke


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are created through the ApiKey admin, where the key is shown once


@admin.register(Chatbot)
class ChatbotAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    chatbot_scope_field = "pk"
    list_display = ("name", "slug", "company", "provider", "model", "monitoring_enabled", "judge_enabled", "judge_sample_rate", "risk_threshold")
    list_filter = ("provider", "monitoring_enabled", "judge_enabled", "pii_redaction_enabled")
    search_fields = ("name", "slug", "company")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("reviewers",)
    inlines = [ApiKeyInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "company", "provider", "model", "description")}),
        ("Monitoring", {"fields": ("monitoring_enabled", "risk_threshold", "alert_on_risk")}),
        ("LLM judge", {"fields": ("judge_enabled", "judge_sample_rate", "judge_model", "judge_weights", "judge_flag_below", "judge_instructions")}),
        ("Clustering", {"fields": ("clustering_interval_hours", "clustering_window_days", "last_clustered_at")}),
        ("Privacy", {"fields": ("pii_redaction_enabled", "default_consent", "retention_days", "allowed_origins")}),
        ("Review", {"fields": ("review_labels",)}),
        ("Access", {"fields": ("reviewers",)}),
    )
    readonly_fields = ("last_clustered_at",)
    # Apps above this one add their chatbot-wide actions from their own admin module
    # (clustering: "cluster thumbs-down"; review: the judge-vs-reviewers figures), so this app
    # imports none of them.
    actions: list = []


@admin.register(ApiKey)
class ApiKeyAdmin(ChatbotScopedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "chatbot", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (ChatbotListFilter, ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("chatbot",)
    search_fields = ("name", "prefix", "chatbot__name")
    readonly_fields = ("prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    fields = ("chatbot", "name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    actions = ["revoke_keys"]

    def get_readonly_fields(self, request, obj=None):
        # A key belongs to its chatbot for life; rotate by creating a new one and revoking this.
        return self.readonly_fields + (("chatbot",) if obj else ())

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # Kept on this request only: response_add renders it into the page. A message would put
        # it in the messages cookie, which is signed, not encrypted.
        request.chatmon_issued_api_key = api_key_issue(key=obj, actor=request.user)

    def response_add(self, request, obj: ApiKey, post_url_continue=None):
        raw_key = getattr(request, "chatmon_issued_api_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(request, "admin/chatbots/apikey/issued.html", {
            **self.admin_site.each_context(request),
            "opts": self.opts, "title": "New API key", "key": obj, "raw_key": raw_key,
            "curl_example": api_key_curl_example(base_url=request.build_absolute_uri("/"), raw_key=raw_key),
        })
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected keys (effective at once)")
    def revoke_keys(self, request, queryset) -> None:
        revoked = sum(api_key_revoke(key=key) for key in queryset.select_related("chatbot"))
        self.message_user(request, f"Revoked {revoked} key(s).")
