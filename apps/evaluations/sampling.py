import hashlib


def turn_is_sampled(*, chatbot_id: int, turn_key: str, sample_rate: float) -> bool:
    """Deterministic sampling: the same turn always gets the same answer for a given rate.

    The key is hashed with the chatbot id into [0, 1); a turn is sampled when it falls below the
    rate, so raising the rate only ever adds turns to the sample.
    """
    if sample_rate >= 1.0:
        return True
    if sample_rate <= 0.0:
        return False
    digest = hashlib.sha256(f"{chatbot_id}:{turn_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < sample_rate


# Conversation sampling is computed from the id alone, the same way in SQL (the idle sweep's
# query, apps.evaluations.selectors) and in Python (the `end` event): a multiplicative hash
# (Knuth) of the id into [0, SAMPLE_BUCKETS).
SAMPLE_MULTIPLIER = 2654435761
SAMPLE_BUCKETS = 1_000_000


def conversation_sample_bucket(conversation_id: int) -> int:
    return (conversation_id * SAMPLE_MULTIPLIER) % SAMPLE_BUCKETS


def conversation_is_sampled(*, conversation_id: int, sample_rate: float) -> bool:
    if sample_rate >= 1.0:
        return True
    if sample_rate <= 0.0:
        return False
    return conversation_sample_bucket(conversation_id) < sample_rate * SAMPLE_BUCKETS
