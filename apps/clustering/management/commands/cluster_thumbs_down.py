"""Cluster a chatbot's failure turns now (every signal unless --sources says), in this process, and print the clusters."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.chatbots.models import Chatbot
from apps.clustering.choices import RunStatus, TextMode
from apps.clustering.embeddings import EMBEDDING_BACKENDS
from apps.clustering.execution import cluster_run_execute
from apps.clustering.runs import ClusteringInputError, cluster_run_create


class Command(BaseCommand):
    help = "Cluster the failure turns of a chatbot synchronously and print a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("chatbot", help="The chatbot's slug.")
        parser.add_argument("--days", type=int, default=None, help="Window in days (default: the chatbot's setting).")
        parser.add_argument("--backend", choices=sorted(EMBEDDING_BACKENDS), default=None,
                            help="Embedding backend (default: EMBEDDING_BACKEND).")
        parser.add_argument("--text-mode", choices=TextMode.values, default=None,
                            help="What is embedded (default: CLUSTERING_TEXT_MODE).")
        parser.add_argument("--sources", default=None,
                            help="Comma-separated failure sources (thumbs_down, judge_flagged, hallucinated, "
                                 "fallback, error, manual_flag) or all (default: CLUSTERING_SOURCES).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            chatbot = Chatbot.objects.get(slug=options["chatbot"])
        except Chatbot.DoesNotExist as exc:
            raise CommandError(f"No chatbot with slug {options['chatbot']!r}.") from exc
        try:
            run = cluster_run_create(chatbot=chatbot, days=options["days"], backend=options["backend"],
                                     text_mode=options["text_mode"],
                                     sources=options["sources"].split(",") if options["sources"] else None)
        except ClusteringInputError as exc:
            raise CommandError(str(exc)) from exc
        run = cluster_run_execute(run_id=run.pk)
        if run is None:  # cannot happen for a run we just created, but never print a lie
            raise CommandError("The run was claimed by another worker.")
        out = self.stdout
        out.write(f"Run {run.pk} for {chatbot.slug}: {run.status} — {run.message}")
        out.write(f"  backend {run.backend} ({run.embedding_model}), {run.turn_count} turns, "
                  f"{run.cluster_count} clusters, {run.noise_count} in other; "
                  + ", ".join(f"{k} {v:.2f}s" for k, v in run.timings.items()))
        if run.status == RunStatus.FAILED:
            raise CommandError(run.message)
        for cluster in run.clusters.order_by("is_noise", "-size", "index"):
            score = f"{cluster.avg_judge_score:.1f}" if cluster.avg_judge_score is not None else "—"
            out.write(f"  {cluster.size:6d}  {cluster.share:6.1%}  judge {score:>4}  {cluster.label}")
