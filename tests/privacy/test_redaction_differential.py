"""redact() against a reference: the single capturing pattern it replaced (issue 15 #1).

redact() finds matches with a group-free pattern and then tells which alternative matched and
where its body ends from the first body byte, the body's characters and the after's shape, and
checks cards, phones and IPv6 on bytes. The reference below is the plain form of the same
design: one RE2 pattern with an end-marker group per alternative (RE2 reports both directly),
and the checks as they were (ipaddress, str digit counts). Both are built from the same
_ALTERNATIVES, so any disagreement is in the shortcuts. A 200,000-text run of this comparison
against the previous module found no difference; this keeps a bounded one in the suite.
"""

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.regex import char_classes, regex_compile, search_spans
from apps.privacy import redaction as r


def _reference_patterns() -> dict:
    patterns = {}
    for families in r._PATTERNS:
        if not families:
            continue
        parts, kinds = [], {}
        for name, family, before, _starts, body, after in r._ALTERNATIVES:
            if family in families:
                prefix = r"(?s:.)" if before is None else f"[^{before}]"
                parts.append(f"{prefix}{body}()" + after)
                kinds[len(parts)] = name
        patterns[families] = (regex_compile("|".join(parts), latin1=True), kinds)
    return patterns


_REFERENCE = _reference_patterns()
_PHONE = regex_compile("|".join(f"(?:{body})" for name, _, _, _, body, _ in r._ALTERNATIVES if name == "PHONE"))


def _phone_ok(value: str) -> bool:
    digits = sum(c.isdigit() for c in value) - (2 if value.startswith("00") else 0)
    return 7 <= digits <= 15


def _ipv6_ok(value: str) -> bool:
    if not any(c.isdigit() for c in value) or ("::" not in value and value.count(":") not in (6, 7)):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _check(name: str, value: str):
    if name in ("PEM", "TOKEN"):
        return r.SECRET, "[SECRET]"
    if name == "BEARER":
        return r.SECRET, f"{value.split()[0]} [SECRET]"
    if name == "ASSIGN":
        return r.SECRET, f"{r._assign_name(value)}[SECRET]"
    if name == "EMAIL":
        return r.EMAIL, "[EMAIL]"
    if name == "IBAN":
        return (r.IBAN, "[IBAN]") if r.iban_valid(value) else None
    if name == "IPV4":
        return (r.IP, "[IP]") if all(int(octet) <= 255 for octet in value.split(".")) else None
    if name == "IPV6":
        return (r.IP, "[IP]") if _ipv6_ok(value) else None
    if name == "CARD":
        digits = value.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and digits.startswith(tuple(p.decode() for p in r._CARD_PREFIXES)) and r.luhn_valid(digits):
            return r.CARD, "[CARD]"
        return (r.PHONE, "[PHONE]") if _PHONE.fullmatch(value) and _phone_ok(value) else None
    return (r.PHONE, "[PHONE]") if _phone_ok(value) else None


def reference_redact(text: str) -> tuple[str, dict[str, int]]:
    if not text:
        return text, {}
    classes = char_classes("\n" + text)
    families = r._families_present(text, classes)
    if not families:
        return text, {}
    regex, kinds = _REFERENCE[families]
    counts: dict[str, int] = {}
    pieces, copied, position = [], 0, 0
    while (spans := search_spans(regex, classes, position)) is not None:
        marker = next(i for i in kinds if spans[i][0] >= 0)
        start, end = spans[0][0], spans[marker][0] - 1
        found = _check(kinds[marker], text[start:end])
        if found is not None:
            counts[found[0]] = counts.get(found[0], 0) + 1
            pieces += [text[copied:start], found[1]]
            copied = end
        position = end
    if not counts:
        return text, counts
    return "".join(pieces) + text[copied:], counts


# PII pieces, near-misses and separators: what makes candidates of every kind, and the
# characters (":", ".", " ", ")", non-ASCII) at which the shortcuts decide.
PIECES = [
    "jane.doe@mail.example.co.uk", "a@b.io", "josé@exämple.com", "a.b@c.", "+44 20 7946 0958", "+44 (20) 7946-0958",
    "+1 1.2.3.4", "+111", "0049 30 1234567", "(555) 123-4567", "555-123-4567", "555.123.4567", "020 7946 0958",
    "07700 900123", "4111 1111 1111 1111", "4111-1111-1111-1112", "378282246310005", "0012345678901234", "1234567890123",
    "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "192.168.100.200", "256.1.1.1", "1.2.3.4.5",
    "2001:db8:85a3::8a2e:370:7334", "::1", "fe80::", "::ffff:1.2.3.4", "::ffff:01.2.3.4", "12:30:45", "1::2::3",
    "a:b:c:d:e:f:1:2", "Bearer abcdef0123456789abcdef", "sk-proj-4fG7hJ9kL2mN5pQ8rS1tU3vW6xY0zA2bC4dE",
    "AKIAIOSFODNN7EXAMPLE", "ghp_" + "a" * 36, "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2Q",
    'api_key: "hunter22hunter22"', "password=[SECRET]", "paſſword=hunter2222", "pwd:123456",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
]
SEPARATORS = ["", " ", ".", "-", ":", "@", "x", "1", "0", "(", ")", "+", "/", "é", "٣", "\u00a0", "\n", '"']


@st.composite
def pieces(draw) -> str:
    piece = draw(st.sampled_from(PIECES))
    cut = draw(st.integers(0, len(piece)))
    # whole, a prefix (almost a match), or with one character dropped
    return draw(st.sampled_from([piece, piece[:cut], piece[:cut] + piece[cut + 1:]]))


texts = st.lists(st.tuples(st.sampled_from(SEPARATORS), pieces()), min_size=1, max_size=12).map(
    lambda parts: "".join(a + b for a, b in parts)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(texts)
def test_redact_equals_the_single_pattern_reference(text):
    assert redact_both(text)


def redact_both(text: str) -> bool:
    got, want = r.redact(text), reference_redact(text)
    assert got == want, (text, got, want)
    return True


def test_the_reference_agrees_on_the_corpus_and_the_cases_the_shortcuts_decide():
    from tests.privacy.test_redaction import corpus_rows

    for row in corpus_rows():
        redact_both(row["text"])
    for text in ["+1 1.2.3.4", "x 1.2.3.4.", "1.2.3.4.x", "1.2.3.4.5", "+44 20 7946 0958.x", "+44 20 7946 0958)",
                 "+44 20 7946 0958).", "555.123.4567.a", "4111 1111 1111 1111", "0012345678901234", "2001:db8::1.",
                 "2001:db8:85a@x", "0049 30 1234567", "0049 30 123456 7", "0049-30-1234567", "0049  30 1234567", "020 7946 0958 1234", "api_key: abcdef", "api_key: abcde-", "pwd=a:b:c:d-", "api_key: [SECR", "api_key: [SECRE", "a@b.io", "a@b.io."]:
        for tail in ("", " 1", "x", ".", ".x", ":"):  # a match at the end of the text, and one before more
            redact_both(text + tail)
