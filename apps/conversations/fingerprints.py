"""A step's fingerprint: SQL with its literals replaced, so `… WHERE id = 7` and `… WHERE id = 9`
are one query in the steps analysis (the chat-logging design's /sql-queries/analysis).

A hand tokenizer, one pass over the text (linear time whatever a client sends; no regex):

1. String literals ('…', with '' inside) and numbers become `?`; so do $1 / :name / %s
   placeholders, which already stand for literals.
2. Comments (-- … and /* … */) go; runs of white space become one space; words are lower-cased;
   "quoted identifiers" stay as written.
3. A parenthesised list of `?` only — `IN (1, 2, 3)` — becomes `(?)`, whatever its length.

Other steps (tools, retrievals, HTTP) are grouped by kind and name.
"""

import hashlib

MAX_SHAPE_CHARS = 2000


def sql_normalise(text: str) -> str:
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if char == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if char == "'":
            i += 1
            while i < n:
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            tokens.append("?")
            continue
        if char == '"' or char == "`":
            end = text.find(char, i + 1)
            end = n if end < 0 else end + 1
            tokens.append(text[i:end])
            i = end
            continue
        if char.isdigit() or (char == "." and i + 1 < n and text[i + 1].isdigit()):
            i += 1
            while i < n and (text[i].isalnum() or text[i] == "."):
                i += 1
            tokens.append("?")
            continue
        if char in "$:%" and i + 1 < n and (text[i + 1].isalnum() or text[i + 1] == "_"):
            if char == ":" and tokens and tokens[-1] == ":":  # PostgreSQL's ::type cast
                tokens.append(":")
                i += 1
                continue
            i += 1
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            tokens.append("?")
            continue
        if char == "?":
            tokens.append("?")
            i += 1
            continue
        if char.isalpha() or char == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] in "_$"):
                i += 1
            tokens.append(text[start:i].lower())
            continue
        tokens.append(char)
        i += 1
    return _join(_lists_fold(tokens))


def _lists_fold(tokens: list[str]) -> list[str]:
    """( ? , ? , … ) → ( ? ): each token is looked at a bounded number of times."""
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        if tokens[i] == "(" and i + 1 < n and tokens[i + 1] == "?":
            j = i + 2
            while j + 1 < n and tokens[j] == "," and tokens[j + 1] == "?":
                j += 2
            if j < n and tokens[j] == ")":
                out += ["(", "?", ")"]
                i = j + 1
                continue
        out.append(tokens[i])
        i += 1
    return out


def _join(tokens: list[str]) -> str:
    parts: list[str] = []
    for token in tokens:
        if parts and not (token in ",)." or parts[-1] in "(." or (token == ":" or parts[-1] == ":")):
            parts.append(" ")
        parts.append(token)
    return "".join(parts)


def step_fingerprint(*, kind: str, name: str, input_text: str) -> tuple[str, str]:
    """(fingerprint, shape) of a step: SQL by its normalised text, other kinds by their name."""
    shape = sql_normalise(input_text) if kind == "sql" and input_text else f"{kind}:{name}"
    return hashlib.sha1(shape.encode(), usedforsecurity=False).hexdigest(), shape[:MAX_SHAPE_CHARS]
