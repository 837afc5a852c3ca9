"""Clustering without a given number of clusters, and c-TF-IDF keywords. Pure numpy/scikit-learn.

Chosen by measurement on CLINC150 (docs/BENCHMARKS.md): ward linkage over the normalised
embeddings, cut where the Bayesian information criterion of a spherical Gaussian mixture
(X-means style) is highest. Silhouette and Calinski-Harabasz keep rising or falling with k on
real sentence embeddings and HDBSCAN leaves a large noise share; BIC picks k from how much a
split explains against how many points support it, so a theme needs enough turns to count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from apps.core.regex import (
    SHADOW_ALNUM,
    SHADOW_LETTER,
    SHADOW_WORD,
    char_classes,
    regex_compile,
    search_spans,
)

NOISE = -1
# Below this many rows BIC lacks the statistical power to split (it answers k=1 on 24 short
# TF-IDF texts in three obvious themes); the silhouette decides there instead.
SMALL_INPUT = 400
SILHOUETTE_FLOOR = 0.02
# The silhouette only looks at this many cuts (it is O(k·n²) and small inputs have few themes).
SILHOUETTE_MAX_K = 40


@dataclass
class Partition:
    labels: np.ndarray  # one per input row; NOISE for the "other" bucket
    distances: np.ndarray  # cosine distance of each row to its cluster's centre
    clusters_in_cut: int  # clusters the tree was cut into, before small ones went to "other"
    parameters: dict = field(default_factory=dict)

    @property
    def cluster_count(self) -> int:
        return len({int(label) for label in self.labels if label != NOISE})

    @property
    def noise_count(self) -> int:
        return int(np.sum(self.labels == NOISE))


def _bic_best_k(vectors: np.ndarray, tree: np.ndarray, k_max: int) -> int:
    """The k whose ward cut maximises BIC = log-likelihood − (k·(d+1)/2)·log n.

    Ward's merge height h is sqrt(2·ΔSSE), so the within-cluster sum of squares of every cut
    follows from the tree in O(n) without recomputing a partition per k.
    """
    n, dims = vectors.shape
    merge_costs = tree[:, 2] ** 2 / 2.0
    sse_after_merges = np.cumsum(merge_costs)  # index j: SSE with n - (j + 1) clusters
    ks = np.arange(1, min(k_max, n - 1) + 1)
    sse = np.maximum(sse_after_merges[n - ks - 1], 1e-12)
    bic = -n * dims / 2.0 * np.log(sse / (n * dims)) - ks * (dims + 1) / 2.0 * np.log(n)
    return int(ks[int(np.argmax(bic))])


def _silhouette_best_k(vectors: np.ndarray, tree: np.ndarray, k_max: int) -> int:
    """The k in [2, k_max] whose ward cut has the highest mean cosine silhouette; 1 when no cut
    shows structure (best silhouette below SILHOUETTE_FLOOR)."""
    from sklearn.metrics import pairwise_distances, silhouette_score

    distances = pairwise_distances(vectors, metric="cosine")
    best_k, best_score = 1, SILHOUETTE_FLOOR
    for k in range(2, k_max + 1):
        labels = fcluster(tree, k, criterion="maxclust")
        if len(np.unique(labels)) < 2:
            continue
        score = silhouette_score(distances, labels, metric="precomputed")
        if score > best_score + 1e-9:
            best_k, best_score = k, score
    return best_k


def centres(vectors: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """The L2-normalised mean of each label's rows (the noise label included if present)."""
    result = {}
    for label in np.unique(labels):
        centre = vectors[labels == label].mean(axis=0)
        norm = np.linalg.norm(centre)
        result[int(label)] = centre / norm if norm else centre
    return result


def near_duplicates_merge(vectors: np.ndarray, labels: np.ndarray, *, similarity: float) -> tuple[np.ndarray, int]:
    """Merge clusters whose centres have a cosine similarity of at least `similarity`.

    1. Centres of every cluster.
    2. The most similar pair at or above the threshold becomes one cluster (the smaller label
       takes the larger's rows); its centre is recomputed from the merged rows.
    3. Repeat until no pair is that similar. Returns the labels and the number of merges.
    A ward cut splits a dense theme when its wordings differ (three "refund" clusters from
    36 turns in the demo); centres that close are one theme to a reader.
    """
    labels = labels.copy()
    merges = 0
    found = centres(vectors, labels)
    while len(found) > 1:
        ids = sorted(found)
        matrix = np.vstack([found[i] for i in ids])
        similarities = matrix @ matrix.T
        np.fill_diagonal(similarities, -np.inf)
        a, b = np.unravel_index(int(np.argmax(similarities)), similarities.shape)
        if similarities[a, b] < similarity:
            break
        keep, gone = ids[min(a, b)], ids[max(a, b)]
        labels[labels == gone] = keep
        del found[gone]
        found[keep] = centres(vectors[labels == keep], np.zeros(int(np.sum(labels == keep)), dtype=int))[0]
        merges += 1
    return labels, merges


