"""chatmon settings: one module, every value from the environment (see README "Configuration").

Embedded default (no variables set): SQLite in the project directory, Celery tasks run eagerly
in-process, local-memory cache, offline judge and embedding backends.
Production: DATABASE_URL (PostgreSQL), REDIS_URL (broker + cache), SECRET_KEY, ALLOWED_HOSTS,
and OPENAI_API_KEY / OPENAI_BASE_URL for the judge and embeddings.
"""

import ipaddress
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from apps.core.choices import Queue
from chatmon.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = env_bool("DEBUG", False)
# The default key is only good for a laptop; `check --deploy` flags the "django-insecure" prefix.
SECRET_KEY = env_str("SECRET_KEY", "django-insecure-chatmon-development-key-change-me-0123456789")
# Earlier keys during a rotation: sessions, signatures and encrypted secrets made with them stay
# valid (SECURITY.md "Rotating secrets").
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    # chatmon's own admin site: its index page is the dashboard (apps/review/admin_site.py).
    "apps.review.admin_site.ChatmonAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "apps.core",
    "apps.audit",
    "apps.chatbots",
    "apps.conversations",
    "apps.ingest",
    "apps.risk",
    "apps.evaluations",
    "apps.feedback",
    "apps.clustering",
    "apps.alerts",
    "apps.review",
    "apps.privacy",
    "apps.otel",
    "apps.scores",
    "apps.datasets",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Bot, OTLP and Langfuse-API requests skip the rest (browser and staff middleware).
    "apps.core.middleware.MachineClientMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.core.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    # Audit receivers name the user behind a configuration change (API keys, rules, channels).
    "apps.audit.middleware.AuditActorMiddleware",
]

# Paths of API-key clients that need none of the browser middleware, and the only middleware
# after MachineClientMiddleware that they run.
MACHINE_CLIENT_PATH_PREFIXES = ["/api/v1/ingest/", "/v1/", "/api/public/"]
MACHINE_CLIENT_MIDDLEWARE = ["apps.audit.middleware.AuditActorMiddleware"]

ROOT_URLCONF = "chatmon.urls"
WSGI_APPLICATION = "chatmon.wsgi.application"
ASGI_APPLICATION = "chatmon.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Empty counts as unset, so `DATABASE_URL= make demo` means the embedded SQLite file.
DATABASE_URL = env_str("DATABASE_URL", "") or f"sqlite:///{BASE_DIR / 'chatmon.sqlite3'}"
# The health check pings (SELECT 1) a persistent connection before each request reuses it.
DB_CONN_HEALTH_CHECKS = env_bool("DB_CONN_HEALTH_CHECKS", True)
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=DB_CONN_HEALTH_CHECKS
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the eager demo, the dev server and the shell share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    # The ingest path's hot statements bind on the server and run as prepared statements after
    # this many uses on a connection (apps.core.db.prepared_cursor; every other query keeps
    # Django's client-side binding, which never prepares). 0 turns preparing off, as a
    # transaction-mode pgbouncer older than 1.21 needs.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        env_int("DB_PREPARE_THRESHOLD", 5) or None
    )
# A read replica for analysis only (apps/core/replica.py): the dashboard, the staff stats/API
# reads and exports read there; ingest and every write use "default". Unset: one database.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL", "")
REPLICA_READS_ENABLED = bool(DATABASE_REPLICA_URL)
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=DB_CONN_HEALTH_CHECKS
    )
