"""The embedding cache: vectors per (turn, embedder), reused while the embedded text is unchanged."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from apps.conversations.models import Turn

from .choices import TextMode
from .embeddings import EmbeddingBackend, EmbeddingError
from .models import TurnEmbedding

# Rows per query when reading or writing cached vectors (well under SQLite's variable limit).
_CACHE_CHUNK = 2000
# Texts per embedding round; vectors are stored after each, so a failed run keeps its progress.
_EMBED_CHUNK = 1024


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
