"""Clustering runs: create, claim, embed (with the cache), cluster, label, store; scheduling; export."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_event_record
from apps.chatbots.models import Chatbot
from apps.conversations.models import Turn
from apps.core.queue import enqueue_on_commit

from .algorithm import NOISE, cluster_keywords, keyword_title, partition_vectors
from .choices import RunStatus, TextMode
from .embeddings import EMBEDDING_BACKENDS, EmbeddingBackend, EmbeddingError, embedding_backend_for
from .models import Cluster, ClusterMember, ClusterRun, TurnEmbedding
from .selectors import active_run_exists, thumbs_down_turns

logger = logging.getLogger(__name__)

# Rows per query when reading or writing cached vectors (well under SQLite's variable limit).
_CACHE_CHUNK = 2000
# Texts per embedding round; vectors are stored after each, so a failed run keeps its progress.
_EMBED_CHUNK = 1024


class ClusteringInputError(ValueError):
    """A run was asked for with parameters that cannot work (unknown backend, bad window)."""


# --- creating and scheduling runs ----------------------------------------------------------
def cluster_run_create(
    *,
    chatbot: Chatbot,
    days: int | None = None,
    backend: str | None = None,
    text_mode: str | None = None,
    requested_by: Any = None,
    now: datetime | None = None,
) -> ClusterRun:
    """A pending run over the last `days` days (default: the chatbot's clustering window)."""
    backend = backend or settings.EMBEDDING_BACKEND
    if backend not in EMBEDDING_BACKENDS:
        raise ClusteringInputError(
            f"Unknown embedding backend {backend!r}; choose one of {', '.join(sorted(EMBEDDING_BACKENDS))}."
        )
    text_mode = text_mode or settings.CLUSTERING_TEXT_MODE
    if text_mode not in TextMode.values:
        raise ClusteringInputError(f"Unknown text mode {text_mode!r}; choose one of {', '.join(TextMode.values)}.")
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
            "label_model": settings.LABEL_MODEL,
        },
        requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
    )


def cluster_run_enqueue(*, run: ClusterRun) -> None:
    """Queue the run's task once the surrounding transaction has committed the run row."""
    from .tasks import cluster_run_execute as cluster_run_execute_task

    enqueue_on_commit(cluster_run_execute_task, run.pk)


def cluster_run_request(
    *, chatbot: Chatbot, days: int | None = None, backend: str | None = None, requested_by: Any = None
) -> ClusterRun | None:
    """Create and queue a run unless one is already pending or running for the chatbot."""
    if active_run_exists(chatbot=chatbot):
        return None
    run = cluster_run_create(chatbot=chatbot, days=days, backend=backend, requested_by=requested_by)
    cluster_run_enqueue(run=run)
    return run


def clustering_schedule_due(*, now: datetime | None = None) -> list[ClusterRun]:
    """Start runs for chatbots whose clustering interval has elapsed (beat, hourly).

    Each chatbot is claimed by a compare-and-set on last_clustered_at, so two beat processes
    or overlapping sweeps start one run, not two.
    """
    now = now or timezone.now()
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


# --- executing a run -----------------------------------------------------------------------
def turn_text(turn: Turn, text_mode: str) -> str:
    if text_mode == TextMode.USER_BOT and turn.bot_response:
        return f"{turn.user_message}\n{turn.bot_response}"
    return turn.user_message


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class EmbeddingStats:
    cached: int = 0
    computed: int = 0
    backend_calls: int = 0


def turn_vectors_get(
    *, turns: list[Turn], texts: list[str], embedder: EmbeddingBackend, text_mode: str
) -> tuple[np.ndarray, EmbeddingStats]:
    """Vectors for `turns` (rows in the same order), from the cache where the text is unchanged.

    Only cacheable backends use TurnEmbedding; a row is reused when its text_hash matches the
    text we would embed now (a redaction or edit changes the hash and the vector is replaced).
    """
    stats = EmbeddingStats()
    if not embedder.cacheable:
        vectors = embedder.embed(texts)
        stats.computed = len(texts)
        stats.backend_calls = embedder.calls
        return vectors, stats

    key = embedder.embedder_key(text_mode)
    hashes = [_text_hash(text) for text in texts]
    by_turn: dict[int, tuple[str, np.ndarray]] = {}
    ids = [turn.id for turn in turns]
    for start in range(0, len(ids), _CACHE_CHUNK):
        rows = TurnEmbedding.objects.filter(embedder=key, turn_id__in=ids[start : start + _CACHE_CHUNK]).values_list(
            "turn_id", "text_hash", "vector"
        )
        for turn_id, text_hash, vector in rows:
            by_turn[turn_id] = (text_hash, np.frombuffer(bytes(vector), dtype="<f4"))

    vectors: list[np.ndarray | None] = [None] * len(turns)
    missing: list[int] = []
    for position, (turn_id, text_hash) in enumerate(zip(ids, hashes, strict=True)):
        cached = by_turn.get(turn_id)
        if cached is not None and cached[0] == text_hash:
            vectors[position] = cached[1]
            stats.cached += 1
        else:
            missing.append(position)

    for start in range(0, len(missing), _EMBED_CHUNK):
        chunk = missing[start : start + _EMBED_CHUNK]
        computed = embedder.embed([texts[p] for p in chunk])
        new_rows: list[TurnEmbedding] = []
        for position, vector in zip(chunk, computed, strict=True):
            vectors[position] = vector
            turn_id = ids[position]
            data = np.asarray(vector, dtype="<f4").tobytes()
            if turn_id in by_turn:  # the text changed since it was embedded
                TurnEmbedding.objects.filter(turn_id=turn_id, embedder=key).update(
                    text_hash=hashes[position], vector=data, dimensions=len(vector)
                )
            else:
                new_rows.append(TurnEmbedding(turn_id=turn_id, embedder=key, text_hash=hashes[position],
                                              dimensions=len(vector), vector=data))
        # ignore_conflicts: a concurrent run of another chatbot window may have stored the same turn.
        TurnEmbedding.objects.bulk_create(new_rows, batch_size=1000, ignore_conflicts=True)
        stats.computed += len(chunk)
    stats.backend_calls = embedder.calls

    dimensions = {len(v) for v in vectors if v is not None}
    if len(dimensions) > 1:
        raise EmbeddingError(f"Cached vectors of {key} have mixed dimensions {sorted(dimensions)}.", permanent=True)
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32), stats
    return np.vstack(vectors).astype(np.float32), stats


