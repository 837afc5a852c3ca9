"""Regular expressions on client text: RE2 only, so matching time is linear in the text length.

Python's `re` backtracks: a pattern with nested quantifiers (`(\\w+\\s?)+$`) costs exponential
time on a text that almost matches, and chatmon runs patterns on text that anyone can send.
RE2 (google-re2) runs every pattern as an automaton; the price is no backreferences and no
lookaround, and its `\\w`, `\\d`, `\\s` and `\\b` are ASCII only. The constants below spell
Python's Unicode classes out for patterns that need them.

Texts are matched as bytes (`text_bytes`, `char_classes`): encoded once, whatever the number of
patterns run on them (the wrapper would re-encode a `str` on every call).

Patterns that need Python's Unicode classes inside counted repetitions (`[\\w.]{0,63}`) would
compile to hundreds of thousands of RE2 instructions (each Unicode class is ~1,300), past the
memory of RE2's DFA. They run on `char_classes(text)` instead: one Latin-1 byte per character,
ASCII as itself and every other character as the byte of its class (0x80-0x86, below), so classes are
a few bytes, offsets are character offsets, and results are those of `re` on the text.
"""

import re2

# Contents of a character class (use inside [...]): Python's Unicode \w, \d and \s.
WORD = r"\pL\pN_"
DIGIT = r"\p{Nd}"
SPACE = r"\t\n\x0b\f\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"

# Lone surrogates are valid in a Python str but not in UTF-8: RE2 sees them as U+FFFD.
_SURROGATES = {code: "\ufffd" for code in range(0xD800, 0xE000)}

# Bytes: 0x80 \w but not \d (letters, ², Ⅻ), 0x81 \d beyond 0-9 (٣, ३), 0x82 \s beyond ASCII
# (no-break space, U+2028), 0x83 anything else (lone surrogates included), 0x84-0x86 below.
FOLDS_TO = {"s": "\\x84", "k": "\\x85", "i": "\\x86"}  # ſ, K (Kelvin), ı and İ: \w letters too
SHADOW_WORD = "A-Za-z0-9_\\x80\\x81\\x84-\\x86"
SHADOW_ALNUM = "A-Za-z0-9\\x80\\x81\\x84-\\x86"  # [^\W_]
SHADOW_LETTER = "A-Za-z\\x80\\x84-\\x86"  # [^\W\d_]
SHADOW_DIGIT = "0-9\\x81"
SHADOW_SPACE = "\\t\\n\\x0b\\f\\r\\x1c-\\x1f \\x82"
_FOLDED = {"\u017f": 0x84, "\u212a": 0x85, "\u0131": 0x86, "\u0130": 0x86}


class _ClassTable(dict):
    """str.translate table: a non-ASCII code point → its class byte (as a one-char str), cached."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char in _FOLDED:
            byte = _FOLDED[char]
        elif char.isdecimal():
            byte = 0x81
        elif char.isalnum():
            byte = 0x80
        elif char.isspace():
            byte = 0x82
        else:
            byte = 0x83
        if len(self) < 100_000:  # bounded: there are only so many code points a chat uses
            self[code] = chr(byte)
        return chr(byte)


_CLASS_TABLE = _ClassTable({code: chr(code) for code in range(128)})  # ASCII as itself


def char_classes(text: str) -> bytes:
    """One byte per character of `text` (see the module docstring); match with latin1=True patterns."""
    if text.isascii():
        return text.encode("ascii")
    return text.translate(_CLASS_TABLE).encode("latin-1")


RegexError = re2.error
regex_escape = re2.escape  # non-ASCII characters are left as they are
Pattern = re2._Regexp


def regex_compile(pattern: str, *, ignore_case: bool = False, latin1: bool = False) -> Pattern:
    """An RE2 pattern; raises RegexError (with RE2's message as a str) if RE2 cannot run it.

    latin1: the pattern runs on char_classes() bytes (it is ASCII, with \\x80… escapes).
    """
    options = re2.Options()
    options.log_errors = False  # the error is raised to the caller; RE2 would also print it
    options.case_sensitive = not ignore_case
    if latin1:
        options.encoding = re2.Options.Encoding.LATIN1
    try:
        return re2.compile(pattern.encode("latin-1") if latin1 else pattern, options)
    except re2.error as exc:
        message = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        raise RegexError(message) from None


UNANCHORED = _UNANCHORED = re2._Anchor.UNANCHORED
ANCHOR_START = re2._Anchor.ANCHOR_START
ANCHOR_BOTH = re2._Anchor.ANCHOR_BOTH
_NO_SPAN = (-1, -1)


def raw_match(pattern: Pattern):
    """RE2's own Match(anchor, data, pos, endpos) of `pattern`: a list of (start, end) per group,
    $0 first, (-1, -1) for no match or a group that did not take part. For loops over dense
    candidates: a call costs ~0.7 µs, the wrapper's match object as much again. Note that endpos
    is the end of the text for \\z and the DFA; pass len(data) unless you mean it."""
    return pattern._regexp.Match


def search_spans(pattern: Pattern, data: bytes, position: int) -> list[tuple[int, int]] | None:
    """pattern.search(data, position) as RE2's raw (start, end) per group, (-1, -1) for a group
    that did not take part; None for no match. Skips the wrapper's generator and match object,
    which cost more than the search itself when a text is dense with candidates."""
    spans = pattern._regexp.Match(_UNANCHORED, data, position, len(data))
    return None if spans[0] == _NO_SPAN else spans


def text_bytes(text: str) -> bytes:
    """The UTF-8 of `text` for RE2 patterns, lone surrogates as U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.translate(_SURROGATES).encode("utf-8")


# What RE2 calls "invalid perl operator: (?=" etc., in words for staff writing rules.
_OPERATORS = [
    ("(?<=", "lookbehind (?<=…)"),
    ("(?<!", "negative lookbehind (?<!…)"),
    ("(?=", "lookahead (?=…)"),
    ("(?!", "negative lookahead (?!…)"),
    ("(?>", "atomic group (?>…)"),
    ("(?(", "conditional group (?(…)…)"),
    ("(?#", "comment group (?#…)"),
]


def _construct(pattern: str, message: str) -> str | None:
    """The unsupported construct RE2's `message` is about, in words; None for plain syntax errors."""
    escape = message.removeprefix("invalid escape sequence: ")
    if escape != message:
        if escape[1:2].isdigit():
            return f"backreference {escape} is not supported"
        if escape == "\\Z":
            return "\\Z is not supported (use \\z for the end of the text)"
        return f"the escape {escape} is not supported"
    operator = message.removeprefix("invalid perl operator: ")
    if operator != message:
        if operator == "(?P" and "(?P=" in pattern:
            return "named backreference (?P=name) is not supported"
        for prefix, words in _OPERATORS:
            if operator.startswith(prefix):
                return f"{words} is not supported"
        return f"the group {operator} is not supported"
    repetition = message.removeprefix("bad repetition operator: ")
    if repetition != message and len(repetition) == 2 and repetition.endswith("+"):
        return f"possessive quantifier {repetition} is not supported"
    return None


def regex_problem(pattern: str, *, ignore_case: bool = False) -> str | None:
    """Why RE2 cannot run `pattern` (the construct named, then RE2's own message), or None."""
    try:
        regex_compile(pattern, ignore_case=ignore_case)
    except RegexError as exc:
        message = str(exc.args[0])
        construct = _construct(pattern, message)
        return f"{construct} (RE2: {message})" if construct else f"RE2 cannot compile it: {message}"
    return None
