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
