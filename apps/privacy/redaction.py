r"""PII and secret redaction: one compiled regular expression, one pass over the text.

`redact(text)` returns the text with each finding replaced by a typed placeholder and the
counts per kind (never the values):

    [EMAIL]   addresses like jane.doe@example.co.uk
    [PHONE]   international (+44 20 7946 0958, 0049 30 1234567) and common national formats
              ((555) 123-4567, 555-123-4567, 020 7946 0958, 07700 900123)
    [CARD]    13–19 digit card numbers with a known issuer prefix that pass the Luhn check, so
              order numbers and tracking ids survive
    [IBAN]    IBANs whose length matches their country and whose mod-97 checksum holds
    [SECRET]  OpenAI/Anthropic (sk-…), AWS (AKIA…), GitHub (ghp_…, github_pat_…), Slack (xox…,
              hooks.slack.com), Google (AIza…), Stripe (sk_live_…), chatmon (cm_…) keys, JWTs,
              bearer tokens, PEM private key blocks, and `password=…`/`api_key: …` assignments
    [IP]      IPv4 and IPv6 addresses (validated with the ipaddress module)

Design: every kind is one alternative of a single RE2 pattern (apps.core.regex), so the text is
scanned once whatever the number of kinds, in time linear in its length: no input can make the
redactor backtrack. The pattern has no groups, so RE2 answers each search with its DFA; which
alternative matched, and where its body ends, follows from the match itself (see _Pattern), and
only when that is ambiguous does a small capturing pattern run at the match. A text dense with
candidates costs ~1–3 µs per candidate, most of it the Python call into RE2. Candidates that need a checksum (card, IBAN, IPv6) are validated in
Python after the match; a candidate that fails is kept as it was (and is not re-scanned as
another kind: a 16-digit order id that fails Luhn is not a phone number either). Placeholders
never match any pattern, so redact(redact(x)) == redact(x).

A text with more candidates of one alternative than any real message holds (flood_limit():
256 per 32,000 characters) is a flood: the rest of that alternative's candidates are replaced
without their checks, runs of them by one RE2 call (see _Run), so the Python work per text stays
bounded. The flood path replaces everything the exact path would, and may replace more; counts
of a flooded kind are an upper bound. Below the limit the output is the exact path's.

The pattern runs on apps.core.regex.char_classes(text) (one byte per character, non-ASCII
characters as the byte of their class), so Python's Unicode \w, \d and \s stay exact and the
compiled program stays small enough for RE2's DFA.

RE2 has no lookaround, and the kinds need "not inside a word" on both sides. Each alternative
therefore consumes the one character before it (`before`: a class it must not be in; the text
gets a leading newline so the first character has one) and, where it had a look-ahead, the
character(s) after it (`after`). The body's end is marked by an empty named group, and the
next search starts at the body's last character, so that character can be the next
candidate's "before" as it could with a look-behind. The results are those of the former
`re` patterns with look-behind and look-ahead, which is what the corpus test checks.
"""

from apps.core.regex import (
    ANCHOR_BOTH,
    ANCHOR_START,
    FOLDS_TO,
    SHADOW_ALNUM,
    SHADOW_DIGIT,
    SHADOW_LETTER,
    SHADOW_SPACE,
    SHADOW_WORD,
    UNANCHORED,
    char_classes,
    raw_match,
    regex_compile,
)

WORD, DIGIT, SPACE = SHADOW_WORD, SHADOW_DIGIT, SHADOW_SPACE

EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IBAN = "IBAN"
SECRET = "SECRET"
IP = "IP"
KINDS = (EMAIL, PHONE, CARD, IBAN, SECRET, IP)

# IBAN length per country (SWIFT IBAN registry); an unknown country is not an IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}


def _not_followed_by(chars: str, *, dot_digit: bool = False) -> str:
    r"""A consuming stand-in for the look-ahead `(?![chars])`, or `(?![chars]|\.\d)` with dot_digit."""
    if dot_digit:
        return rf"(?:\z|[^{chars}.]|\.(?:\z|[^{DIGIT}]))"
    return rf"(?:\z|[^{chars}])"


_ALNUM = SHADOW_ALNUM  # Python's [^\W_]
_LETTER = SHADOW_LETTER  # Python's [^\W\d_]


def _ignore_case(words: str) -> str:
    """`(?i:words)` for char_classes() text: each ASCII letter also as its other case, and s, k, i
    also as the ſ, K, ı/İ that re.IGNORECASE folds to them (`words`: letters, _, \\-, groups)."""
    out = []
    for char in words:
        if char.isascii() and char.isalpha():
            out.append(f"[{char.lower()}{char.upper()}{FOLDS_TO.get(char.lower(), '')}]")
        else:
            out.append(char)
    return "".join(out)


_NOT_WORD = _not_followed_by(WORD)
_PHONE_END = _not_followed_by(rf"{WORD}\-/", dot_digit=True)
_PHONE_GROUPS = r"(?:[ .\-]?\(?[0-9]{1,5}\)?){2,6}"
_ASSIGN_NAME = (
    r"[AaSsPpCc](?:"
    + _ignore_case(
        r"ws_secret(?:_access)?_key|ecret(?:_access)?_key|pi[_\-]?key|pikey"
        r"|ccess[_\-]?token|uth[_\-]?token|lient[_\-]?secret|assword|asswd|wd"
    )
    + r")[\"']?[ \t]*[:=][ \t]*[\"']?"
)