DATABASE_ROUTERS = ["apps.core.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and cache ---------------------------------------------------------
# Redis is optional for correctness (SECURITY.md "Redis unreachable"): the cache fails open and a
# publish fails fast, so the timeouts are short (a local Redis answers in well under 1 ms) …
REDIS_URL = env_str("REDIS_URL", "")
REDIS_CONNECT_TIMEOUT_SECONDS = env_float("REDIS_CONNECT_TIMEOUT_SECONDS", 0.05)
REDIS_SOCKET_TIMEOUT_SECONDS = env_float("REDIS_SOCKET_TIMEOUT_SECONDS", 0.05)
# … and after a failure each process leaves Redis alone this long (cache: misses; broker: the
# sweepers enqueue the skipped work later).
REDIS_CIRCUIT_BREAKER_SECONDS = env_float("REDIS_CIRCUIT_BREAKER_SECONDS", 10.0)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "apps.core.cache.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "chatmon"),
            "TIMEOUT": 300,
            "OPTIONS": {
                "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None  # results land in the database, not in a result backend
# No broker configured → run every task in-process, at once (the embedded default).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_TASK_DEFAULT_QUEUE = Queue.DEFAULT
CELERY_TASK_ROUTES = {
    "apps.evaluations.tasks.*": {"queue": Queue.JUDGE},
    "apps.clustering.tasks.*": {"queue": Queue.ANALYSIS},
    "apps.alerts.tasks.*": {"queue": Queue.ALERTS},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Without this, a task whose ack is late survives a broker restart only this long before redelivery.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_SECONDS,
    "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
    # A producer connecting (kombu's default_channel) tries once instead of retrying for
    # broker_connection_timeout; the worker's consumer reconnects by its own loop.
    "max_retries": 0,
}
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_CONNECT_TIMEOUT_SECONDS
# A publish tries once (no 3 × 0.2 s retry loop inside a web request); what it could not send is
# re-enqueued by the sweepers. Workers still reconnect on their own (broker_connection_retry).
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The one place periodic work is declared; django-celery-beat copies it into editable rows.
CELERY_BEAT_SCHEDULE = {
    "alerts-check-every-minute": {
        "task": "apps.alerts.tasks.alert_rules_check",
        "schedule": 60.0,
        "options": {"queue": Queue.ALERTS, "expires": 55},
    },
    "judge-sweep-lost-turns": {
        "task": "apps.evaluations.tasks.judge_sweep",
        "schedule": 300.0,
        "options": {"queue": Queue.JUDGE, "expires": 290},
    },
    "conversation-judge-sweep": {
        # Idle conversations to judge as a whole, and lost conversation-judge tasks.
        "task": "apps.evaluations.tasks.conversation_judge_sweep",
        "schedule": 60.0,
        "options": {"queue": Queue.JUDGE, "expires": 55},
    },
    "clustering-scheduled-runs": {
        "task": "apps.clustering.tasks.clustering_schedule_due",
        "schedule": crontab(minute=15),
        "options": {"queue": Queue.ANALYSIS},
    },
    "privacy-retention-nightly": {
        "task": "apps.privacy.tasks.retention_purge",
        "schedule": crontab(hour=3, minute=30),
        "options": {"queue": Queue.DEFAULT},
    },
    "review-hourly-stats-refresh": {
        # Long windows read full past hours from the hourly rollup (apps.review.rollup).
        "task": "apps.review.tasks.hourly_stats_refresh",
        "schedule": 60.0,
        "options": {"queue": Queue.DEFAULT, "expires": 55},
    },
    "experiment-runs-sweep": {
        # Experiment runs whose chunks were lost (broker down at queue time, a dead worker).
        "task": "apps.datasets.tasks.experiment_runs_sweep",
        "schedule": 300.0,
        "options": {"queue": Queue.JUDGE, "expires": 290},
    },
    "otel-pending-content-sweep": {
        "task": "apps.otel.tasks.pending_content_sweep",
        "schedule": 300.0,
        "options": {"queue": Queue.DEFAULT, "expires": 290},
    },
}
# No broker and DEBUG (`make demo`): `manage.py demo_server` runs the schedule above in a thread of
# the dev server (apps/core/scheduler.py). Never under gunicorn, Celery or tests; off in production.
EMBEDDED_SCHEDULER = env_bool("EMBEDDED_SCHEDULER", DEBUG and not REDIS_URL)

# --- Auth, passwords, login throttling -----------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("LOGIN_COOLOFF_HOURS", 0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind the shipped nginx every request comes from nginx's address: the lockout reads the client
# address the same way the API's per-IP limits do (TRUSTED_PROXY_COUNT), not REMOTE_ADDR.
AXES_CLIENT_IP_CALLABLE = "apps.core.client_ip.client_ip"
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler" if REDIS_URL else "axes.handlers.database.AxesDatabaseHandler"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env_str(
            "STATICFILES_STORAGE", "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production values whenever DEBUG is off) ------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", True) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 10 * 1024 * 1024)

