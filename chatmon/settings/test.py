"""Settings for the test suite: the production module plus what tests must not depend on."""

import os
import secrets

from chatmon.settings import *  # noqa: F403
from chatmon.settings import DATABASES, REST_FRAMEWORK

# DEBUG is off here as in production, so the key must pass chatmon.E001: a long random one per
# run (tests/conftest.py hands it to the server and worker processes the tests start).
SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(64)
END_USER_HASH_KEY = os.environ.get("END_USER_HASH_KEY") or SECRET_KEY

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests call tasks in-process; the wiring tests start a real worker and switch this off.
CELERY_TASK_ALWAYS_EAGER = True
EMBEDDED_SCHEDULER = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
AXES_ENABLED = True
JUDGE_BACKEND = "heuristic"
# Tests count tokens with the real BPE files from ../shared/data/tiktoken when present.
_SHARED_TIKTOKEN = BASE_DIR.parent / "shared" / "data" / "tiktoken"  # noqa: F405
TIKTOKEN_ENCODINGS_DIR = str(_SHARED_TIKTOKEN) if _SHARED_TIKTOKEN.is_dir() else ""
EMBEDDING_BACKEND = "tfidf"
CLUSTER_LABEL_MODEL = ""
OPENAI_API_KEY = ""
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
    **REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
    "ingest": "100000/min",
}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}
# A second alias on the same test database (TEST MIRROR), so tests can prove which queries the
# replica router sends where; routing to it stays off unless a test turns REPLICA_READS_ENABLED on.
DATABASES["replica"] = {**DATABASES["default"], "TEST": {**DATABASES["default"].get("TEST", {}), "MIRROR": "default"}}
REPLICA_READS_ENABLED = False