def _value_not_redacted(value_class: str, placeholder: str, minimum: int) -> list[tuple[str, str]]:
    """(body, after) pairs that together stand for `(?!placeholder)value_class{minimum,}`.

    RE2 has no negative look-ahead, so the language is spelled out: the value leaves the
    placeholder at its i-th character, then runs on (no `after`); or it is a proper prefix of
    the placeholder at least `minimum` long and stops there (`after`: no value character).
    Keeping an already redacted `password=[SECRET]` out is what makes redact() idempotent.
    """
    def literal(text: str) -> str:
        return "".join(c if c.isalnum() else f"\\{c}" for c in text)

    inside = value_class[2:-1]  # the class body of a negated class "[^…]"
    diverging = "|".join(
        f"{literal(placeholder[:i])}[^{inside}{literal(char)}]{value_class}{{{max(0, minimum - i - 1)},}}"
        for i, char in enumerate(placeholder)
    )
    stopping = "|".join(literal(placeholder[:i]) for i in range(minimum, len(placeholder)))
    return [(f"(?:{diverging})", ""), (f"(?:{stopping})", rf"(?:\z|[{inside}])")]

# (name, family, before, starts, body, after). `before`: the characters that must not precede the
# body (None: any); `starts`: the characters the body can begin with (a class body, used to route a
# match to the alternatives that can have made it, see _Pattern); `after`: what must follow the
# body, consumed (see the module docstring). Order matters: at one position the first alternative
# that matches wins, as with `re`.
_ALTERNATIVES = [
    # Secrets first: the most specific shapes; they contain digit runs the looser kinds would claim.
    ("PEM", "secret", None, "\\-", r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.)*?(?:-----END[A-Z ]*PRIVATE KEY-----|\z)", ""),
    ("BEARER", "secret", WORD, "Bb", r"[Bb](?:earer|EARER)[ \t]+[A-Za-z0-9\-._~+/]{16,}=*", ""),
    ("TOKEN", "secret", rf"{WORD}\-", "s", r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}", ""),  # OpenAI, Anthropic
    ("TOKEN", "secret", WORD, "A", r"A(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}", _NOT_WORD),  # AWS access key id
    ("TOKEN", "secret", WORD, "g", r"g(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})", ""),  # GitHub
    ("TOKEN", "secret", WORD, "x", r"xox[abposr]-[A-Za-z0-9\-]{10,}", ""),  # Slack tokens
    ("TOKEN", "secret", None, "h", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}", ""),  # Slack webhook URL
    ("TOKEN", "secret", WORD, "A", r"AIza[0-9A-Za-z_\-]{35}", ""),  # Google API key
    ("TOKEN", "secret", WORD, "srp", r"[srp]k_(?:live|test)_[A-Za-z0-9]{16,}", ""),  # Stripe
    ("TOKEN", "secret", WORD, "c", r"cm_[0-9a-f]{8}_[A-Za-z0-9_\-]{43}", ""),  # chatmon's own API keys
    ("TOKEN", "secret", rf"{WORD}\-", "e", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", ""),  # JWT
    # `password = hunter22`, `"api_key": "…"`, `AWS_SECRET_ACCESS_KEY=…`: keep the name, drop the value.
    # Two alternatives for the one `(?!\[SECRET\])[^\s"',;]{6,}` value (see _value_not_redacted).
    *(
        ("ASSIGN", "secret", WORD, "AaSsPpCc", _ASSIGN_NAME + value, after)
        for value, after in _value_not_redacted(f"[^{SPACE}\"',;]", "[SECRET]", 6)
    ),
    (
        "EMAIL", "email", rf"{WORD}.+\-", _ALNUM,
        rf"[{_ALNUM}][{WORD}.%+\-]{{0,63}}@[{_ALNUM}](?:[{WORD}\-]{{0,62}}\.)+[{_LETTER}]{{2,24}}",
        _NOT_WORD,
    ),
    ("IBAN", "digit", WORD, "A-Z", rf"[A-Z][A-Z][{DIGIT}]{{2}}(?: ?[A-Z0-9]{{4}}){{2,7}}(?: ?[A-Z0-9]{{1,3}})?", _NOT_WORD),
    # IPv4 before cards/phones: dotted quads are not numbers. Versions (v1.2.3.4, 1.2.3.4.5) are not matched.
    ("IPV4", "digit", rf"{WORD}.", "0-9", r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", _not_followed_by(WORD, dot_digit=True)),
    # Hex groups with colons, not ending in a dot; the ipaddress module decides. Times (12:30:45) and MACs fail there.
    ("IPV6", "colon", rf"{WORD}:.", "0-9A-Fa-f:", r"[0-9A-Fa-f:][0-9A-Fa-f.]*:(?:[0-9A-Fa-f:.]*[0-9A-Fa-f:])?", _not_followed_by(rf"{WORD}:")),
    ("CARD", "digit", rf"{WORD}\-", "0-9", r"[0-9](?:[ \-]?[0-9]){12,18}", _not_followed_by(rf"{WORD}\-")),
    # International: +CC or 00CC, then more digits in groups.
    ("PHONE", "digit", rf"{WORD}+\-/.", "+", rf"\+[1-9][0-9]{{0,2}}{_PHONE_GROUPS}", _PHONE_END),
    # 00CC international, then national formats: four alternatives rather than one group of four
    # (the same matches in the same order), so each has its own first characters (see _Route).
    ("PHONE", "digit", rf"{WORD}+\-/.", "0", rf"00[1-9][0-9]{{0,2}}{_PHONE_GROUPS}", _PHONE_END),
    ("PHONE", "digit", rf"{WORD}+\-/.", "(", r"\([0-9]{3}\)[ .\-]?[0-9]{3}[ .\-][0-9]{4}", _PHONE_END),  # (555) 123-4567
    ("PHONE", "digit", rf"{WORD}+\-/.", "0-9", r"[0-9]{3}[.\-][0-9]{3}[.\-][0-9]{4}", _PHONE_END),  # 555-123-4567
    ("PHONE", "digit", rf"{WORD}+\-/.", "0", r"0[0-9]{2,4}[ \-][0-9]{3,4}[ \-]?[0-9]{3,4}", _PHONE_END),  # 020 7946 0958
]

_FAMILIES = ("secret", "email", "digit", "colon")
_SECRET_HINTS = (
    "-----begin", "bearer", "sk-", "akia", "asia", "abia", "acca", "gh", "xox", "aiza", "_live_", "_test_",
    "cm_", "eyj", "hooks.slack", "secret", "apikey", "api_key", "api-key", "token", "passw", "pwd",
)
_DIGIT = regex_compile(r"[0-9]", latin1=True)


# How many characters an alternative's `after` consumed, known from the match end alone when the
# match does not end the text (there `\z` may have consumed nothing): every `after` is one of
# "" (nothing), `(?:\z|[^…])` / `(?:\z|[…])` (one character), or `_not_followed_by(…,
# dot_digit=True)`: one character, or two when it is "." then a non-digit. No body that has such an
# `after` ends with ".", so a "." just before the last character is the after's. The differential
# test against the single-pattern redactor (tests/privacy) checks this reading.
_AFTER_NONE, _AFTER_ONE, _AFTER_DOT = 0, 1, 2


def _after_shape(after: str) -> int:
    if not after:
        return _AFTER_NONE
    return _AFTER_DOT if after.endswith(rf"|\.(?:\z|[^{DIGIT}]))") else _AFTER_ONE


# The characters a body can hold, per (name, starts) of the alternatives whose bodies can begin
# with a digit (one route of up to eight alternatives): a body with a ":" can only be IPv6, one
# with a space is not IPv4, IPv6 or 555-123-4567, one without "@" is no email. Read off the
# patterns above (for the two phone alternatives beginning with "0", the union); a character
# missing here would lose matches, which the differential test against the single-pattern
# redactor would show.
_BODY_CHARS = {
    ("EMAIL", _ALNUM): b"@.%+-_" + bytes(range(48, 58)) + bytes(range(65, 91)) + bytes(range(97, 123)) + b"\x80\x81\x84\x85\x86",
    ("IPV4", "0-9"): b"0123456789.",
    ("IPV6", "0-9A-Fa-f:"): b"0123456789abcdefABCDEF:.",
    ("CARD", "0-9"): b"0123456789 -",
    ("PHONE", "0"): b"0123456789 .-()",
    ("PHONE", "0-9"): b"0123456789.-",
}

# A card body holds 13–19 digits, so the body without its last two characters (the `core`
# narrowing looks at) holds at least 11: fewer, and the match cannot be a card.
_CARD_CORE_DIGITS = 11

# What an `api_key: …` value cannot hold (`[^\s"',;]`): the stopping alternative's after.
_ASSIGN_STOPS = frozenset(b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x82\"',;")  # SHADOW_SPACE, quotes, comma, semicolon
_HEX_COLON_DOT = b"0123456789abcdefABCDEF:."


_CARD_OR_PHONE = "card or phone"  # a marker (see _Route.decide)


def _card_shaped(body: bytes) -> bool:
    """Whether `[0-9](?:[ \\-]?[0-9]){12,18}` matches all of `body` (bytes methods, no RE2 call)."""
    digits = _digit_count(body)
    return (
        13 <= digits <= 19 and not body.translate(None, b"0123456789 -") and 48 <= body[0] <= 57
        and 48 <= body[-1] <= 57 and b"  " not in body and b"--" not in body and b" -" not in body and b"- " not in body
    )


def _assign_end(classes: bytes, start: int, stop: int) -> int:
    """The body end of a match that is an `api_key: …` assignment, or -1 if it may be another
    alternative of its route (call only when stop < len(classes)).

    The other alternatives that begin with A/a/S/s/P/p/C/c (keys, email, IBAN, IPv6) never hold
    "=", and only IPv6 holds ":" — in a body of hex digits, colons and dots. Every name holds a
    letter beyond hex and is followed by ":" or "=" and at least six characters, so the core
    (the body without the last two characters, which may be the after's) shows both. Of the two
    assignment alternatives, the diverging one has no after and ends on a value character; the
    stopping one ends on its after, a character no value holds.
    """
    core = classes[start + 1:stop - 2]
    if (58 not in core and 61 not in core) or not core.translate(None, _HEX_COLON_DOT):
        return -1
    return stop - 1 if classes[stop - 1] in _ASSIGN_STOPS else stop


# RE2 finds submatches with its fast BitState engine only in programs of at most 512 instructions.
_BITSTATE_MAX = 512


class _Route:
    """What a match whose body begins with a given byte can be: the alternatives that can begin
    with it, in their order. When there is only one: its name and after shape (`name`, `after`),
    so most matches need no second look. Otherwise `steps`: the alternatives as small capturing
    patterns of consecutive alternatives (each within BitState's size where it can be), tried in
    order; the first that matches at the position is the one (see _Pattern)."""

    __slots__ = ("name", "after", "steps", "narrow", "decide", "card_bit", "assign")

    def __init__(self, alternatives: list[tuple[str, str, str, str, str]]) -> None:
        self.name = alternatives[0][0] if len(alternatives) == 1 else None
        self.after = _after_shape(alternatives[0][3])
        # When every alternative here has _BODY_CHARS: (its characters, name, after shape), to
        # keep only the alternatives whose characters the match's body holds (see redact()).
        # `narrow`: (characters, bit) per alternative; `decide[mask]`: for the alternatives whose
        # bits are set, (name, after shape) when they agree on both (the phone shapes beginning
        # with "0" need not be told apart), _CARD_OR_PHONE when they are cards and phones, else None.
        self.narrow = None
        self.card_bit = 0
        if self.name is None and all((name, starts) in _BODY_CHARS for name, _, _, _, starts in alternatives):
            self.narrow = [(frozenset(_BODY_CHARS[name, starts]), 1 << i)
                           for i, (name, _, _, _, starts) in enumerate(alternatives)]
            shapes = [(name, _after_shape(after)) for name, _, _, after, _ in alternatives]
            self.card_bit = sum(1 << i for i, (name, _) in enumerate(shapes) if name == "CARD")
            self.decide = [None] * (1 << len(shapes))
            for mask in range(1, 1 << len(shapes)):
                chosen = {shape for i, shape in enumerate(shapes) if mask >> i & 1}
                if len(chosen) == 1:
                    self.decide[mask] = chosen.pop()
                elif {name for name, _ in chosen} == {"CARD", "PHONE"}:
                    self.decide[mask] = _CARD_OR_PHONE
        # When an `api_key: …` assignment can begin with this byte: see _assign_end().
        self.assign = any(name == "ASSIGN" for name, *_ in alternatives)
        self.steps: list[tuple] = []  # (RE2 Match, {end marker group: alternative name})
        group: list[tuple[str, str, str, str]] = []
        for alternative in (alternative[:4] for alternative in alternatives):
            if group and _capturing(group + [alternative]).programsize > _BITSTATE_MAX:
                self.steps.append(_step(group))
                group = []
            group.append(alternative)
        self.steps.append(_step(group))


def _capturing(alternatives: list[tuple[str, str, str, str]]):
    return regex_compile("|".join(f"{prefix}{body}()" + after for _, prefix, body, after in alternatives), latin1=True)


def _step(alternatives: list[tuple[str, str, str, str]]) -> tuple:
    return raw_match(_capturing(alternatives)), {i + 1: alternatives[i][0] for i in range(len(alternatives))}


class _Pattern:
    r"""The alternatives of some families as one RE2 pattern without groups, and per first body
    byte the _Route that tells which alternative matched and where its body ends.

    Why two steps: RE2 finds submatches of a program over 512 instructions with its NFA, which
    costs ~1.5 µs per match on top of the ~0.8 µs of a call, and a text can hold thousands of
    candidates. A pattern without groups is answered by the DFA alone. The match's first body byte
    then leaves few alternatives (a "+" only the international phone, a ":" only IPv6), and the
    body's end follows from the after's shape; only when several alternatives can begin with that
    byte, or the match ends the text, do the route's small patterns run, anchored at the match, on
    the whole text (so `\z` keeps its meaning). They find the same alternative: the route's ones
    before it cannot match at that position (the big pattern would have taken them), and it
    matches as it did there.
    """

    def __init__(self, families: frozenset[str], routes_cache: dict) -> None:
        chosen = [i for i, alternative in enumerate(_ALTERNATIVES) if alternative[1] in families]
        self.regex = regex_compile("|".join(f"{_PREFIXES[i]}{_ALTERNATIVES[i][4]}{_ALTERNATIVES[i][5]}" for i in chosen),
                                   latin1=True)
        self.routes: list[_Route | None] = []
        for byte in range(256):
            key = tuple(i for i in chosen if _STARTS[i].fullmatch(bytes([byte])))
            if not key:
                self.routes.append(None)  # no body begins with it: the big pattern never matches there
                continue
            if key not in routes_cache:
                routes_cache[key] = _Route(
                    [(_ALTERNATIVES[i][0], _PREFIXES[i], *_ALTERNATIVES[i][4:], _ALTERNATIVES[i][3]) for i in key]
                )
            self.routes.append(routes_cache[key])


_PREFIXES = [r"(?s:.)" if before is None else f"[^{before}]" for _, _, before, _, _, _ in _ALTERNATIVES]
_STARTS = [regex_compile(f"[{starts}]", latin1=True) for _, _, _, starts, _, _ in _ALTERNATIVES]


# One compiled pattern per combination of families present (16 at most), built at import, and
# their routes (shared between bytes and patterns with the same alternatives: a few dozen).
_ROUTES: dict = {}
_PATTERNS = {
    families: _Pattern(families, _ROUTES) if families else None
    for families in (frozenset(f for i, f in enumerate(_FAMILIES) if mask >> i & 1) for mask in range(1 << len(_FAMILIES)))
}
# A card candidate that fails Luhn may still be a phone number (the body alone, as re.fullmatch did).
# Card bodies are ASCII, so it runs on the char_classes() bytes, anchored at both ends of the body.
_PHONE_ONLY = regex_compile("|".join(f"(?:{body})" for name, _, _, _, body, _ in _ALTERNATIVES if name == "PHONE"), latin1=True)
_PHONE_BOTH = raw_match(_PHONE_ONLY)


def _families_present(text: str, data: bytes) -> frozenset[str]:
    """Cheap C-speed checks that rule whole families out before the regex pass."""
    found = []
    low = text.lower()
    if any(hint in low for hint in _SECRET_HINTS):
        found.append("secret")
    if "@" in text:
        found.append("email")
    if _DIGIT.search(data):
        found.append("digit")
        if ":" in text:
            found.append("colon")
    return frozenset(found)


# Issuer prefixes (Visa, Mastercard, Amex, Diners, Discover, UnionPay, Maestro): a startswith tuple.
_CARD_PREFIXES = tuple(
    prefix.encode()
    for prefix in (
        "4", *(f"5{d}" for d in "12345678"), *(f"2{d}" for d in "234567"), *(f"3{d}" for d in "45670689"),
        "6011", "65", *(f"64{d}" for d in "456789"), "62", "50",
    )
)
_ASCII_DIGITS = b"0123456789"
# Luhn on bytes without a Python loop: digits from the right, the 1st, 3rd… as their value, the
# 2nd, 4th… doubled with the digits of the product summed (2·7 = 14 → 5), each by one translate.
_LUHN_PLAIN = bytes.maketrans(_ASCII_DIGITS, bytes(range(10)))
_LUHN_DOUBLED = bytes.maketrans(_ASCII_DIGITS, bytes((2 * d) % 10 + (2 * d) // 10 for d in range(10)))


def luhn_valid(digits: str) -> bool:
    return _luhn(digits.encode("ascii"))


def _luhn(digits: bytes) -> bool:
    return (sum(digits[-1::-2].translate(_LUHN_PLAIN)) + sum(digits[-2::-2].translate(_LUHN_DOUBLED))) % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    # Letters count as 10..35; int() on the joined digits is fast for ≤ 34 characters.
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# The checks below take the body as char_classes() bytes: card, phone and IP bodies are ASCII by
# their patterns, so those bytes are the text's characters, and bytes methods need no str slice.
def _card_valid(body: bytes) -> bool:
    digits = body.translate(None, b" -")
    return 13 <= len(digits) <= 19 and digits.startswith(_CARD_PREFIXES) and _luhn(digits)


def _digit_count(body: bytes) -> int:
    return len(body) - len(body.translate(None, _ASCII_DIGITS))


def _phone_valid(body: bytes) -> bool:
    digits = _digit_count(body)
    if body.startswith(b"00"):
        digits -= 2
    return 7 <= digits <= 15


def _assign_name(value: str) -> str:
    """`password = "` of `password = "hunter22`: up to the first : or =, spaces and a quote."""
    colon, equals = value.find(":"), value.find("=")
    end = (equals if colon < 0 else colon if equals < 0 else min(colon, equals)) + 1
    while end < len(value) and value[end] in " \t":
        end += 1
    if end < len(value) and value[end] in "\"'":
        end += 1
    return value[:end]


_HEX = frozenset(b"0123456789abcdefABCDEF")


def _ipv4_text_valid(octets: list[bytes]) -> bool:
    """ipaddress.IPv4Address's rules for the dotted tail of an IPv6 candidate (4 decimal octets,
    1–3 digits, no leading zero, ≤ 255); the candidate's characters are hex digits and dots."""
    return len(octets) == 4 and all(
        octet.isdigit() and len(octet) <= 3 and (octet == b"0" or octet[0] != 48) and int(octet) <= 255
        for octet in octets
    )


def _ipv6_valid(body: bytes) -> bool:
    # "a::b"-like words and times are not addresses: require a digit and two colons in a row or 8 groups.
    if len(body.translate(None, _ASCII_DIGITS)) == len(body):
        return False
    if b"::" not in body and body.count(b":") not in (6, 7):  # cheap before the parse
        return False
    # What ipaddress.IPv6Address(candidate) accepts, step for step (its _ip_int_from_string), at a
    # third of its cost: it built an address object and an int for a yes or no. Bodies hold only
    # hex digits, ":" and "."; no "%" scope or "/" prefix to handle.
    parts = body.split(b":")
    if len(parts) < 3:
        return False
    if b"." in parts[-1]:
        if not _ipv4_text_valid(parts.pop().split(b".")):
            return False
        parts += (b"0", b"0")  # the two hextets it stands for; any valid value will do
    if len(parts) > 9:
        return False
    skip = None
    for i in range(1, len(parts) - 1):
        if not parts[i]:
            if skip is not None:
                return False  # at most one "::"
            skip = i
    if skip is not None:
        high, low = skip, len(parts) - skip - 1
        if not parts[0]:
            high -= 1
            if high:
                return False  # a leading ":" only as part of "::"
        if not parts[-1]:
            low -= 1
            if low:
                return False  # a trailing ":" only as part of "::"
        if high + low > 7:
            return False  # "::" must stand for at least one hextet
        parsed = parts[:high] + parts[len(parts) - low:]
    else:
        if len(parts) != 8 or not parts[0] or not parts[-1]:
            return False
        parsed = parts
    # Each hextet 1–4 hex digits (an empty one is int("", 16), an error there too).
    return all(0 < len(part) <= 4 and _HEX.issuperset(part) for part in parsed)


def _replacement(name: str, text: str, data: bytes, start: int, end: int) -> tuple[str, str] | None:
    """(kind, placeholder) for the body text[start:end - 1] (data[start + 1:end]) of alternative
    `name`, or None when it fails its check."""
    if name == "PHONE":
        return (PHONE, "[PHONE]") if _phone_valid(data[start + 1:end]) else None
    if name == "CARD":
        body = data[start + 1:end]
        if _card_valid(body):
            return CARD, "[CARD]"
        # A card body (13–19 digits, single spaces or hyphens) can only be a phone number of the
        # 00CC or 0xx national shapes, which begin with "0": check that and the digit count first,
        # both before another RE2 call.
        if body[0] == 48 and _phone_valid(body) and _PHONE_BOTH(ANCHOR_BOTH, data, start + 1, end)[0][0] >= 0:
            return PHONE, "[PHONE]"
        return None
    if name == "IPV6":
        return (IP, "[IP]") if _ipv6_valid(data[start + 1:end]) else None
    if name == "IPV4":
        return (IP, "[IP]") if all(int(octet) <= 255 for octet in data[start + 1:end].split(b".")) else None
    if name == "PEM" or name == "TOKEN":
        return SECRET, "[SECRET]"
    value = text[start:end - 1]
    if name == "BEARER":
        return SECRET, f"{value.split()[0]} [SECRET]"
    if name == "ASSIGN":
        return SECRET, f"{_assign_name(value)}[SECRET]"
    if name == "EMAIL":
        return EMAIL, "[EMAIL]"
    return (IBAN, "[IBAN]") if iban_valid(value) else None  # IBAN


def _resolve(route: _Route, data: bytes, start: int) -> tuple[str, int]:
    """(alternative name, body end) of the match at `start`, by the route's capturing patterns."""
    for match, kinds in route.steps:
        spans = match(ANCHOR_START, data, start, len(data))
        if spans[0][0] >= 0:
            marker = next(i for i in kinds if spans[i][0] >= 0)  # the one alternative that matched
            return kinds[marker], spans[marker][0]
    raise AssertionError("the big pattern matched here, so one of its alternatives does")


# The flood path (issue 15 #1). Every candidate costs ~1–3 µs of Python (the RE2 call, the
# route, the check), so a text of thousands of candidates costs several times a PII-dense one,
# though linearly. No real message holds many candidates of one alternative: the labelled corpus
# and ConvAI2 messages hold at most a few per text (docs/BENCHMARKS.md). Past FLOOD_CANDIDATES of
# one alternative per FLOOD_PER_CHARS characters, the rest of that alternative's candidates are
# redacted without their check (Luhn, phone digits, IPv6 parse, IBAN mod 97), and runs of them are taken
# by one RE2 call (_Run). The matches are the same as on the exact path, which never depend on a
# check's outcome (a failed candidate is skipped just as far as a replaced one), so the flood path
# replaces everything the exact path does, and more: over-redaction, never PII left in. Counts of
# a flooded kind are then an upper bound.
FLOOD_CANDIDATES = 256
FLOOD_PER_CHARS = 32_000
# Cards and phones flood together: a card-shaped number that fails Luhn is checked as a phone.
_FLOOD_GROUP = {"CARD": PHONE}


def flood_limit(length: int) -> int:
    """Candidates of one alternative a text of `length` characters may hold before it floods."""
    return max(FLOOD_CANDIDATES, length * FLOOD_CANDIDATES // FLOOD_PER_CHARS)


def _flood_replacement(name: str, text: str, data: bytes, start: int, end: int) -> tuple[str, str]:
    """_replacement() without the checks that cost Python time: every candidate is redacted."""
    if name == "PHONE":
        return PHONE, "[PHONE]"
    if name == "CARD":  # card-shaped: a card, Luhn or not (a card-shaped phone number too)
        return CARD, "[CARD]"
    if name == "IPV6" or name == "IPV4":
        return IP, "[IP]"
    if name == "IBAN":
        return IBAN, "[IBAN]"
    return _replacement(name, text, data, start, end)  # secrets and emails have no check


class _Run:
    r"""Further candidates of one alternative right after one the loop found, by one anchored RE2
    call: `(?:[separators]next)+` and the alternative's after.

    It takes exactly the candidates the loop would find next, one by one, if (a) no alternative's
    body can begin with a separator, which are also fine as the candidate's before and after, and
    (b) no alternative before this one can match where `next` begins. `next` is the alternative's
    body, or (for IPv6) the part of its language that rules the earlier ones out; where it does
    not match the run ends and the loop goes on as usual. Each body's extent is the loop's: a body
    choice is taken when its after holds, and a following separator satisfies the after.
    """

    def __init__(self, name: str, separators: bytes, starts: bytes, next_body: str, after: str, counted: bytes,
                 ambiguous_end: bytes, body_last: bytes) -> None:
        cls = "".join(f"\\x{b:02x}" for b in separators)
        self.name = name
        self.separators = frozenset(separators)
        self.starts = frozenset(starts)  # the bytes `next` can begin with
        self.match = raw_match(regex_compile(f"(?:[{cls}]{next_body})+{after}", latin1=True))
        self.capture = raw_match(regex_compile(f"(?:[{cls}]{next_body}())+{after}", latin1=True))
        self.after = _after_shape(after)
        self.counted = counted  # bytes of which each further candidate holds exactly one
        self.body_last = body_last  # the bytes a body can end with
        self.ambiguous_end = ambiguous_end  # of those, the ones its after can also consume

    def end(self, classes: bytes, body_end: int) -> tuple[int, int]:
        """(end of the run's last body, further candidates), or (-1, 0) for none."""
        size = len(classes)
        stop = self.match(ANCHOR_START, classes, body_end, size)[0][1]
        if stop < 0:
            return -1, 0
        if stop < size:
            end = stop - (2 if self.after == _AFTER_DOT and classes[stop - 2] == 46 else 1)
        else:  # at the end of the text the after may be \z (nothing consumed)
            last = classes[size - 1]
            if last in self.ambiguous_end:
                end = self.capture(ANCHOR_START, classes, body_end, size)[1][0]
            elif last in self.body_last:
                end = size
            elif self.after == _AFTER_DOT and (last == 46 or classes[size - 2] == 46):
                end = size - 1 if last == 46 else size - 2  # "." then the end, or "." then a non-digit
            else:
                end = size - 1
        region = classes[body_end:end]
        return end, len(region) - len(region.translate(None, self.counted))


_IPV6_BODY = r"[0-9A-Fa-f:][0-9A-Fa-f.]*:(?:[0-9A-Fa-f:.]*[0-9A-Fa-f:])?"
_PHONE_CC_BODY = rf"\+[1-9][0-9]{{0,2}}{_PHONE_GROUPS}"
assert any(name == "IPV6" and body == _IPV6_BODY for name, _, _, _, body, _ in _ALTERNATIVES)
assert any(name == "PHONE" and body == _PHONE_CC_BODY for name, _, _, _, body, _ in _ALTERNATIVES)
# A run is tried only this many times without taking a further candidate, per alternative and text.
_RUN_TRIES = 16
# Keyed by (name, body begins with "+").
_RUNS = {
    # IPv6 separated by one of " \t\n,;@-" (each neither a word character nor ":" or ".", and no body
    # begins with one; PEM's "-----" cannot begin at a "-" followed by a digit or ":"). `next`: IPv6
    # bodies that begin with ":" or with a digit and reach their first ":" by hex digits alone. An
    # IPv4 body needs a "." before that colon, an email an "@", an IBAN two capitals, every key a
    # letter or "-" first: none of the alternatives before IPv6 can match there. Bodies hold no
    # separator, so the separators count the further candidates.
    ("IPV6", False): _Run(
        "IPV6", b" \t\n,;@-", b":0123456789", r"(?::[0-9A-Fa-f.]*|[0-9][0-9A-Fa-f]*):(?:[0-9A-Fa-f:.]*[0-9A-Fa-f:])?",
        _not_followed_by(rf"{WORD}:"), b" \t\n,;@-", b"", b"0123456789abcdefABCDEF:",
    ),
    # +CC phones separated by one of " \t\n,;": only this alternative begins with "+", so `next` is
    # its body; each holds one "+". A body can end with ")", which the after also takes.
    ("PHONE", True): _Run("PHONE", b" \t\n,;", b"+", _PHONE_CC_BODY, _PHONE_END, b"+", b")", b"0123456789)"),
}


def redact(text: str) -> tuple[str, dict[str, int]]:
    """The text with PII and secrets replaced by [KIND] placeholders, and the count per kind.

    1. Pick the pattern of the families the text can hold (cheap substring checks).
    2. Search char_classes("\n" + text) (the newline is the first character's "before");
       offsets there are the text's offsets plus one.
    3. For each match: find which alternative made it and where its body ends (the route of the
       body's first byte, see _Pattern); the body is text[start:end - 1]. Check it (checksums)
       and copy either the placeholder or the body itself.
    4. Search again from the body's last character (the next "before"), never earlier: every
       step moves forward, and RE2 reads each byte a bounded number of times.
    5. Past flood_limit() candidates of one alternative, the flood path for it (see _Run).
    """
    return _redact(text, flood_limit(len(text)))


def _redact(text: str, limit: float, spans: list | None = None, seen: dict | None = None,
            runs: bool = True) -> tuple[str, dict[str, int]]:
    """redact() with `limit` candidates of one alternative before the flood path (inf: never);
    `spans` collects the (start, end) of each replaced piece of `text`, `seen` the candidates per
    alternative name (for the tests and the bench); runs=False: the flood path one candidate at
    a time (what the runs must equal)."""
    if not text:
        return text, {}
    classes = char_classes("\n" + text)
    pattern = _PATTERNS[_families_present(text, classes)]
    if pattern is None:
        return text, {}
    if seen is None:
        seen = {}
    run_failures: dict[str, int] = {}
    counts: dict[str, int] = {}
    pieces: list[str] = []
    copied = 0  # characters of `text` already in `pieces`
    position = 0
    size = len(classes)
    search, routes = raw_match(pattern.regex), pattern.routes
    while True:
        start, stop = search(UNANCHORED, classes, position, size)[0]
        if start < 0:
            break
        route = routes[classes[start + 1]]
        name, after = route.name, route.after
        if name is None and route.narrow is not None and stop < size:
            # Several alternatives begin so, and all have known characters: keep those whose
            # characters hold the body without its last two (which may be the after's).
            # Alternatives with the same name and after shape (the phone shapes beginning with "0")
            # need not be told apart: the placeholder and the body's end are the same.
            core_bytes = classes[start + 1:stop - 2]
            core = frozenset(core_bytes)
            mask = sum([bit for chars, bit in route.narrow if core <= chars])
            card = route.card_bit
            if mask & card and mask != card and _digit_count(core_bytes) < _CARD_CORE_DIGITS:
                mask ^= card
            decision = route.decide[mask]
            if decision is _CARD_OR_PHONE:
                if classes[stop - 2] != 46:
                    # Card or phone, each with a one-character after here: the body's end is known,
                    # and it is a card exactly if the card alternative (the earlier) can match it.
                    # Flooded, either is redacted: as a phone, without the check.
                    flooded = seen.get(PHONE, 0) >= limit
                    name, after = (CARD if not flooded and _card_shaped(classes[start + 1:stop - 1]) else PHONE), 1
            elif decision is not None:
                name, after = decision
        end = -1
        if name is None and route.assign and stop < size:
            end = _assign_end(classes, start, stop)
            if end >= 0:
                name = "ASSIGN"
        if end >= 0:
            pass
        elif name is not None and stop < size:  # one alternative begins so: its after's length gives the body's end
            if after == _AFTER_DOT:
                after = 2 if classes[stop - 2] == 46 else 1  # "." then a non-digit, or one character
            end = stop - after
        else:
            name, end = _resolve(route, classes, start)
        # The body is classes[start + 1:end], text[start:end - 1].
        group = _FLOOD_GROUP.get(name, name)
        many = seen[group] = seen.get(group, 0) + 1
        if many <= limit:
            found = _replacement(name, text, classes, start, end)
            n = 1
        else:
            found = _flood_replacement(name, text, classes, start, end)
            n = 1
            run = _RUNS.get((name, classes[start + 1] == 43)) if runs else None
            # Only where a run can begin (a separator, then a body's first byte), and not for an
            # alternative whose runs keep failing: a failed try is one more RE2 call.
            if run is not None and end + 1 < size and classes[end] in run.separators \
                    and classes[end + 1] in run.starts and run_failures.get(name, 0) < _RUN_TRIES:
                run_end, more = run.end(classes, end)
                if not more:
                    run_failures[name] = run_failures.get(name, 0) + 1
                else:
                    seen[group] += more
                    found = found[0], " ".join([found[1]] * (1 + more))  # one placeholder per candidate
                    n += more
                    end = run_end
        if found is not None:
            kind, placeholder = found
            counts[kind] = counts.get(kind, 0) + n
            pieces.append(text[copied:start])
            pieces.append(placeholder)
            if spans is not None:
                spans.append((start, end - 1))
            copied = end - 1
        position = end - 1  # the body's last character, in `classes` offsets
    if not counts:
        return text, counts
    pieces.append(text[copied:])
    return "".join(pieces), counts


def counts_merge(*many: dict[str, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for counts in many:
        for kind, n in counts.items():
            merged[kind] = merged.get(kind, 0) + n
    return merged


def redaction_scores(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Precision and recall per kind on labelled rows `{"text": …, "expect": {kind: count}}`.

    Used by the test corpus and bench/redaction.py, so both report the same figures.
    """
    table: dict[str, dict[str, float]] = {kind: {"tp": 0, "fp": 0, "fn": 0} for kind in KINDS}
    for row in rows:
        _, found = redact(row["text"])
        for kind in KINDS:
            want, got = row["expect"].get(kind, 0), found.get(kind, 0)
            table[kind]["tp"] += min(want, got)
            table[kind]["fp"] += max(0, got - want)
            table[kind]["fn"] += max(0, want - got)
    for counts in table.values():
        tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
        counts["precision"] = tp / (tp + fp) if tp + fp else 1.0
        counts["recall"] = tp / (tp + fn) if tp + fn else 1.0
    return table