# --- REST framework and OpenAPI ------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_FILTER_BACKENDS": ["apps.core.api.StrictFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_PARSER_CLASSES": ["apps.core.api.StrictJSONParser"],
    # Without this DRF trusts any X-Forwarded-For, so a client could dodge per-IP rate limits.
    # 0 (clients connect directly: the header is ignored) unless told how many proxies set it;
    # the shipped nginx (deploy/nginx.conf) replaces the header, so compose sets 1.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0),
    "DEFAULT_THROTTLE_RATES": {
        "ingest": env_str("INGEST_RATE_LIMIT", "6000/min"),
        "feedback_ip": env_str("FEEDBACK_RATE_LIMIT_IP", "60/min"),
        "feedback_token": env_str("FEEDBACK_RATE_LIMIT_TOKEN", "10/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "chatmon API",
    "DESCRIPTION": "Ingest API for bots, public feedback API, and the staff API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "/static/chatmon/favicon.svg",
    # No badge from validator.swagger.io: the CSP allows images from this site only.
    "SWAGGER_UI_SETTINGS": {"validatorUrl": None, "deepLinking": True, "persistAuthorization": False},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models share field names with different choices; name the enums explicitly.
    "ENUM_NAME_OVERRIDES": {
        "RiskLevelEnum": "apps.conversations.choices.RiskLevel",
        "ReviewStatusEnum": "apps.conversations.choices.ReviewStatus",
        "EvaluationStatusEnum": "apps.evaluations.choices.EvaluationStatus",
        "AlertEventStatusEnum": "apps.alerts.choices.EventStatus",
        "ClusterRunStatusEnum": "apps.clustering.choices.RunStatus",
        "RatingEnum": "apps.feedback.choices.Rating",
    },
}

# --- Email ---------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "chatmon <chatmon@localhost>")

# --- chatmon: models and providers ---------------------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "") or None
OPENAI_TIMEOUT_SECONDS = env_float("OPENAI_TIMEOUT_SECONDS", 30.0)
# "openai" when a key is configured, else the offline "heuristic" evaluator.
JUDGE_BACKEND = env_str("JUDGE_BACKEND", "openai" if OPENAI_API_KEY else "heuristic")
JUDGE_MODEL = env_str("JUDGE_MODEL", "gpt-4o-mini")
JUDGE_CONTEXT_TURNS = env_int("JUDGE_CONTEXT_TURNS", 3)
JUDGE_MAX_ATTEMPTS = env_int("JUDGE_MAX_ATTEMPTS", 6)
JUDGE_SWEEP_AFTER_MINUTES = env_int("JUDGE_SWEEP_AFTER_MINUTES", 10)
EMBEDDING_BACKEND = env_str("EMBEDDING_BACKEND", "openai" if OPENAI_API_KEY else "tfidf")
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "")
CLUSTER_LABEL_MODEL = env_str("CLUSTER_LABEL_MODEL", JUDGE_MODEL if OPENAI_API_KEY else "")

# --- chatmon: ingest -----------------------------------------------------------------------
# tiktoken's own cache (files named by the SHA-1 of the download URL) …
TIKTOKEN_CACHE_DIR = env_str("TIKTOKEN_CACHE_DIR", "")
# … or a folder of `<encoding>.tiktoken` files (cl100k_base, o200k_base) copied from anywhere:
# chatmon seeds tiktoken's cache from it, so offline machines count tokens exactly.
TIKTOKEN_ENCODINGS_DIR = env_str("TIKTOKEN_ENCODINGS_DIR", "")
# Encoding for models tiktoken has no mapping for (Claude, Gemini, Llama …): counts are close.
TIKTOKEN_DEFAULT_ENCODING = env_str("TIKTOKEN_DEFAULT_ENCODING", "o200k_base")
INGEST_MAX_BATCH = env_int("INGEST_MAX_BATCH", 1000)
INGEST_MAX_TEXT_CHARS = env_int("INGEST_MAX_TEXT_CHARS", 32000)
INGEST_MAX_METADATA_BYTES = env_int("INGEST_MAX_METADATA_BYTES", 16384)
INGEST_MAX_FUTURE_SECONDS = env_int("INGEST_MAX_FUTURE_SECONDS", 300)
API_KEY_LAST_USED_RESOLUTION_SECONDS = env_int("API_KEY_LAST_USED_RESOLUTION_SECONDS", 60)
# Per-process cache of API keys and their chatbots; revocation is immediate (a stamp in Redis).
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 10)
# Web and worker processes freeze their start-up objects out of the cyclic collector (chatmon/startup.py).
GC_FREEZE_AT_START = env_bool("GC_FREEZE_AT_START", True)

