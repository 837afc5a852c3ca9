"""Token counting with tiktoken, offline-safe.

1. Pick the encoding for the model (o200k_base for gpt-4o/4.1/5 and the o-series, cl100k_base for
   gpt-4/3.5 and the ada/3 embeddings, TIKTOKEN_DEFAULT_ENCODING otherwise).
2. Load it once per process. If TIKTOKEN_ENCODINGS_DIR holds `<encoding>.tiktoken`, seed
   tiktoken's cache from it first, so nothing is downloaded.
3. If the encoding cannot be loaded (no file, no network), estimate (≈ 4 characters a token) and
   say so: counts are then marked estimated. Ingest never fails because of token counting.
"""

import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002")
_encodings: dict[str, object | None] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class TokenCount:
    tokens: int
    estimated: bool


def encoding_name_for(model: str) -> str:
    name = (model or "").lower().split("/")[-1]
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return settings.TIKTOKEN_DEFAULT_ENCODING


def _cache_file(cache_dir: Path, name: str) -> Path:
    """Where tiktoken looks for an encoding: its cache keys files by the SHA-1 of the URL."""
    return cache_dir / hashlib.sha1(_BLOB_URL.format(name=name).encode()).hexdigest()


def _seed_cache_from_encodings_dir(name: str) -> None:
    source_dir = settings.TIKTOKEN_ENCODINGS_DIR
    if not source_dir:
        return
    source = Path(source_dir) / f"{name}.tiktoken"
    if not source.is_file():
        return
    cache_dir = Path(
        settings.TIKTOKEN_CACHE_DIR or os.environ.get("TIKTOKEN_CACHE_DIR") or Path(tempfile.gettempdir()) / "chatmon-tiktoken"
    )
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = _cache_file(cache_dir, name)
    if not target.exists():
        shutil.copyfile(source, target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)


def _offline_and_missing(name: str) -> bool:
    """True when a cache dir is configured but lacks the file: loading would try the network."""
    cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache_dir:
        return False
    target = _cache_file(Path(cache_dir), name)
    return not target.exists()


def get_encoding(name: str):  # -> tiktoken.Encoding | None
    if name in _encodings:
        return _encodings[name]
    with _lock:
        if name in _encodings:
            return _encodings[name]
        encoding = None
        try:
            import tiktoken

            if settings.TIKTOKEN_CACHE_DIR:
                os.environ["TIKTOKEN_CACHE_DIR"] = settings.TIKTOKEN_CACHE_DIR
            _seed_cache_from_encodings_dir(name)
            if _offline_and_missing(name):
                raise FileNotFoundError(f"{name}.tiktoken is not in the tiktoken cache")
            encoding = tiktoken.get_encoding(name)
        except Exception as exc:  # noqa: BLE001 - any failure falls back to estimates
            logger.warning("tiktoken encoding %s unavailable, estimating token counts: %s", name, exc)
        _encodings[name] = encoding
        return encoding


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


def count_tokens(text: str, *, model: str) -> TokenCount:
    if not text:
        return TokenCount(0, False)
    encoding = get_encoding(encoding_name_for(model))
    if encoding is None:
        return TokenCount(estimate_tokens(text), True)
    return TokenCount(len(encoding.encode_ordinary(text)), False)


def reset_cache() -> None:
    """Forget loaded encodings (tests that change the settings)."""
    with _lock:
        _encodings.clear()
