"""PII and secret redaction: one compiled regular expression, one pass over the text.

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

Design: every kind is one named alternative of a single pattern, so the text is scanned once
whatever the number of kinds. Candidates that need a checksum (card, IBAN, IPv6) are validated
in the replacement callback; a candidate that fails is kept as it was (and is not re-scanned as
another kind: a 16-digit order id that fails Luhn is not a phone number either). Placeholders
never match any pattern, so redact(redact(x)) == redact(x).
"""

import ipaddress
import re

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


# (name, family, regex). Each alternative begins with a literal or a character class and puts
# its "not inside a word" look-behind after that first character: the regex engine then skips
# an alternative on the first character instead of entering it at every position. The kind is
# told by an empty named group at the end of each alternative (match.lastgroup).
_ALTERNATIVES = [
    # Secrets first: the most specific shapes; they contain digit runs the looser kinds would claim.
    ("PEM", "secret", r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)"),
    ("BEARER", "secret", r"[Bb](?<!\w.)(?:earer|EARER)[ \t]+[A-Za-z0-9\-._~+/]{16,}=*"),
    ("TOKEN", "secret", r"s(?<![\w\-].)k-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI, Anthropic
    ("TOKEN", "secret", r"A(?<!\w.)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?!\w)"),  # AWS access key id
    ("TOKEN", "secret", r"g(?<!\w.)(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})"),  # GitHub
    ("TOKEN", "secret", r"x(?<!\w.)ox[abposr]-[A-Za-z0-9\-]{10,}"),  # Slack tokens
    ("TOKEN", "secret", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}"),  # Slack webhook URL
    ("TOKEN", "secret", r"A(?<!\w.)Iza[0-9A-Za-z_\-]{35}"),  # Google API key
    ("TOKEN", "secret", r"[srp](?<!\w.)k_(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe
    ("TOKEN", "secret", r"c(?<!\w.)m_[0-9a-f]{8}_[A-Za-z0-9_\-]{43}"),  # chatmon's own API keys
    ("TOKEN", "secret", r"e(?<![\w\-].)yJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWT
    # `password = hunter22`, `"api_key": "…"`, `AWS_SECRET_ACCESS_KEY=…`: keep the name, drop the value.
    (
        "ASSIGN", "secret",
        r"[AaSsPpCc](?<!\w.)(?i:ws_secret(?:_access)?_key|ecret(?:_access)?_key|pi[_\-]?key|pikey"
        r"|ccess[_\-]?token|uth[_\-]?token|lient[_\-]?secret|assword|asswd|wd)"
        r"[\"']?[ \t]*[:=][ \t]*[\"']?(?!\[SECRET\])[^\s\"',;]{6,}",
    ),
    ("EMAIL", "email", r"[^\W_](?<![\w.+\-].)[\w.%+\-]{0,63}@[^\W_](?:[\w\-]{0,62}\.)+[^\W\d_]{2,24}\b"),
    ("IBAN", "digit", r"[A-Z](?<!\w.)[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
    # IPv4 before cards/phones: dotted quads are not numbers. Versions (v1.2.3.4, 1.2.3.4.5) are not matched.
    ("IPV4", "digit", r"[0-9](?<![\w.].)[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?!\w|\.\d)"),
    # Hex groups with colons; the ipaddress module decides. Times (12:30:45) and MACs fail there.
    ("IPV6", "colon", r"[0-9A-Fa-f:](?<![\w:.].)[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?<!\.)(?![\w:])"),
    ("CARD", "digit", r"[0-9](?<![\w\-].)(?:[ \-]?[0-9]){12,18}(?![\w\-])"),
    # International: +CC or 00CC, then more digits in groups.
    ("PHONE", "digit", r"\+(?<![\w+\-/.].)[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,5}\)?){2,6}(?![\w\-/]|\.\d)"),
    (
        "PHONE", "digit",
        r"[0-9(](?<![\w+\-/.].)(?:"
        r"(?<=0)0[1-9][0-9]{0,2}(?:[ .\-]?\(?[0-9]{1,5}\)?){2,6}"  # 00CC international
        r"|(?<=\()[0-9]{3}\)[ .\-]?[0-9]{3}[ .\-][0-9]{4}"  # (555) 123-4567
        r"|(?<=[0-9])[0-9]{2}[.\-][0-9]{3}[.\-][0-9]{4}"  # 555-123-4567, 555.123.4567
        r"|(?<=0)[0-9]{2,4}[ \-][0-9]{3,4}[ \-]?[0-9]{3,4}"  # 020 7946 0958, 07700 900123
        r")(?![\w\-/]|\.\d)",
    ),
]

_FAMILIES = ("secret", "email", "digit", "colon")
_SECRET_HINTS = (
    "-----begin", "bearer", "sk-", "akia", "asia", "abia", "acca", "gh", "xox", "aiza", "_live_", "_test_",
    "cm_", "eyj", "hooks.slack", "secret", "apikey", "api_key", "api-key", "token", "passw", "pwd",
)
_DIGIT = re.compile(r"[0-9]")


def _pattern_compile(families: frozenset[str]) -> re.Pattern | None:
    chosen = [(n, r) for n, f, r in _ALTERNATIVES if f in families]
    if not chosen:
        return None
    marks: dict[str, int] = {}
    parts = []
    for name, regex in chosen:
        marks[name] = marks.get(name, 0) + 1
        parts.append(f"{regex}(?P<{name}_{marks[name]}>)")
    return re.compile("|".join(parts))


# One compiled pattern per combination of families present (16 at most), built at import.
_PATTERNS = {
    families: _pattern_compile(families)
    for families in (frozenset(f for i, f in enumerate(_FAMILIES) if mask >> i & 1) for mask in range(1 << len(_FAMILIES)))
}
_PHONE_ONLY = re.compile("|".join(f"(?:{r})" for n, _, r in _ALTERNATIVES if n == "PHONE"))


def _families_present(text: str) -> frozenset[str]:
    """Cheap C-speed checks that rule whole families out before the regex pass."""
    found = []
    low = text.lower()
    if any(hint in low for hint in _SECRET_HINTS):
        found.append("secret")
    if "@" in text:
        found.append("email")
    if _DIGIT.search(text):
        found.append("digit")
        if ":" in text:
            found.append("colon")
    return frozenset(found)


_CARD_PREFIXES = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[4-7]|3[0689]|6(?:011|5|4[4-9]|2)|50|5[6-8])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    # Letters count as 10..35; int() on the joined digits is fast for ≤ 34 characters.
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _card_valid(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIXES.match(digits)) and luhn_valid(digits)


def _phone_valid(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if candidate.startswith("00"):
        digits -= 2
    return 7 <= digits <= 15


_ASSIGN_NAME = re.compile(r"[^:=]*[:=][ \t]*[\"']?")


def _ipv6_valid(candidate: str) -> bool:
    # "a::b"-like words and times are not addresses: require a digit and two colons in a row or 8 groups.
    if not any(c.isdigit() for c in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def redact(text: str) -> tuple[str, dict[str, int]]:
    """The text with PII and secrets replaced by [KIND] placeholders, and the count per kind."""
    if not text:
        return text, {}
    counts: dict[str, int] = {}

    def replace(match: re.Match) -> str:
        group = match.lastgroup.rsplit("_", 1)[0]
        value = match.group()
        if group == "PEM" or group == "TOKEN":
            kind, replacement = SECRET, "[SECRET]"
        elif group == "BEARER":
            kind, replacement = SECRET, f"{value.split()[0]} [SECRET]"
        elif group == "ASSIGN":
            name = _ASSIGN_NAME.match(value)
            kind, replacement = SECRET, f"{name.group() if name else ''}[SECRET]"
        elif group == "EMAIL":
            kind, replacement = EMAIL, "[EMAIL]"
        elif group == "IBAN":
            if not iban_valid(value):
                return value
            kind, replacement = IBAN, "[IBAN]"
        elif group == "IPV4":
            if not all(int(octet) <= 255 for octet in value.split(".")):
                return value
            kind, replacement = IP, "[IP]"
        elif group == "IPV6":
            if not _ipv6_valid(value):
                return value
            kind, replacement = IP, "[IP]"
        elif group == "CARD":
            if _card_valid(value):
                kind, replacement = CARD, "[CARD]"
            elif _PHONE_ONLY.fullmatch(value) and _phone_valid(value):
                kind, replacement = PHONE, "[PHONE]"
            else:
                return value
        else:  # PHONE
            if not _phone_valid(value):
                return value
            kind, replacement = PHONE, "[PHONE]"
        counts[kind] = counts.get(kind, 0) + 1
        return replacement

    pattern = _PATTERNS[_families_present(text)]
    if pattern is None:
        return text, counts
    return pattern.sub(replace, text), counts


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