# --- chatmon: feedback, privacy ------------------------------------------------------------
FEEDBACK_TOKEN_MAX_AGE_SECONDS = env_int("FEEDBACK_TOKEN_MAX_AGE_SECONDS", 7 * 24 * 3600)
FEEDBACK_MAX_COMMENT_CHARS = env_int("FEEDBACK_MAX_COMMENT_CHARS", 2000)
# /demo/widget/ shows real turns: open to everyone only when asked (or DEBUG), else staff only.
FEEDBACK_DEMO_PUBLIC = env_bool("FEEDBACK_DEMO_PUBLIC", DEBUG)
# Key for the HMAC of end-user ids; defaults to SECRET_KEY so a laptop needs nothing set.
END_USER_HASH_KEY = env_str("END_USER_HASH_KEY", "") or SECRET_KEY

# /metrics answers only with `Authorization: Bearer <METRICS_TOKEN>` when this is set.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "apps.core.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env_str("LOG_FORMAT", "plain" if DEBUG else "json"),
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every outgoing request at INFO (webhooks, the judge): too chatty.
        "httpx": {"level": "WARNING"},
    },
}

# --- chatmon: judge (apps.evaluations) ---------------------------------------------------
# Longest user message / bot answer sent to the judge per turn (characters; the rest is cut).
JUDGE_MAX_MESSAGE_CHARS = env_int("JUDGE_MAX_MESSAGE_CHARS", 4000)
# Retry delay after a transient error: equal-jitter exponential backoff from this base, capped;
# a longer Retry-After from the provider wins.
JUDGE_RETRY_BACKOFF_SECONDS = env_float("JUDGE_RETRY_BACKOFF_SECONDS", 2.0)
JUDGE_RETRY_BACKOFF_MAX_SECONDS = env_float("JUDGE_RETRY_BACKOFF_MAX_SECONDS", 300.0)
# Embedded mode (tasks run in-process): the longest wait between judge retries.
JUDGE_EAGER_RETRY_MAX_SECONDS = env_float("JUDGE_EAGER_RETRY_MAX_SECONDS", 5.0)
# How long one worker holds an evaluation before another may take it over (a dead worker).
JUDGE_CLAIM_SECONDS = env_int("JUDGE_CLAIM_SECONDS", int(OPENAI_TIMEOUT_SECONDS * 4) + 30)
# Most turns one sweeper run re-enqueues.
JUDGE_SWEEP_BATCH = env_int("JUDGE_SWEEP_BATCH", 1000)

# --- chatmon: datasets and experiments (apps.datasets) ------------------------------------
# Items per experiment task (a run fans out in chunks) and model calls in flight per task.
EXPERIMENT_CHUNK_SIZE = env_int("EXPERIMENT_CHUNK_SIZE", 100)
EXPERIMENT_CONCURRENCY = env_int("EXPERIMENT_CONCURRENCY", 50)
# Attempts per item on transient errors (the judge's rules: 408/409/429/5xx, timeouts).
EXPERIMENT_MAX_ATTEMPTS = env_int("EXPERIMENT_MAX_ATTEMPTS", 4)
# An item regressed (improved) when its score fell (rose) by at least this much (0–10 scale).
EXPERIMENT_REGRESSION_DELTA = env_float("EXPERIMENT_REGRESSION_DELTA", 1.0)
# The sweep resumes a running run that made no progress for this long (its chunks were lost).
EXPERIMENT_SWEEP_AFTER_MINUTES = env_float("EXPERIMENT_SWEEP_AFTER_MINUTES", 10.0)

