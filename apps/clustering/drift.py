"""Drift: matching a run's themes to the chatbot's previous run, so each theme has a history.

1. The previous run is the chatbot's newest finished run created before this one.
2. Its themes' members (turns still stored) and this run's turns are embedded *together* with
   this run's embedder: cached vectors for cacheable backends, one fit over both sets for
   TF-IDF (whose vectors are only comparable within one fit). So centres are comparable even
   when the previous run used another backend.
3. Centres of every non-noise cluster of both runs; pairs at or above
   CLUSTERING_DRIFT_SIMILARITY are matched one to one, most similar first (greedy).
4. A matched cluster continues the previous one's theme (same theme_origin) and records its
   share change in points; an unmatched one is new. With no previous run nothing is new: the
   first run is the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.conf import settings

from apps.conversations.models import Turn

from .algorithm import centres
from .choices import RunStatus
from .embedding_cache import turn_text, turn_vectors_get
from .embeddings import EmbeddingBackend
from .models import Cluster, ClusterMember, ClusterRun


@dataclass
class ThemeMatch:
    previous: Cluster
    similarity: float


def previous_run_for(run: ClusterRun) -> ClusterRun | None:
    return (
        ClusterRun.objects.filter(chatbot_id=run.chatbot_id, status=RunStatus.DONE, created_at__lt=run.created_at)
        .exclude(pk=run.pk)
        .order_by("-created_at", "-id")
        .first()
    )


def themes_match(
    *, run: ClusterRun, previous_run: ClusterRun, turns: list[Turn], vectors: np.ndarray, labels: np.ndarray,
    embedder: EmbeddingBackend, text_mode: str,
) -> dict[int, ThemeMatch]:
    """{this run's cluster label: the previous run's cluster it continues} (see the module docstring)."""
    previous_clusters = {c.pk: c for c in previous_run.clusters.filter(is_noise=False)}
    if not previous_clusters:
        return {}
    rows = list(
        ClusterMember.objects.filter(cluster_id__in=list(previous_clusters))
        .select_related("turn").only("cluster_id", "turn__id", "turn__user_message", "turn__bot_response")
        .order_by("turn_id")
    )
    if not rows:
        return {}
    previous_turns = [row.turn for row in rows]
    previous_labels = np.array([row.cluster_id for row in rows])
    previous_texts = [turn_text(turn, text_mode) for turn in previous_turns]
    if embedder.cacheable:
        previous_vectors, _ = turn_vectors_get(
            turns=previous_turns, texts=previous_texts, embedder=embedder, text_mode=text_mode
        )
        current_vectors = vectors
    else:
        joint = embedder.embed([turn_text(turn, text_mode) for turn in turns] + previous_texts)
        current_vectors, previous_vectors = joint[: len(turns)], joint[len(turns) :]
    current_centres = {k: v for k, v in centres(np.asarray(current_vectors, dtype=np.float64), labels).items() if k >= 0}
    previous_centres = centres(np.asarray(previous_vectors, dtype=np.float64), previous_labels)
    threshold = run.parameters.get("drift_similarity", settings.CLUSTERING_DRIFT_SIMILARITY)
    threshold = float(embedder.drift_similarity if threshold is None else threshold)
    pairs = sorted(
        (
            (float(current @ earlier), label, cluster_id)
            for label, current in current_centres.items()
            for cluster_id, earlier in previous_centres.items()
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )
    matches: dict[int, ThemeMatch] = {}
    taken: set[int] = set()
    for similarity, label, cluster_id in pairs:
        if similarity < threshold:
            break
        if label in matches or cluster_id in taken:
            continue
        matches[label] = ThemeMatch(previous_clusters[cluster_id], round(similarity, 4))
        taken.add(cluster_id)
    return matches


def drift_apply(*, cluster: Cluster, match: ThemeMatch | None, has_previous_run: bool) -> None:
    """Set a (not yet saved) cluster's drift fields from its match."""
    if cluster.is_noise or not has_previous_run:
        cluster.is_new = None
        return
    if match is None:
        cluster.is_new = True
        return
    cluster.is_new = False
    cluster.previous = match.previous
    cluster.theme_origin_id = match.previous.theme_origin_id or match.previous.pk
    cluster.share_change = round(100.0 * (cluster.share - match.previous.share), 2)