def _claim(run_id: int, now: datetime) -> bool:
    """Compare-and-set pending → running; a run stuck in running past the task's time limit
    (its worker died) may be claimed again by the redelivered task."""
    stale = now - timedelta(seconds=settings.CLUSTERING_TASK_TIME_LIMIT)
    claimable = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, started_at__lt=stale)
    return ClusterRun.objects.filter(claimable, pk=run_id).update(status=RunStatus.RUNNING, started_at=now) == 1


def cluster_run_execute(*, run_id: int) -> ClusterRun | None:
    """Run one clustering; returns the run, or None when another worker has it.

    1. Claim the run (compare-and-set).
    2. Read the newest thumbs-down turns of the window (at most CLUSTERING_MAX_TURNS);
       too few → status "skipped" with a message.
    3. Embed them, reusing cached vectors.
    4. Partition (ward + BIC), keywords by c-TF-IDF, titles (LLM when LABEL_MODEL is set).
    5. Store clusters and members in one transaction; the run records counts and timings.
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

    step = time.monotonic()
    turns = thumbs_down_turns(chatbot=run.chatbot, start=run.window_start, end=run.window_end, limit=max_turns + 1)
    truncated = len(turns) > max_turns
    if truncated:
        turns = sorted(turns, key=lambda t: (t.timestamp, t.id))[1:]
        turns.sort(key=lambda t: t.id)
    timings["select"] = round(time.monotonic() - step, 3)
    run.turn_count = len(turns)
    run.parameters["truncated_to_newest"] = truncated

    if len(turns) < min_turns:
        run.status = RunStatus.SKIPPED
        run.message = (
            f"Only {len(turns)} thumbs-down turn{'s' if len(turns) != 1 else ''} between "
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
    partition = partition_vectors(vectors, min_cluster_size=min_cluster_size)
    timings["cluster"] = round(time.monotonic() - step, 3)
    run.parameters.update(partition.parameters)

    step = time.monotonic()
    user_texts = [turn.user_message for turn in turns]
    keywords = cluster_keywords(user_texts, partition.labels, top=settings.CLUSTERING_KEYWORDS)
    drafts = _cluster_drafts(run, turns, partition.labels, partition.distances, keywords)
    label_notes = _titles_write(run, drafts, user_texts)
    timings["label"] = round(time.monotonic() - step, 3)

    step = time.monotonic()
    with transaction.atomic():
        clusters = Cluster.objects.bulk_create([draft.cluster for draft in drafts])
        members: list[ClusterMember] = []
        for draft, cluster in zip(drafts, clusters, strict=True):
            representative = set(draft.representatives)
            members.extend(
                ClusterMember(cluster=cluster, turn_id=turns[p].id, distance=float(partition.distances[p]),
                              is_representative=p in representative)
                for p in draft.positions
            )
        ClusterMember.objects.bulk_create(members, batch_size=2000)
        run.cluster_count = partition.cluster_count
        run.noise_count = partition.noise_count
        run.status = RunStatus.DONE
        run.message = "; ".join(
            [f"{partition.cluster_count} clusters from {len(turns)} thumbs-down turns"]
            + (["clustered the newest turns only (CLUSTERING_MAX_TURNS)"] if truncated else [])
            + label_notes
        )
        timings["save"] = round(time.monotonic() - step, 3)
        timings["total"] = round(time.monotonic() - began, 3)
        run.timings = timings
        run.finished_at = timezone.now()
        run.save()


@dataclass
class _Draft:
    cluster: Cluster
    positions: list[int]  # rows of the run's turn list, closest to the centre first
    representatives: list[int]


def _cluster_drafts(
    run: ClusterRun, turns: list[Turn], labels: np.ndarray, distances: np.ndarray, keywords: dict[int, list[str]]
) -> list[_Draft]:
    total = len(turns)
    drafts: list[_Draft] = []
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
            label="Other" if label == NOISE else keyword_title(words),
            keywords=words,
            size=len(positions),
            share=round(len(positions) / total, 4) if total else 0.0,
            avg_judge_score=round(sum(scores) / len(scores), 2) if scores else None,
            first_at=min(stamps),
            last_at=max(stamps),
        )
        drafts.append(_Draft(cluster, positions, positions[: settings.CLUSTERING_REPRESENTATIVES]))
    return drafts


# --- titles --------------------------------------------------------------------------------
_TITLE_PROMPT = (
    "You name groups of chatbot conversations in which users gave a thumbs-down. "
    "Answer with a title of at most 5 words describing what these users asked about or "
    "complained about. No quotes, no trailing punctuation."
)


def _titles_write(run: ClusterRun, drafts: list[_Draft], user_texts: list[str]) -> list[str]:
    """Replace keyword titles by LLM-written ones when LABEL_MODEL is set; keep keywords on failure."""
    model = run.parameters.get("label_model", settings.LABEL_MODEL)
    if not model:
        return []
    failures = 0
    for draft in drafts:
        if draft.cluster.is_noise:
            continue
        examples = [user_texts[p][:300] for p in draft.representatives]
        title = cluster_title_from_model(
            model=model, keywords=draft.cluster.keywords, examples=examples, chatbot=run.chatbot
        )
        if title:
            draft.cluster.label = title
        else:
            failures += 1
    return [f"{failures} titles fell back to keywords (labeling model failed)"] if failures else []


def cluster_title_from_model(*, model: str, keywords: list[str], examples: list[str], chatbot: Chatbot) -> str | None:
    """A ≤ 5-word title from the chat model, recorded as an LLMCall (purpose "labeling")."""
    import openai

    from apps.conversations.choices import CallPurpose
    from apps.conversations.models import LLMCall
    from apps.ingest.pricing import cost_for

    from .embeddings import _openai_client

    prompt = "Keywords: " + ", ".join(keywords) + "\nExample user messages:\n" + "\n".join(f"- {e}" for e in examples)
    call = LLMCall(chatbot=chatbot, purpose=CallPurpose.LABELING, function_name="clustering.title",
                   provider="openai", model=model, input_text=prompt[:4000])
    began = time.monotonic()
    try:
        response = _openai_client().chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": _TITLE_PROMPT}, {"role": "user", "content": prompt}],
            max_tokens=20,
            temperature=0,
        )
        content = (response.choices[0].message.content or "") if response.choices else ""
    except openai.OpenAIError as exc:
        call.success = False
        call.error = f"{type(exc).__name__}: {exc}"[:2000]
        call.duration_ms = int((time.monotonic() - began) * 1000)
        call.save()
        return None
    usage = getattr(response, "usage", None)
    call.input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    call.output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    call.cost_usd = cost_for(model, call.input_tokens, call.output_tokens)
    call.output_text = content[:2000]
    call.duration_ms = int((time.monotonic() - began) * 1000)
    title = _clean_title(content)
    call.success = bool(title)
    if not title:
        call.error = "empty title"
    call.save()
    return title


def _clean_title(content: str) -> str:
    line = next((line for line in content.strip().splitlines() if line.strip()), "")
    line = line.strip().strip("\"'`*#").removeprefix("Title:").strip().rstrip(".!")
    return " ".join(line.split()[:5])[:200]


# --- export --------------------------------------------------------------------------------
def cluster_finetune_jsonl(*, clusters: list[Cluster], actor: Any, system_prompt: str | None = None) -> tuple[str, int, int]:
    """OpenAI chat fine-tuning lines (system, user, assistant) for the clusters' turns.

    The assistant message is the bot's answer as it was, for a human to correct before
    training. Turns without an answer are left out (the format needs an assistant message).
    Each exported cluster is audit-logged with counts only.
    Returns (jsonl, lines written, turns skipped).
    """
    prompt = settings.FINETUNE_EXPORT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    lines: list[str] = []
    skipped = 0
    for cluster in clusters:
        written = 0
        rows = (
            ClusterMember.objects.filter(cluster=cluster)
            .order_by("distance", "id")
            .values_list("turn__user_message", "turn__bot_response")
        )
        for user_message, bot_response in rows.iterator(chunk_size=2000):
            if not bot_response.strip() or not user_message.strip():
                skipped += 1
                continue
            messages = ([{"role": "system", "content": prompt}] if prompt else []) + [
                {"role": "user", "content": user_message},
                {"role": "assistant", "content": bot_response},
            ]
            lines.append(json.dumps({"messages": messages}, ensure_ascii=False))
            written += 1
        audit_event_record(
            action="cluster.export_finetune_jsonl", actor=actor, target=cluster, chatbot=cluster.run.chatbot,
            data={"run": cluster.run_id, "cluster": cluster.pk, "lines": written},
        )
    return ("\n".join(lines) + "\n") if lines else "", len(lines), skipped
