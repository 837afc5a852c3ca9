"""Executing a clustering run: claim it, embed, partition, name and store its clusters."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.conversations.models import Turn

from .algorithm import NOISE, cluster_keywords, partition_vectors
from .choices import RunStatus
from .drift import ThemeMatch, drift_apply, previous_run_for, themes_match
from .embedding_cache import turn_text, turn_vectors_get
from .embeddings import embedding_backend_for
from .models import Cluster, ClusterMember, ClusterRun
from .phrases import phrase_titles
from .selectors import failure_turns
from .sources import SOURCES, sources_normalise
from .titles import cluster_titles_write

logger = logging.getLogger(__name__)


def _claim(run_id: int, now: datetime) -> bool:
    """Compare-and-set pending → running; a run stuck in running past the task's time limit
    (its worker died) may be claimed again by the redelivered task."""
    stale = now - timedelta(seconds=settings.CLUSTERING_TASK_TIME_LIMIT)
    claimable = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, started_at__lt=stale)
    return ClusterRun.objects.filter(claimable, pk=run_id).update(status=RunStatus.RUNNING, started_at=now) == 1


def cluster_run_execute(*, run_id: int) -> ClusterRun | None:
    """Run one clustering; returns the run, or None when another worker has it.

    1. Claim the run (compare-and-set).
    2. Read the newest turns of the window matching the run's failure sources (at most
       CLUSTERING_MAX_TURNS), each with the sources it matched; too few → "skipped".
    3. Embed them, reusing cached vectors.
    4. Partition (ward + BIC, near-duplicate clusters merged), keywords by c-TF-IDF, titles:
       the most representative phrase (phrases.py), or the LLM's when CLUSTER_LABEL_MODEL is set.
    5. Match the themes to the chatbot's previous finished run (drift.py).
    6. Store clusters and members (with their reasons) in one transaction; the run records
       counts and timings; the theme alert rules are checked once it has committed.
    Failures mark the run "failed" with the reason (the openai client has already retried brief
    429/5xx); vectors computed before the failure stay cached, so the next run pays only the rest.
    """
    now = timezone.now()
    if not _claim(run_id, now):
        return None
    run = ClusterRun.objects.select_related("chatbot").get(pk=run_id)
    try:
        _execute(run)
    except Exception as exc:  # noqa: BLE001 - the run must record why it failed, whatever it was
        logger.exception("clustering run %s failed", run.pk)
        run.status = RunStatus.FAILED
        run.message = f"{type(exc).__name__}: {exc}"[:2000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "message", "finished_at", "timings", "parameters"])
    return run


def _execute(run: ClusterRun) -> None:
    began = time.monotonic()
    timings: dict[str, float] = {}
    text_mode = run.parameters.get("text_mode", settings.CLUSTERING_TEXT_MODE)
    min_turns = max(2, int(run.parameters.get("min_turns", settings.CLUSTERING_MIN_TURNS)))
    min_cluster_size = int(run.parameters.get("min_cluster_size", settings.CLUSTERING_MIN_CLUSTER_SIZE))
    max_turns = int(run.parameters.get("max_turns", settings.CLUSTERING_MAX_TURNS))

    sources = sources_normalise(run.parameters.get("sources"))

    step = time.monotonic()
    turns = failure_turns(
        chatbot=run.chatbot, start=run.window_start, end=run.window_end, sources=sources, limit=max_turns + 1
    )
    truncated = len(turns) > max_turns
    if truncated:
        turns = sorted(turns, key=lambda t: (t.timestamp, t.id))[1:]
        turns.sort(key=lambda t: t.id)
    timings["select"] = round(time.monotonic() - step, 3)
    run.turn_count = len(turns)
    run.parameters["truncated_to_newest"] = truncated
    run.parameters["sources"] = sources
    by_source = {source: sum(source in turn.reasons for turn in turns) for source in sources}
    run.parameters["turns_by_source"] = by_source
    described = _sources_described(sources)

    if len(turns) < min_turns:
        run.status = RunStatus.SKIPPED
        run.message = (
            f"Only {len(turns)} {described} turn{'s' if len(turns) != 1 else ''} between "
            f"{run.window_start:%Y-%m-%d %H:%M} and {run.window_end:%Y-%m-%d %H:%M} UTC; "
            f"clustering needs at least {min_turns}."
        )
        run.timings = {**timings, "total": round(time.monotonic() - began, 3)}
        run.finished_at = timezone.now()
        run.save()
        return

    step = time.monotonic()
    texts = [turn_text(turn, text_mode) for turn in turns]
    embedder = embedding_backend_for(name=run.backend, model=run.embedding_model, chatbot=run.chatbot)
    vectors, stats = turn_vectors_get(turns=turns, texts=texts, embedder=embedder, text_mode=text_mode)
    timings["embed"] = round(time.monotonic() - step, 3)
    run.parameters.update(
        {"embedder": embedder.embedder_key(text_mode), "embeddings_cached": stats.cached,
         "embeddings_computed": stats.computed, "embedding_requests": stats.backend_calls}
    )

    step = time.monotonic()
    merge_similarity = run.parameters.get("merge_similarity", settings.CLUSTERING_MERGE_SIMILARITY)
    if merge_similarity is None:
        merge_similarity = embedder.merge_similarity
    partition = partition_vectors(vectors, min_cluster_size=min_cluster_size, merge_similarity=float(merge_similarity))
    timings["cluster"] = round(time.monotonic() - step, 3)
    run.parameters.update(partition.parameters)

    step = time.monotonic()
    user_texts = [turn.user_message for turn in turns]
    keywords = cluster_keywords(user_texts, partition.labels, top=settings.CLUSTERING_KEYWORDS)
    titles = phrase_titles(user_texts, partition.labels)
    drafts = _cluster_drafts(run, turns, partition.labels, partition.distances, keywords, titles)
    label_notes = cluster_titles_write(run=run, drafts=drafts, user_texts=user_texts)
    timings["label"] = round(time.monotonic() - step, 3)

    step = time.monotonic()
    previous_run = previous_run_for(run)
    matches: dict[int, ThemeMatch] = {}
    if previous_run is not None:
        matches = themes_match(
            run=run, previous_run=previous_run, turns=turns, vectors=vectors, labels=partition.labels,
            embedder=embedder, text_mode=text_mode,
        )
    run.previous_run = previous_run
    for draft in drafts:
        drift_apply(cluster=draft.cluster, match=matches.get(draft.cluster.index),
                    has_previous_run=previous_run is not None)
    timings["drift"] = round(time.monotonic() - step, 3)

    step = time.monotonic()
    with transaction.atomic():
        clusters = Cluster.objects.bulk_create([draft.cluster for draft in drafts])
        members: list[ClusterMember] = []
        for draft, cluster in zip(drafts, clusters, strict=True):
            representative = set(draft.representatives)
            members.extend(
                ClusterMember(cluster=cluster, turn_id=turns[p].id, distance=float(partition.distances[p]),
                              is_representative=p in representative, reasons=turns[p].reasons)
                for p in draft.positions
            )
        ClusterMember.objects.bulk_create(members, batch_size=2000)
        run.cluster_count = partition.cluster_count
        run.noise_count = partition.noise_count
        run.status = RunStatus.DONE
        run.message = "; ".join(
            [f"{partition.cluster_count} clusters from {len(turns)} {described} turns"]
            + (["clustered the newest turns only (CLUSTERING_MAX_TURNS)"] if truncated else [])
            + label_notes
        )
        timings["save"] = round(time.monotonic() - step, 3)
        timings["total"] = round(time.monotonic() - began, 3)
        run.timings = timings
        run.finished_at = timezone.now()
        run.save()
        # Theme alerts are evaluated when a run finishes (events of a run, not of a window of
        # turns); a first run is the baseline and has nothing to compare with.
        if previous_run is not None:
            from apps.alerts.theme_alerts import theme_rules_check_enqueue

            theme_rules_check_enqueue(run_id=run.pk)


def _sources_described(sources: list[str]) -> str:
    if len(sources) == len(SOURCES):
        return "failure"
    return "/".join(str(SOURCES[source].source.label).lower() for source in sources)


@dataclass
class ClusterDraft:
    cluster: Cluster
    positions: list[int]  # rows of the run's turn list, closest to the centre first
    representatives: list[int]


def _cluster_drafts(
    run: ClusterRun, turns: list[Turn], labels: np.ndarray, distances: np.ndarray, keywords: dict[int, list[str]],
    titles: dict[int, str],
) -> list[ClusterDraft]:
    total = len(turns)
    drafts: list[ClusterDraft] = []
    for label in sorted({int(x) for x in labels}, key=lambda x: (x == NOISE, x)):
        positions = [int(p) for p in np.flatnonzero(labels == label)]
        positions.sort(key=lambda p: (distances[p], turns[p].id))
        scores = [turns[p].judge_overall for p in positions if turns[p].judge_overall is not None]
        stamps = [turns[p].timestamp for p in positions]
        words = keywords.get(label, [])
        cluster = Cluster(
            run=run,
            index=label,
            is_noise=label == NOISE,
            label="Other" if label == NOISE else titles.get(label, "(no common phrase)"),
            keywords=words,
            size=len(positions),
            share=round(len(positions) / total, 4) if total else 0.0,
            avg_judge_score=round(sum(scores) / len(scores), 2) if scores else None,
            first_at=min(stamps),
            last_at=max(stamps),
        )
        drafts.append(ClusterDraft(cluster, positions, positions[: settings.CLUSTERING_REPRESENTATIVES]))
    return drafts
