"""The flood path of redact() (issue 15 #1): past flood_limit() candidates of one alternative,
redaction skips the checks and takes runs of candidates in one RE2 call. It may redact more
than the exact path, never less, and below the limit it is the exact path.

The tests call _redact() with a tiny limit, so short random texts exercise the flood path from
their first candidates, and compare it with the exact path (limit inf) span by span.
"""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.privacy import redaction as r
from tests.privacy.test_redaction_differential import SEPARATORS, pieces

EXACT = math.inf
RUN_SEPARATORS = " \t\n,;@-"

# Candidates that come in floods (the bench's densest texts and their near-misses), and the
# characters that separate (or glue) them.
FLOODERS = [
    "1::1", "2001:db8:85a3::8a", "2001:db8:8", "2001:db8:85a", "::ffff:1.2.3.4", "1.2.3.4", "1:2", "a::1", "fe80::",
    "+111", "+44 (20) 7946-0958", "+1 1.2.3.4", "0049 30 1234567", "0049 30", "4111 1111 1111 1111",
    "4111 1111 1111 1112", '"api_key: "hunter2', "api_key: -", "pwd=abcdef", "a@b.io", "GB82 WEST 1234 5698 7654 32",
]
FLOOD_SEPARATORS = [" ", "\t", "\n", ",", ";", "@", "-", "", ".", ":", "x", "(", ")", "+", "/", "_", "é", "\u00a0"]


@st.composite
def flood_texts(draw) -> str:
    """Random pieces around a run of one flooder, the run's separators drawn per gap."""
    head = "".join(draw(st.lists(pieces(), max_size=3)))
    tail = "".join(draw(st.lists(pieces(), max_size=3)))
    unit = draw(st.sampled_from(FLOODERS))
    count = draw(st.integers(1, 8))
    gaps = draw(st.lists(st.sampled_from(FLOOD_SEPARATORS), min_size=count, max_size=count))
    middle = "".join(gap + unit for gap in gaps)
    return head + draw(st.sampled_from(SEPARATORS)) + middle + draw(st.sampled_from(SEPARATORS)) + tail


def redacted_mask(text: str, limit: float, runs: bool = True) -> tuple[list[bool], str, dict]:
    """Which characters of `text` the redactor replaced (with `limit`), its output and counts."""
    spans: list[tuple[int, int]] = []
    out, counts = r._redact(text, limit, spans, runs=runs)
    mask = [False] * len(text)
    for start, end in spans:
        for i in range(start, end):
            mask[i] = True
    return mask, out, counts


def assert_flood_covers_exact(text: str, limit: int) -> None:
    exact, exact_out, exact_counts = redacted_mask(text, EXACT)
    flood, flood_out, flood_counts = redacted_mask(text, limit)
    # The runs take exactly the candidates the loop would take one by one (and the separators
    # between them, which the run's placeholders replace with spaces).
    single, single_out, single_counts = redacted_mask(text, limit, runs=False)
    assert flood_counts == single_counts, (text, limit, flood_out, single_out)
    assert all(flood[i] if single[i] else not flood[i] or text[i] in RUN_SEPARATORS for i in range(len(text))), (
        text, limit, flood_out, single_out)
    left = [i for i in range(len(text)) if exact[i] and not flood[i]]
    assert not left, (text, limit, exact_out, flood_out, "".join(text[i] for i in left))
    for kind, n in exact_counts.items():  # counts of a flooded kind are an upper bound
        # A card-shaped number failing Luhn is a phone on the flood path: CARD + PHONE together.
        if kind in (r.CARD, r.PHONE):
            assert flood_counts.get(r.CARD, 0) + flood_counts.get(r.PHONE, 0) >= exact_counts.get(r.CARD, 0) + exact_counts.get(r.PHONE, 0)
        else:
            assert flood_counts.get(kind, 0) >= n, (text, kind, exact_counts, flood_counts)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(flood_texts(), st.integers(0, 3))
def test_the_flood_path_replaces_everything_the_exact_path_replaces(text, limit):
    assert_flood_covers_exact(text, limit)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.lists(pieces(), min_size=1, max_size=12).map("".join), st.integers(0, 2))
def test_the_flood_path_covers_the_exact_path_on_mixed_texts(text, limit):
    assert_flood_covers_exact(text, limit)


def test_fixed_floods_at_and_before_the_end_of_the_text():
    for unit in FLOODERS:
        for gap in (" ", "@", "-", "\n", "", ".", "/", "x"):
            for tail in ("", " ", ".", ")", "x", ":", " a@b.io", " 4111 1111 1111 1111", " sk-proj-4fG7hJ9kL2mN5pQ8rS1tU3vW6x"):
                for limit in (0, 1, 3):
                    assert_flood_covers_exact((gap + unit) * 6 + tail, limit)
                    assert_flood_covers_exact((" " + unit + gap + unit) * 3 + tail, limit)  # runs that break


def test_a_run_stops_where_an_earlier_alternative_would_match():
    # "1.2.3.4:5" is an IPv6 body, but the loop takes the IPv4 address first; then a card that
    # begins inside the IPv6 body: "5 4111…" passes Luhn, "4111…" alone does not.
    card = next(f"4111 1111 1111 111{d}" for d in "0123456789" if r.luhn_valid(f"5411111111111111{d}"))
    assert not r.luhn_valid(card.replace(" ", ""))
    text = f"1::1 1::1 1::1 1.2.3.4:5 {card}"
    assert "4111" not in r._redact(text, EXACT)[0]
    assert_flood_covers_exact(text, 1)  # IPv6 floods, cards do not
    assert_flood_covers_exact("1::1 1::1 :1 1:2 a@b.io::1 GB82:1 AB12 3456 7890:1 fe80::1", 0)


def test_below_the_limit_the_output_is_the_exact_path():
    from tests.privacy.test_redaction import corpus_rows

    most = 0
    for row in corpus_rows():
        seen: dict[str, int] = {}
        assert r.redact(row["text"]) == r._redact(row["text"], EXACT, seen=seen)
        most = max([most, *seen.values()])
    # The corpus holds a handful of candidates per string: far from the limit.
    assert most * 10 < r.flood_limit(0)
    text = " ".join(["2001:db8::1 +44 20 7946 0958 4111 1111 1111 1112"] * 80)  # 80 of each: exact
    assert r.redact(text) == r._redact(text, EXACT)


def test_the_densest_floods_are_redacted_and_counted():
    ips = ("1::1 " * 6400)[:32_000]
    out, counts = r.redact(ips)
    assert out == "[IP] " * 6400 and counts == {r.IP: 6400}
    phones = ("+111 " * 6400)[:32_000]  # failing +CC phones: all redacted once the text floods
    out, counts = r.redact(phones)
    assert out.startswith("+111 " * 256) and "+111" not in out[5 * 256:] and counts == {r.PHONE: 6400 - 256}
    # PII after a flood is still found, with its own check.
    out, counts = r.redact(ips + " mail jane@example.com, card 4111 1111 1111 1111, 4111 1111 1111 1112")
    assert out.endswith(" mail [EMAIL], card [CARD], 4111 1111 1111 1112") and counts[r.IP] == 6400


def test_the_limit_scales_with_the_text():
    assert r.flood_limit(10) == r.flood_limit(32_000) == 256
    assert r.flood_limit(64_000) == 512