# The conversation judge: the longest prompt (system + transcript, tiktoken tokens) one
# conversation is judged with; longer conversations are shortened (first, last, flagged turns
# verbatim, the middle summarised or elided).
CONVERSATION_JUDGE_MAX_PROMPT_TOKENS = env_int("CONVERSATION_JUDGE_MAX_PROMPT_TOKENS", 6000)
# How far back the idle sweep looks for finished conversations not judged yet (hours): bounds
# its index range scan; conversations idle longer than this before the judge was on are skipped.
CONVERSATION_JUDGE_LOOKBACK_HOURS = env_int("CONVERSATION_JUDGE_LOOKBACK_HOURS", 48)
# Most conversations one sweep run sends to the judge.
CONVERSATION_JUDGE_SWEEP_BATCH = env_int("CONVERSATION_JUDGE_SWEEP_BATCH", 1000)

# --- chatmon: clustering (apps.clustering) -----------------------------------------------
# What is embedded per thumbs-down turn: "user" (the user message; clusters better, see
# docs/BENCHMARKS.md) or "user_bot" (user message + bot answer).
CLUSTERING_TEXT_MODE = env_str("CLUSTERING_TEXT_MODE", "user")
CLUSTERING_MIN_TURNS = env_int("CLUSTERING_MIN_TURNS", 10)
CLUSTERING_MIN_CLUSTER_SIZE = env_int("CLUSTERING_MIN_CLUSTER_SIZE", 3)
# The newest N thumbs-down turns of the window are clustered (ward linkage is O(n²) memory).
CLUSTERING_MAX_TURNS = env_int("CLUSTERING_MAX_TURNS", 10000)
CLUSTERING_REPRESENTATIVES = env_int("CLUSTERING_REPRESENTATIVES", 5)
CLUSTERING_KEYWORDS = env_int("CLUSTERING_KEYWORDS", 8)
CLUSTERING_TASK_TIME_LIMIT = env_int("CLUSTERING_TASK_TIME_LIMIT", 1800)
# Failure signals a run selects by default (apps.clustering.choices.FailureSource; "all": every one).
CLUSTERING_SOURCES = env_list("CLUSTERING_SOURCES", ["all"])
# Two clusters of a run whose centres are at least this similar (cosine) are one theme: merged.
# Unset: the embedding backend's own default (tfidf 0.2, local/openai 0.85).
CLUSTERING_MERGE_SIMILARITY = env_float("CLUSTERING_MERGE_SIMILARITY", None)
# A theme continues a theme of the chatbot's previous run when their centres (embedded together)
# are at least this similar; otherwise it is new (drift). Unset: the backend's (tfidf 0.35, else 0.8).
CLUSTERING_DRIFT_SIMILARITY = env_float("CLUSTERING_DRIFT_SIMILARITY", None)
# OpenAI allows 2,048 inputs and 300k tokens per embeddings request, 8,191 tokens per input.
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 512)
EMBEDDING_BATCH_MAX_TOKENS = env_int("EMBEDDING_BATCH_MAX_TOKENS", 200000)
EMBEDDING_MAX_INPUT_CHARS = env_int("EMBEDDING_MAX_INPUT_CHARS", 8000)
FINETUNE_EXPORT_SYSTEM_PROMPT = env_str("FINETUNE_EXPORT_SYSTEM_PROMPT", "You are a helpful assistant.")

# --- chatmon: alerts (apps.alerts) -------------------------------------------------------
# Outgoing webhook/Slack/Discord requests: short, so a slow receiver cannot stall the alerts queue.
ALERTS_HTTP_TIMEOUT_SECONDS = env_float("ALERTS_HTTP_TIMEOUT_SECONDS", 5.0)
# Attempts per notification before it is marked failed (transient errors only: 5xx, 429, timeouts).
ALERTS_DELIVERY_MAX_ATTEMPTS = env_int("ALERTS_DELIVERY_MAX_ATTEMPTS", 5)
ALERTS_RETRY_BACKOFF_MAX_SECONDS = env_int("ALERTS_RETRY_BACKOFF_MAX_SECONDS", 600)
# Outgoing requests to staff-set URLs (apps.core.outbound) refuse loopback, private, link-local,
# multicast and reserved addresses; these CIDR ranges are let through (on-premises receivers).
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", [])
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {_network!r} is not a CIDR network") from _exc
# Per-turn risk alerts: the first goes out at once, then at most one digest per this many minutes.
ALERTS_RISK_DIGEST_MINUTES = env_int("ALERTS_RISK_DIGEST_MINUTES", 10)
# Risky turns whose report at ingest never ran (broker down) are reported by the minute check
# for this long after they were stored.
ALERTS_RISK_SWEEP_HOURS = env_int("ALERTS_RISK_SWEEP_HOURS", 24)

