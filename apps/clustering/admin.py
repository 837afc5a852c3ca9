from django.contrib import admin

from .models import Cluster, ClusterMember, ClusterRun, TurnEmbedding


class ClusterInline(admin.TabularInline):
    model = Cluster
    extra = 0
    fields = ("label", "size", "share", "avg_judge_score", "keywords")
    readonly_fields = fields
    show_change_link = True
    max_num = 0


@admin.register(ClusterRun)
class ClusterRunAdmin(admin.ModelAdmin):
    list_display = ("id", "chatbot", "status", "backend", "turn_count", "cluster_count", "noise_count", "created_at")
    list_filter = ("status", "backend", "chatbot")
    list_select_related = ("chatbot",)
    inlines = [ClusterInline]


class ClusterMemberInline(admin.TabularInline):
    model = ClusterMember
    extra = 0
    raw_id_fields = ("turn",)
    max_num = 0


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("label", "run", "size", "share", "avg_judge_score", "is_noise")
    list_select_related = ("run", "run__chatbot")
    inlines = [ClusterMemberInline]


@admin.register(TurnEmbedding)
class TurnEmbeddingAdmin(admin.ModelAdmin):
    list_display = ("turn", "embedder", "dimensions", "created_at")
    raw_id_fields = ("turn",)
    show_full_result_count = False