def partition_vectors(
    vectors: np.ndarray, *, min_cluster_size: int = 3, max_clusters: int | None = None,
    merge_similarity: float | None = None,
) -> Partition:
    """Cluster normalised row vectors; deterministic for the same rows in the same order.

    1. Ward linkage over the rows (scipy's nearest-neighbour chain: exact, deterministic).
    2. Pick k among cuts with at most n / min_cluster_size clusters: by BIC, or by the
       silhouette for inputs under SMALL_INPUT rows.
    3. With `merge_similarity`, clusters whose centres are that similar are merged
       (near_duplicates_merge).
    4. Number clusters by size (largest first, ties by first row) so labels are stable.
    5. Clusters smaller than min_cluster_size go to the "other" bucket.
    6. Distances to the (normalised) centre, for representatives and ordering.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    min_cluster_size = max(1, min_cluster_size)
    params: dict = {"algorithm": "ward", "min_cluster_size": min_cluster_size}
    if n == 0:
        return Partition(np.zeros(0, dtype=int), np.zeros(0), 0, params)
    if n < 2 or not np.any(vectors.std(axis=0) > 0):
        raw = np.ones(n, dtype=int)  # nothing to split: one cluster
        k = 1
    else:
        tree = linkage(vectors, method="ward")
        k_max = max(1, n // min_cluster_size)
        if max_clusters:
            k_max = min(k_max, max_clusters)
        if n < SMALL_INPUT:
            k = _silhouette_best_k(vectors, tree, min(k_max, SILHOUETTE_MAX_K))
            params["k_criterion"] = "silhouette"
        else:
            k = _bic_best_k(vectors, tree, k_max)
            params["k_criterion"] = "bic"
        raw = fcluster(tree, k, criterion="maxclust")
    params["k_chosen"] = int(k)
    if merge_similarity is not None and k > 1:
        raw, merges = near_duplicates_merge(vectors, raw, similarity=merge_similarity)
        params["merge_similarity"] = merge_similarity
        params["near_duplicates_merged"] = merges

    sizes = np.bincount(raw)
    first_row = {int(label): int(np.argmax(raw == label)) for label in np.unique(raw)}
    order = sorted(first_row, key=lambda label: (-sizes[label], first_row[label]))
    labels = np.full(n, NOISE, dtype=int)
    next_index = 0
    for label in order:
        if sizes[label] >= min_cluster_size:
            labels[raw == label] = next_index
            next_index += 1

    distances = np.zeros(n)
    for label, centre in centres(vectors, labels).items():
        members = labels == label
        row_norms = np.linalg.norm(vectors[members], axis=1)
        row_norms[row_norms == 0] = 1.0
        distances[members] = 1.0 - (vectors[members] @ centre) / row_norms
    return Partition(labels, np.clip(distances, 0.0, 2.0), int(k), params)


# A word: a letter, then word characters, ' or -, ending in a letter or digit — what
# `\b[^\W\d_][\w'-]*[^\W_]\b|\b[^\W\d_]\b` found with `re`, which took quadratic time on runs
# like "a_'a_'a_'…". RE2 on char_classes(), the \b as the consumed neighbours (see redaction).
_TOKEN = regex_compile(
    rf"[^{SHADOW_WORD}]([{SHADOW_LETTER}](?:[{SHADOW_WORD}'\-]*[{SHADOW_ALNUM}])?)(?:\z|[^{SHADOW_WORD}])",
    latin1=True,
)


def _words(text: str) -> list[str]:
    classes = char_classes("\n" + text)  # offsets in `classes` are the text's plus one
    words, position = [], 0
    while (spans := search_spans(_TOKEN, classes, position)) is not None:
        start, end = spans[1]
        words.append(text[start - 1 : end - 1])
        position = end - 1  # the word's last character may be the next word's neighbour
    return words


def cluster_keywords(texts: list[str], labels: np.ndarray, *, top: int = 8) -> dict[int, list[str]]:
    """c-TF-IDF (BERTopic): each cluster is one document; weight = tf · log(1 + A / f).

    tf is a term's frequency within the cluster (normalised by the cluster's length), f its
    frequency over all clusters, A the average number of words per cluster. Terms frequent in
    one cluster and rare elsewhere rank first. Single words and word pairs, English stop words
    dropped; a pair ranks only when it appears at least twice in the cluster.
    """
    if not texts:
        return {}
    cluster_ids = sorted({int(label) for label in labels})
    documents = [" ".join(texts[i] for i in np.flatnonzero(labels == cid)) for cid in cluster_ids]
    vectorizer = CountVectorizer(
        ngram_range=(1, 2), stop_words=list(ENGLISH_STOP_WORDS), lowercase=True, tokenizer=_words,
        token_pattern=None
    )
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # only stop words
        return {cid: [] for cid in cluster_ids}
    terms = vectorizer.get_feature_names_out()
    is_pair = np.array([" " in term for term in terms])
    words_per_cluster = counts[:, ~is_pair].sum(axis=1)
    average_words = max(words_per_cluster.mean(), 1.0)
    frequency = counts.sum(axis=0)
    tf = counts / np.maximum(words_per_cluster, 1.0)[:, None]
    weights = tf * np.log1p(average_words / np.maximum(frequency, 1.0))
    weights[:, is_pair] *= (counts[:, is_pair] >= 2)
    result: dict[int, list[str]] = {}
    for row, cid in enumerate(cluster_ids):
        ranked = np.lexsort((terms, -weights[row]))  # weight, then alphabetical: deterministic
        chosen: list[str] = []
        for column in ranked:
            if weights[row, column] <= 0 or len(chosen) >= top:
                break
            term = str(terms[column])
            # A pair makes its single words redundant and the other way round.
            if any(term in kept.split(" ") or kept in term.split(" ") for kept in chosen):
                continue
            chosen.append(term)
        result[cid] = chosen
    return result


def keyword_title(keywords: list[str], *, max_words: int = 5) -> str:
    """A title from the top three keywords, at most `max_words` words."""
    chosen: list[str] = []
    count = 0
    for keyword in keywords[:3]:
        size = len(keyword.split())
        if count + size > max_words:
            break
        chosen.append(keyword)
        count += size
    return ", ".join(chosen) or "(no keywords)"