# --- chatmon: review and dashboard (apps.review) ------------------------------------------
# Dashboard / stats overview: turn figures are cached this long (0: always computed live).
REVIEW_STATS_CACHE_SECONDS = env_int("REVIEW_STATS_CACHE_SECONDS", 60)

# --- chatmon: privacy (apps.privacy) -----------------------------------------------------
# Conversations deleted per transaction by retention (short locks; the nightly run loops).
PRIVACY_RETENTION_BATCH = env_int("PRIVACY_RETENTION_BATCH", 500)
# HSTS preload is opt-in (SECURE_HSTS_PRELOAD=1): without it, check --deploy's W021 is a choice, not a mistake.
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", [] if SECURE_HSTS_PRELOAD else ["security.W021"])

# --- chatmon: OpenTelemetry ingest (apps.otel) -------------------------------------------
# POST /v1/traces and /v1/logs (OTLP/HTTP). Cap on the body as sent (413 above it) …
OTLP_MAX_REQUEST_BYTES = env_int("OTLP_MAX_REQUEST_BYTES", 16 * 1024 * 1024)
# … and once inflated (gzip/deflate); 64 MiB is the Python exporter's own default request cap.
OTLP_MAX_DECOMPRESSED_BYTES = env_int("OTLP_MAX_DECOMPRESSED_BYTES", 64 * 1024 * 1024)
# … and at most this many times the compressed size (a body may always inflate to 1 MiB): a
# 175 KB gzip bomb of 60 MB of JSON is refused after inflating 17.5 MB, not parsed.
OTLP_MAX_DECOMPRESSION_RATIO = env_int("OTLP_MAX_DECOMPRESSION_RATIO", 100)
# The work one export may cause: beyond these per-request counts the request is a 413 (the
# exporter must send smaller batches; its default batch is 512) …
OTLP_MAX_SPANS_PER_REQUEST = env_int("OTLP_MAX_SPANS_PER_REQUEST", 10_000)
OTLP_MAX_LOG_RECORDS_PER_REQUEST = env_int("OTLP_MAX_LOG_RECORDS_PER_REQUEST", 10_000)
OTLP_MAX_ATTRIBUTES_PER_REQUEST = env_int("OTLP_MAX_ATTRIBUTES_PER_REQUEST", 250_000)
# … and a span (or log record) over these is rejected alone in partial_success (the SDK's own
# defaults are 128 attributes and 128 events per span).
OTLP_MAX_ATTRIBUTES_PER_SPAN = env_int("OTLP_MAX_ATTRIBUTES_PER_SPAN", 256)
OTLP_MAX_EVENTS_PER_SPAN = env_int("OTLP_MAX_EVENTS_PER_SPAN", 256)
# Log-event content waiting for its span is kept this long, then purged.
OTLP_PENDING_CONTENT_HOURS = env_int("OTLP_PENDING_CONTENT_HOURS", 24)
# Longest time between a span's start and its first content event (how far back to look).
OTLP_LOG_SPAN_WINDOW_MINUTES = env_int("OTLP_LOG_SPAN_WINDOW_MINUTES", 60)
# Langfuse scores under these names are the end user's thumbs (1/true/"up" or 0/-1/false/"down");
# other names are stored as chatmon scores (apps.otel.langfuse).
LANGFUSE_FEEDBACK_SCORE_NAMES = env_list("LANGFUSE_FEEDBACK_SCORE_NAMES", ["user-feedback", "thumbs", "feedback"])
