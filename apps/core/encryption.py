"""Secrets at rest (an experiment target's headers): encrypted in the database, readable by the
process that holds SECRET_KEY.

1. The key: HKDF-SHA256 over SECRET_KEY (with a purpose-specific `info`, so the key is not the
   one Django signs with), as a Fernet key (AES-128-CBC + HMAC-SHA256, authenticated: a changed
   or foreign token is refused, never decrypted to garbage).
2. Rotation: the current SECRET_KEY encrypts; it and every SECRET_KEY_FALLBACKS entry decrypt
   (Fernet's MultiFernet), so after a rotation the old key stays in SECRET_KEY_FALLBACKS until
   `manage.py secrets_reencrypt` has rewritten every secret under the new key (SECURITY.md).
3. A value that no configured key opens (SECRET_KEY replaced without the fallback) reads as an
   `UnreadableSecret`: code that needs the secret says so and staff enter it again; saving the
   row keeps the ciphertext as it is, so it opens again once the old key is a fallback.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

_INFO = b"chatmon secrets at rest v1"
_SALT = b"chatmon.core.encryption"


class UnreadableSecret(str):
    """A stored secret that no configured key decrypts; the str value is its ciphertext."""

    MESSAGE = (
        "the stored secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS "
        "(SECRET_KEY was changed without keeping the old one as a fallback): enter it again"
    )


def _fernet_key(secret_key: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(
        secret_key.encode()
    )
    return base64.urlsafe_b64encode(derived)


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


def _current() -> MultiFernet:
    return _fernet((settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])))


def secret_encrypt(plaintext: str) -> str:
    """A Fernet token (ASCII) of plaintext under the current SECRET_KEY."""
    return _current().encrypt(plaintext.encode()).decode("ascii")


def secret_decrypt(token: str) -> str:
    """The plaintext; raises InvalidToken when no configured key opens it."""
    return _current().decrypt(token.encode("ascii")).decode()


class EncryptedJSONField(models.TextField):
    """A JSON value stored as a Fernet token in a text column (never queried by content)."""

    description = "JSON encrypted at rest with a key derived from SECRET_KEY"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None or value == "":
            return self.get_default()
        try:
            return json.loads(secret_decrypt(value))
        except (InvalidToken, UnicodeError, ValueError):
            return UnreadableSecret(value)

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, UnreadableSecret):
            return str(value)  # keep the ciphertext: it opens again with the old key restored
        return secret_encrypt(json.dumps(value, ensure_ascii=False))

    def value_to_string(self, obj: models.Model) -> str:
        # Fixtures and dumpdata carry the ciphertext, never the plaintext.
        return self.get_prep_value(self.value_from_object(obj)) or ""
