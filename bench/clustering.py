"""Thumbs-down clustering benchmark: quality on CLINC150 and end-to-end time of a 10,000-turn run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chatmon_clustering \
        .venv/bin/python bench/clustering.py [--skip-e2e] [--e2e-turns 10000]

1. For each available backend (tfidf always; local when sentence-transformers is installed;
   openai when OPENAI_API_KEY is set): embed the 4,500 CLINC150 test utterances, cluster them
   without the number of intents, print NMI / ARI / V-measure, clusters found, noise share and
   seconds for embedding and clustering.
2. ConvAI2 thumbs-down turns: user message vs user message + bot answer (no labels there, so
   the silhouette of each partition and the clusters found are printed for comparison).
3. End to end through the database: 10,000 thumbs-down turns of a throwaway chatbot, one run
   with the offline backend (tfidf), timings per phase; the chatbot is deleted afterwards.
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
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
SHARED = ROOT.parent / "shared" / "data"

import django  # noqa: E402

django.setup()

from sklearn.metrics import (  # noqa: E402
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
    v_measure_score,
)

from apps.clustering.algorithm import NOISE, partition_vectors  # noqa: E402
from apps.clustering.embeddings import embedding_backend_for, local_embeddings_available  # noqa: E402


def backends() -> list[str]:
    names = ["tfidf"]
    if local_embeddings_available():
        names.append("local")
    if os.environ.get("OPENAI_API_KEY"):
        names.append("openai")
    return names


def clinc(names: list[str]) -> None:
    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text())["test"]
    texts = [text for text, _ in data]
    intents = [intent for _, intent in data]
    print(f"CLINC150 test: {len(texts)} utterances, {len(set(intents))} intents (k not given)")
    print(f"{'backend':8} {'NMI':>6} {'ARI':>6} {'V':>6} {'clusters':>8} {'noise':>6} {'embed s':>8} {'cluster s':>9}")
    for name in names:
        backend = embedding_backend_for(name=name)
        began = time.perf_counter()
        vectors = backend.embed(texts)
        embed_seconds = time.perf_counter() - began
        began = time.perf_counter()
        partition = partition_vectors(vectors, min_cluster_size=3)
        cluster_seconds = time.perf_counter() - began
        labels = partition.labels  # the "other" bucket counts as one more cluster
        print(
            f"{name:8} {normalized_mutual_info_score(intents, labels):6.3f} {adjusted_rand_score(intents, labels):6.3f} "
            f"{v_measure_score(intents, labels):6.3f} {partition.cluster_count:8d} "
            f"{partition.noise_count / len(texts):6.1%} {embed_seconds:8.1f} {cluster_seconds:9.1f}"
        )


def convai2(names: list[str]) -> None:
    dialogues = json.loads((SHARED / "convai2" / "data_volunteers.json").read_text())
    dialogues += json.loads((SHARED / "convai2" / "data_intermediate.json").read_text())
    pairs: list[tuple[str, str]] = []
    for dialogue in dialogues:
        messages = dialogue.get("dialog", [])
        for human, bot in zip(messages, messages[1:], strict=False):
            if human.get("sender_class") == "Human" and bot.get("sender_class") == "Bot" and bot.get("evaluation_score") == 0:
                pairs.append((human["text"], bot["text"]))
    print(f"\nConvAI2 thumbs-down turns: {len(pairs)} (no topic labels: silhouette of each partition)")
    for name in names:
        for mode in ("user", "user_bot"):
            texts = [u if mode == "user" else f"{u}\n{b}" for u, b in pairs]
            vectors = embedding_backend_for(name=name).embed(texts)
            partition = partition_vectors(vectors, min_cluster_size=3)
            kept = partition.labels != NOISE
            score = silhouette_score(vectors[kept], partition.labels[kept], metric="cosine") if partition.cluster_count > 1 else float("nan")
            print(f"  {name:6} {mode:9} clusters {partition.cluster_count:4d}  noise {partition.noise_count / len(texts):6.1%}  silhouette {score:.3f}")


def end_to_end(turn_count: int) -> None:
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from apps.chatbots.models import Chatbot
    from apps.clustering.execution import cluster_run_execute
    from apps.clustering.runs import cluster_run_create
    from apps.conversations.models import Conversation, Turn

    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text())
    texts = [text for text, _ in data["train"] + data["val"]]
    chatbot = Chatbot.objects.create(name="bench clustering", slug=f"bench-clustering-{os.getpid()}")
    try:
        now = timezone.now()
        conversations = Conversation.objects.bulk_create(
            [Conversation(chatbot=chatbot, external_id=f"c{i}") for i in range(turn_count // 10)]
        )
        Turn.objects.bulk_create(
            [
                Turn(conversation=conversations[i // 10], chatbot=chatbot, sequence=i % 10, user_message=texts[i % len(texts)],
                     bot_response="Sorry, I did not get that.", thumbs_down=1, timestamp=now - timedelta(minutes=i))
                for i in range(turn_count)
            ],
            batch_size=2000,
        )
        settings.CLUSTERING_MAX_TURNS = max(settings.CLUSTERING_MAX_TURNS, turn_count)
        began = time.perf_counter()
        run = cluster_run_create(chatbot=chatbot, days=30, backend="tfidf")
        run = cluster_run_execute(run_id=run.pk)
        seconds = time.perf_counter() - began
        print(f"\nEnd to end, {turn_count} thumbs-down turns in {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
              f"backend tfidf: {seconds:.1f} s; status {run.status}; {run.cluster_count} clusters, "
              f"{run.noise_count} in other; phases {run.timings}")
    finally:
        chatbot.delete()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--skip-convai2", action="store_true")
    parser.add_argument("--e2e-turns", type=int, default=10000)
    args = parser.parse_args()
    names = backends()
    clinc(names)
    if not args.skip_convai2:
        convai2(names)
    if not args.skip_e2e:
        end_to_end(args.e2e_turns)


if __name__ == "__main__":
    main()
