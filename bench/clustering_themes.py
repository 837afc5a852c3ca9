"""Failure-theme quality: clustering NMI on CLINC150 per embedding backend, k not given, with the
near-duplicate merge on and off, over one source and over mixed failure sources.

    .venv/bin/python bench/clustering_themes.py [--limit 4500]

1. "k not given": the CLINC150 test utterances (150 intents), clustered as a run clusters them
   (ward + BIC/silhouette, clusters under 3 → "other"), merge off and at the backend's default.
2. "mixed sources": the same utterances dealt to three failure sources by intent (thumbs-down,
   fallback, error: 50 intents each) plus the out-of-scope test utterances as fallbacks (one
   label, "oos"), all in one run — what a run over every signal sees. NMI against the intents.
3. Backends: tfidf always; local when sentence-transformers is installed; openai with a key;
   `static` when the tokenlearn-static-model package is installed (a torch-free candidate for
   the offline default: 10k-token vocabulary, 64-dim int8 Model2Vec-style vectors in the wheel).
Prints NMI, clusters found, CPU seconds (process time) for embedding and clustering, and CPU
seconds per 1,000 utterances.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatmon.settings")
SHARED = ROOT.parent / "shared" / "data"

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from sklearn.metrics import normalized_mutual_info_score  # noqa: E402

from apps.clustering.algorithm import partition_vectors  # noqa: E402
from apps.clustering.embeddings import embedding_backend_for, local_embeddings_available  # noqa: E402


def static_embed(texts: list[str]) -> np.ndarray:
    from static_model import get_embeddings

    vectors = np.asarray(get_embeddings(texts), dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def embedders() -> dict[str, tuple[object, float]]:
    found: dict[str, tuple[object, float]] = {}
    for name in ["tfidf"] + (["local"] if local_embeddings_available() else []) + (
        ["openai"] if os.environ.get("OPENAI_API_KEY") else []
    ):
        backend = embedding_backend_for(name=name)
        found[name] = (backend.embed, backend.merge_similarity)
    try:
        import static_model  # noqa: F401

        found["static"] = (static_embed, 0.85)
    except ImportError:
        pass
    return found


def measure(name: str, embed, merge: float, texts: list[str], labels: list[str], scenario: str) -> None:
    began = time.process_time()
    vectors = embed(texts)
    embedded = time.process_time()
    for merge_similarity in (None, merge):
        start = time.process_time()
        partition = partition_vectors(vectors, min_cluster_size=3, merge_similarity=merge_similarity)
        clustered = time.process_time() - start
        nmi = normalized_mutual_info_score(labels, partition.labels)
        cpu = (embedded - began) + clustered
        print(f"{scenario:14} {name:7} {'off' if merge_similarity is None else merge_similarity:>6} "
              f"{nmi:6.3f} {partition.cluster_count:8d} {embedded - began:8.1f} {clustered:9.1f} "
              f"{1000 * cpu / len(texts):10.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=4500, help="CLINC150 test utterances to use")
    args = parser.parse_args()
    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text())
    test = data["test"][: args.limit]
    intents = sorted({intent for _, intent in test})
    source_of = {intent: ("thumbs_down", "fallback", "error")[i % 3] for i, intent in enumerate(intents)}
    oos = data["oos_test"][: max(1, args.limit // 9)]
    mixed = [(text, intent) for text, intent in test] + [(text, "oos") for text, _ in oos]
    by_source = {s: sum(source_of[i] == s for _, i in test) for s in ("thumbs_down", "fallback", "error")}
    print(f"CLINC150 test: {len(test)} utterances, {len(intents)} intents; mixed: {by_source} + {len(oos)} oos")
    print(f"{'scenario':14} {'backend':7} {'merge':>6} {'NMI':>6} {'clusters':>8} {'embed s':>8} {'cluster s':>9} "
          f"{'CPU s/1k':>10}")
    for name, (embed, merge) in embedders().items():
        measure(name, embed, merge, [t for t, _ in test], [i for _, i in test], "k not given")
        measure(name, embed, merge, [t for t, _ in mixed], [i for _, i in mixed], "mixed sources")


if __name__ == "__main__":
    main()
