from django.contrib import admin

from .models import ApiKey, Chatbot


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
class ChatbotAdmin(admin.ModelAdmin):
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
        ("Privacy", {"fields": ("pii_redaction_enabled", "retention_days", "allowed_origins")}),
        ("Access", {"fields": ("reviewers",)}),
    )
    readonly_fields = ("last_clustered_at",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "chatbot", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("chatbot",)
    list_select_related = ("chatbot",)
    search_fields = ("name", "prefix", "chatbot__name")
    readonly_fields = ("prefix", "created_at", "created_by", "last_used_at", "revoked_at")
    fields = ("chatbot", "name", "prefix", "created_at", "created_by", "last_used_at", "revoked_at")
