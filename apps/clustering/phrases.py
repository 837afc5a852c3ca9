"""Offline cluster titles: the most representative phrase of the members' user messages.

A keyword list ("refund order, order refund") names words, not a theme. A title here is one
span of words that users actually wrote, chosen per cluster:

1. Candidates: every run of 1–5 consecutive words (at most 4 content words) of a member message that starts and ends with
   a content word (not a stop word) and holds no word twice by stem ("refund refunds" is out);
   inside, only the few linking words of a noun phrase are allowed ("window *for* sale items").
2. Score: c-TF-IDF over spans (the share of the cluster's messages that contain the span,
   times how rare it is in the other clusters), times a bonus for each extra content word,
   so "refund window" beats "refund" when most messages say it.
3. A span must occur in at least two messages (or the whole cluster when it has one); the best
   one is the title, title-cased. When the best is one word, a longer span holding it that
   EXTEND_SHARE of its mentions say takes its place; still one word, it gets the best next
   span that shares no stem with it ("Refund · Broken Order").
4. Titles stay distinct within a run: a cluster whose best phrase another cluster already has
   takes its next best (clusters are titled largest first).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from .algorithm import NOISE, _words

MAX_SPAN_WORDS = 5  # linking words included; at most MAX_CONTENT_WORDS content words
MAX_CONTENT_WORDS = 4
# A longer phrase holding the best single word replaces it when this share of its mentions say it.
EXTEND_SHARE = 0.4
# Words that may sit inside a noun-phrase-like span, never at its ends.
LINKING_WORDS = frozenset({"for", "of", "on", "to", "with", "in", "after", "from", "about", "at", "by"})
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | {"please", "hi", "hello", "thanks", "thank", "want", "need", "just",
                                              "ok", "okay", "yes", "does", "did", "don't", "can't", "i'm", "it's"}
SMALL_WORDS = frozenset({"for", "of", "on", "to", "with", "in", "at", "by", "from", "a", "an", "the", "and", "or"})


def stem(word: str) -> str:
    """A crude English stem, enough to tell "refund" and "refunds"/"refunded" are one word."""
    word = word.lower().strip("'-")
    for suffix in ("ingly", "edly", "ings", "ing", "ies", "ied", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                word += "y"
            break
    return word


def _spans(words: list[str]) -> set[tuple[str, ...]]:
    lowered = [w.lower() for w in words]
    found: set[tuple[str, ...]] = set()
    for start in range(len(lowered)):
        if lowered[start] in STOP_WORDS or not lowered[start][0].isalpha():
            continue
        for end in range(start + 1, min(start + MAX_SPAN_WORDS, len(lowered)) + 1):
            span = lowered[start:end]
            last = span[-1]
            inner_ok = all(w not in STOP_WORDS or w in LINKING_WORDS for w in span[1:-1])
            if not inner_ok:
                break
            if last in STOP_WORDS:
                continue
            content = [stem(w) for w in span if w not in STOP_WORDS]
            if len(set(content)) != len(content) or len(content) > MAX_CONTENT_WORDS:
                continue
            found.add(tuple(span))
    return found


def _content_stems(span: tuple[str, ...]) -> set[str]:
    return {stem(w) for w in span if w not in STOP_WORDS}


def title_case(span: tuple[str, ...]) -> str:
    return " ".join(
        w if i and w in SMALL_WORDS else (w[:1].upper() + w[1:]) for i, w in enumerate(span)
    )


def phrase_titles(texts: list[str], labels: np.ndarray, *, order: list[int] | None = None) -> dict[int, str]:
    """A title per non-noise label from the member texts (see the module docstring)."""
    cluster_ids = [int(c) for c in (order or sorted({int(x) for x in labels})) if int(c) != NOISE]
    if not cluster_ids:
        return {}
    per_cluster: dict[int, Counter] = {}
    sizes: dict[int, int] = {}
    for cid in cluster_ids:
        counter: Counter = Counter()
        rows = np.flatnonzero(labels == cid)
        for row in rows:
            counter.update(_spans(_words(texts[row])))
        per_cluster[cid] = counter
        sizes[cid] = len(rows)
    clusters_with: Counter = Counter()
    for counter in per_cluster.values():
        clusters_with.update(counter.keys())
    total = len(cluster_ids)

    titles: dict[int, str] = {}
    used: set[str] = set()
    for cid in cluster_ids:
        counter, size = per_cluster[cid], sizes[cid]
        floor = 1 if size == 1 else 2
        scored = []
        for span, count in counter.items():
            if count < floor:
                continue
            content = len(_content_stems(span))
            score = (count / size) * math.log1p(total / clusters_with[span]) * (1 + 0.6 * (content - 1))
            scored.append((-score, -len(span), span))
        scored.sort()
        ranked = [span for _, _, span in scored]
        title = ""
        for position, best in enumerate(ranked):
            if len(_content_stems(best)) == 1:
                # A phrase around the word, said by enough members, reads better than the word.
                longer = next(
                    (other for other in ranked if len(_content_stems(other)) > 1
                     and _content_stems(best) <= _content_stems(other)
                     and counter[other] >= EXTEND_SHARE * counter[best]),
                    None,
                )
                best = longer or best
            candidate = title_case(best)
            if len(_content_stems(best)) == 1:
                second = next(
                    (other for other in ranked[position + 1 :] if not _content_stems(other) & _content_stems(best)),
                    None,
                )
                if second is not None:
                    candidate = f"{candidate} · {title_case(second)}"
            if candidate.lower() not in used:
                title = candidate
                break
        titles[cid] = title or "(no common phrase)"
        used.add(titles[cid].lower())
    return titles
