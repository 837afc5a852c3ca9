"""Clustering runs: creating one (validated parameters), queueing it, and the hourly schedule."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.chatbots.models import Chatbot
from apps.core.queue import enqueue_on_commit

from .choices import RunStatus, TextMode
from .embeddings import EMBEDDING_BACKENDS, embedding_backend_for
from .models import ClusterRun
from .selectors import active_run_exists
from .sources import UnknownSourceError, sources_normalise


class ClusteringInputError(ValueError):
    """A run was asked for with parameters that cannot work (unknown backend, bad window)."""


def cluster_run_create(
    *,
    chatbot: Chatbot,
    days: int | None = None,
    backend: str | None = None,
    text_mode: str | None = None,
    sources: list[str] | None = None,
    requested_by: Any = None,
    now: datetime | None = None,
) -> ClusterRun:
    """A pending run over the last `days` days (default: the chatbot's clustering window) of the
    turns matching `sources` (default: CLUSTERING_SOURCES, every failure signal)."""
    backend = backend or settings.EMBEDDING_BACKEND
    if backend not in EMBEDDING_BACKENDS:
        raise ClusteringInputError(
            f"Unknown embedding backend {backend!r}; choose one of {', '.join(sorted(EMBEDDING_BACKENDS))}."
        )
    text_mode = text_mode or settings.CLUSTERING_TEXT_MODE
    if text_mode not in TextMode.values:
        raise ClusteringInputError(f"Unknown text mode {text_mode!r}; choose one of {', '.join(TextMode.values)}.")
    try:
        sources = sources_normalise(settings.CLUSTERING_SOURCES if sources is None else sources)
    except UnknownSourceError as exc:
        raise ClusteringInputError(str(exc)) from exc
    days = chatbot.clustering_window_days if days is None else days
    if days < 1 or days > 3650:
        raise ClusteringInputError("The window must be between 1 and 3650 days.")
    end = now or timezone.now()
    embedder = embedding_backend_for(name=backend)
    return ClusterRun.objects.create(
        chatbot=chatbot,
        window_start=end - timedelta(days=days),
        window_end=end,
        backend=backend,
        embedding_model=embedder.model,
        parameters={
            "days": days,
            "text_mode": text_mode,
            "min_turns": settings.CLUSTERING_MIN_TURNS,
            "min_cluster_size": settings.CLUSTERING_MIN_CLUSTER_SIZE,
            "max_turns": settings.CLUSTERING_MAX_TURNS,
            "label_model": settings.CLUSTER_LABEL_MODEL,
            "sources": sources,
            "merge_similarity": _or_default(settings.CLUSTERING_MERGE_SIMILARITY, embedder.merge_similarity),
            "drift_similarity": _or_default(settings.CLUSTERING_DRIFT_SIMILARITY, embedder.drift_similarity),
        },
        requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
    )


def _or_default(value: float | None, default: float) -> float:
    return float(default if value is None else value)


# A pending run older than this was never picked up (see cluster_runs_lost_requeue).
LOST_RUN_AFTER = timedelta(minutes=10)


def cluster_run_enqueue(*, run: ClusterRun) -> None:
    """Queue the run's task once the surrounding transaction has committed the run row."""
    from .tasks import cluster_run_execute as cluster_run_execute_task

    enqueue_on_commit(cluster_run_execute_task, run.pk)


def cluster_run_request(
    *, chatbot: Chatbot, days: int | None = None, backend: str | None = None, sources: list[str] | None = None,
    requested_by: Any = None,
) -> ClusterRun | None:
    """Create and queue a run unless one is already pending or running for the chatbot."""
    if active_run_exists(chatbot=chatbot):
        return None
    run = cluster_run_create(chatbot=chatbot, days=days, backend=backend, sources=sources, requested_by=requested_by)
    cluster_run_enqueue(run=run)
    return run


def cluster_runs_lost_requeue(*, now: datetime) -> int:
    """Queue again the runs still pending a while after they were created: their message never
    reached the broker (publishing fails fast and skips while the broker is down), and a pending
    run blocks every later run of its chatbot. A duplicate message is harmless: execution claims
    the run with a compare-and-set."""
    lost = list(ClusterRun.objects.filter(status=RunStatus.PENDING, created_at__lt=now - LOST_RUN_AFTER))
    for run in lost:
        cluster_run_enqueue(run=run)
    return len(lost)


def clustering_schedule_due(*, now: datetime | None = None) -> list[ClusterRun]:
    """Start runs for chatbots whose clustering interval has elapsed (beat, hourly).

    Each chatbot is claimed by a compare-and-set on last_clustered_at, so two beat processes
    or overlapping sweeps start one run, not two.
    """
    now = now or timezone.now()
    cluster_runs_lost_requeue(now=now)
    started: list[ClusterRun] = []
    candidates = Chatbot.objects.filter(clustering_interval_hours__gt=0).only(
        "id", "clustering_interval_hours", "clustering_window_days", "last_clustered_at"
    )
    for chatbot in candidates:
        last = chatbot.last_clustered_at
        if last is not None and now - last < timedelta(hours=chatbot.clustering_interval_hours):
            continue
        claimed = Chatbot.objects.filter(pk=chatbot.pk, last_clustered_at=last) if last else Chatbot.objects.filter(
            pk=chatbot.pk, last_clustered_at__isnull=True
        )
        if claimed.update(last_clustered_at=now) != 1:
            continue
        if active_run_exists(chatbot=chatbot):
            continue
        with transaction.atomic():
            run = cluster_run_create(chatbot=chatbot, now=now)
            run.parameters["trigger"] = "schedule"
            run.save(update_fields=["parameters"])
            cluster_run_enqueue(run=run)
        started.append(run)
    return started
