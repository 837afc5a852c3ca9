from django.conf import settings
from django.db import models

from .choices import RunStatus


class TurnEmbedding(models.Model):
    """A cached embedding of one turn's text by one backend+model; never recomputed."""

    turn = models.ForeignKey("conversations.Turn", on_delete=models.CASCADE, related_name="embeddings")
    embedder = models.CharField(max_length=150, help_text="backend:model:text-mode")
    text_hash = models.CharField(max_length=64, help_text="SHA-256 of the embedded text.")
    dimensions = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="float32 little-endian")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["turn", "embedder"], name="embedding_per_turn_and_embedder"),
        ]

    def __str__(self) -> str:
        return f"turn {self.turn_id} by {self.embedder}"


class ClusterRun(models.Model):
    chatbot = models.ForeignKey("chatbots.Chatbot", on_delete=models.CASCADE, related_name="cluster_runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    backend = models.CharField(max_length=50)
    embedding_model = models.CharField(max_length=150, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    turn_count = models.PositiveIntegerField(default=0)
    cluster_count = models.PositiveIntegerField(default=0)
    noise_count = models.PositiveIntegerField(default=0)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per phase.")
    message = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    previous_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The chatbot's previous finished run its themes were matched against (drift).",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["chatbot", "-created_at"], name="clusterrun_chatbot_time")]

    def __str__(self) -> str:
        return f"{self.chatbot} run {self.pk} ({self.status})"


class Cluster(models.Model):
    run = models.ForeignKey(ClusterRun, on_delete=models.CASCADE, related_name="clusters")
    index = models.IntegerField(help_text="-1 is the 'other' bucket of unclustered turns.")
    label = models.CharField(max_length=200)
    keywords = models.JSONField(default=list, blank=True)
    size = models.PositiveIntegerField(default=0)
    share = models.FloatField(default=0.0)
    avg_judge_score = models.FloatField(null=True, blank=True)
    first_at = models.DateTimeField(null=True, blank=True)
    last_at = models.DateTimeField(null=True, blank=True)
    is_noise = models.BooleanField(default=False)
    # Drift: the theme of the previous run this cluster continues (centres embedded together
    # and at least CLUSTERING_DRIFT_SIMILARITY alike), and the first cluster of that chain.
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="continued_by"
    )
    theme_origin = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The first cluster of this theme's history; empty: this cluster starts it.",
    )
    is_new = models.BooleanField(
        null=True, blank=True, help_text="Matches no theme of the previous run; empty: there was no previous run."
    )
    share_change = models.FloatField(null=True, blank=True, help_text="Share minus the previous run's, in points.")
    turns = models.ManyToManyField("conversations.Turn", through="ClusterMember", related_name="clusters")

    class Meta:
        ordering = ["run", "-size"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="cluster_index_per_run")]

    def __str__(self) -> str:
        return self.label

    @property
    def theme_key(self) -> int:
        """The id shared by every cluster of this theme's history."""
        return self.theme_origin_id or self.pk


class ClusterMember(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="members")
    turn = models.ForeignKey("conversations.Turn", on_delete=models.CASCADE, related_name="cluster_memberships")
    distance = models.FloatField(default=0.0, help_text="Distance to the cluster centre.")
    is_representative = models.BooleanField(default=False)
    reasons = models.JSONField(default=list, blank=True, help_text="The failure sources the turn matched.")

    class Meta:
        ordering = ["cluster", "distance"]
        constraints = [models.UniqueConstraint(fields=["cluster", "turn"], name="cluster_member_once")]

    def __str__(self) -> str:
        return f"turn {self.turn_id} in cluster {self.cluster_id}"
