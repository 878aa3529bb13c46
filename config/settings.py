"""Settings, read from the environment.

With no environment variables at all the project runs embedded: SQLite, Celery
tasks executed eagerly in the web process, the in-memory channel layer. Setting
``DATABASE_URL`` and ``REDIS_URL`` selects the production stack (PostgreSQL,
Redis as Celery broker and as channel layer). Every variable is listed in the
README's configuration table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext

# Lets admin and model classes be subscripted for type checking (ModelAdmin[Profile]).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env_str(
    "DJANGO_SECRET_KEY", "embedded-insecure-key-set-DJANGO_SECRET_KEY-in-production"
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    # Version history of blocks and segments (editors' revert and audit log).
    "simple_history",
    "personalize",
    "segments",
    "content",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "personalize.middleware.VisitorMiddleware",
    # Records the acting editor on every history row.
    "simple_history.middleware.HistoryRequestMiddleware",
    # A staff editor previewing the site as an audience cannot write through the site.
    "content.preview.PreviewReadOnlyMiddleware",
    # After the visitor: writes the impressions a page's slots recorded, once per request.
    "content.measurement.ImpressionMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        # Site pages: Jinja2 templates in templates/ (the product owner's choice).
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "config.jinja2.environment"},
    },
    {
        # Django admin and DRF's browsable API ship Django templates.
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_POOL", default=True
):
    # psycopg's pool, not persistent connections: Django advises against
    # CONN_MAX_AGE under ASGI, and a new connection per request or task costs
    # more than the work itself on the hot paths (ingest, recompute, push).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "pool": {"min_size": 1, "max_size": env_int("DATABASE_POOL_MAX", 10), "timeout": 10}
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One embedded process serves HTTP, WebSockets and eager tasks from several
    # threads: WAL and a busy timeout keep those writers from failing on locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve static files from the ASGI process in both modes (no separate web server needed).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Uploads (bulk imports) ------------------------------------------------------
# Import files uploaded in admin are kept here (Django's default storage) until a
# worker has read them; the web process and the Celery worker must share it.
# Never served over HTTP: CRM exports hold personal data.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"

# --- Redis, Celery, Channels -------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
EMBEDDED = REDIS_URL == ""

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=EMBEDDED)
# With no worker, beat's schedule (CELERY_BEAT_SCHEDULE below) runs in each server
# process on a thread of its own (config/lifespan.py).
P13N_EMBEDDED_BEAT = env_bool("P13N_EMBEDDED_BEAT", default=CELERY_TASK_ALWAYS_EAGER)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "segments.tasks.*": {"queue": "segments"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request must not hang on a broker that is down: its events are committed
# already and the sweep re-queues their recompute (segments.services).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
CELERY_TIMEZONE = "UTC"
# How often due memberships (windows lapsing, absences completing) are swept.
SEGMENT_SWEEP_SECONDS = env_int("SEGMENT_SWEEP_SECONDS", 2)
# A recompute request not picked up by a worker within this long (broker down,
# worker crashed) is re-run by the sweep.
SEGMENT_STALE_REQUEST_SECONDS = env_int("SEGMENT_STALE_REQUEST_SECONDS", 30)
# With a worker, /v1/batch answers a batch larger than P13N_INLINE_BATCH_MAX once it
# is validated and committed to the ingest inbox, and the worker stores its events
# (personalize.services.accept_messages); with none (the embedded default) the
# request stores every batch itself.
P13N_DEFER_INGEST = env_bool("P13N_DEFER_INGEST", default=not CELERY_TASK_ALWAYS_EAGER)
# Batches of up to this many messages (a browser's; our snippet sends at most 50)
# are stored in the request even with a worker: what a visitor just did is then
# visible to their next page or block request.
P13N_INLINE_BATCH_MAX = env_int("P13N_INLINE_BATCH_MAX", 50)
# How often the sweep stores inbox batches whose task never ran.
PENDING_SWEEP_SECONDS = env_int("PENDING_SWEEP_SECONDS", 5)
# A gap longer than this between a profile's events starts a new session.
SESSION_TIMEOUT_MINUTES = env_int("SESSION_TIMEOUT_MINUTES", 30)
# --- Identity resolution (personalize.identity; docs/identity.md) ---------------
# No merge or attach makes a profile hold more ids than this (a shared device id
# would otherwise stitch strangers together); refused merges are recorded.
P13N_MAX_IDENTITIES_PER_PROFILE = env_int("P13N_MAX_IDENTITIES_PER_PROFILE", 100)
# Id values (compared trimmed, case-insensitive) that are never attached to a
# profile nor merge one: placeholders broken clients send, shared device ids.
# The last entry is the SHA-256 of an empty string (a hashed missing email).
P13N_NEVER_MERGE_IDS = env_list(
    "P13N_NEVER_MERGE_IDS",
    "undefined,null,none,nil,nan,0,-1,anonymous,unknown,"
    "00000000-0000-0000-0000-000000000000,"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
)
# Identify traits used as ids: two profiles sharing a value are merged.
P13N_STITCH_TRAITS = env_list("P13N_STITCH_TRAITS", "")
# Derive traits.email_sha256 (of the trimmed, lower-cased address) from a plain email.
P13N_HASH_EMAIL_TRAIT = env_bool("P13N_HASH_EMAIL_TRAIT", default=False)
# Events older than this many days are purged hourly (0: keep everything).
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 0)
# --- Event partitioning and dedupe horizon (personalize.partitions; docs/partitioning.md) ---
# On PostgreSQL the events table is partitioned by time: one partition per
# "day", "week" or "month" (UTC), created this many intervals ahead by a daily task
# and after every migrate. Retention drops whole partitions past its cutoff.
EVENT_PARTITION_INTERVAL = env_str("EVENT_PARTITION_INTERVAL", "month")
EVENT_PARTITIONS_AHEAD = env_int("EVENT_PARTITIONS_AHEAD", 3)
# A purged event's message id is remembered this many days more: a client
# retrying it meanwhile is told it is a duplicate instead of storing it again.
EVENT_DEDUPE_GRACE_DAYS = env_int("EVENT_DEDUPE_GRACE_DAYS", 30)
# --- Recommendations (content.recommendations) ---------------------------------
# Item-to-item collaborative filtering over the events below, recomputed by a
# scheduled job (0: not scheduled; `manage.py recompute_recommendations` still works).
RECOMMENDATIONS_INTERVAL_SECONDS = env_int("RECOMMENDATIONS_INTERVAL_SECONDS", 3600)
# Interactions older than this are left out of the job (and of a visitor's seeds).
RECOMMENDATIONS_LOOKBACK_DAYS = env_int("RECOMMENDATIONS_LOOKBACK_DAYS", 90)
# Neighbours kept per item.
RECOMMENDATIONS_NEIGHBOURS = env_int("RECOMMENDATIONS_NEIGHBOURS", 20)
# A visitor's most recent interactions that seed their recommendations.
RECOMMENDATIONS_PROFILE_EVENTS = env_int("RECOMMENDATIONS_PROFILE_EVENTS", 200)
# Which events are views, cart adds and purchases (our shop's names and Segment's
# e-commerce spec names), and what each is worth.
RECOMMENDATIONS_VIEW_EVENTS = env_list(
    "RECOMMENDATIONS_VIEW_EVENTS", "product_viewed,Product Viewed"
)
RECOMMENDATIONS_CART_EVENTS = env_list("RECOMMENDATIONS_CART_EVENTS", "add_to_cart,Product Added")
RECOMMENDATIONS_PURCHASE_EVENTS = env_list(
    "RECOMMENDATIONS_PURCHASE_EVENTS", "order_completed,Order Completed"
)
RECOMMENDATIONS_VIEW_WEIGHT = env_int("RECOMMENDATIONS_VIEW_WEIGHT", 1)
RECOMMENDATIONS_CART_WEIGHT = env_int("RECOMMENDATIONS_CART_WEIGHT", 3)
RECOMMENDATIONS_PURCHASE_WEIGHT = env_int("RECOMMENDATIONS_PURCHASE_WEIGHT", 5)

CELERY_BEAT_SCHEDULE = {
    # Batches the tracking API accepted whose task never ran (broker down, worker lost).
    "store-pending-events": {
        "task": "personalize.tasks.store_pending_events",
        "schedule": float(PENDING_SWEEP_SECONDS),
        "options": {"expires": float(PENDING_SWEEP_SECONDS) * 5},
    },
    "flip-due-memberships": {
        "task": "segments.tasks.recompute_due_profiles",
        "schedule": float(SEGMENT_SWEEP_SECONDS),
        "options": {"expires": float(SEGMENT_SWEEP_SECONDS) * 5},
    },
    "purge-expired-events": {
        "task": "personalize.tasks.purge_expired_events",
        "schedule": 3600.0,
        "options": {"expires": 1800.0},
    },
    # Partitions of the events table ahead of time (PostgreSQL; a no-op on SQLite).
    "create-event-partitions": {
        "task": "personalize.tasks.create_event_partitions",
        "schedule": 86400.0,
        "options": {"expires": 43200.0},
    },
    # Data quality: compare each source's last window with its recent normal.
    "check-data-quality": {
        "task": "personalize.tasks.check_data_quality",
        "schedule": 900.0,
        "options": {"expires": 600.0, "queue": "default"},
    },
}
# --- Segments admin: size history, over-segmentation guards, webhooks ----------
# (docs/segments-admin.md)
# How often every active segment's size is snapshotted for its chart (0: only
# after batch recomputes).
P13N_SEGMENT_SIZE_SNAPSHOT_SECONDS = env_int("P13N_SEGMENT_SIZE_SNAPSHOT_SECONDS", 900)
# Segments with fewer members than this are flagged as too small to act on.
P13N_SEGMENT_MIN_SIZE = env_int("P13N_SEGMENT_MIN_SIZE", 50)
# Two segments overlapping at least this much are flagged as near duplicates,
# measured as "containment" (share of the smaller inside the larger) or "jaccard".
P13N_SEGMENT_OVERLAP_THRESHOLD = float(env_str("P13N_SEGMENT_OVERLAP_THRESHOLD", "0.9"))
P13N_SEGMENT_OVERLAP_MEASURE = env_str("P13N_SEGMENT_OVERLAP_MEASURE", "containment")
if P13N_SEGMENT_OVERLAP_MEASURE not in ("containment", "jaccard"):
    raise ValueError("P13N_SEGMENT_OVERLAP_MEASURE must be containment or jaccard")
# Webhook deliveries: seconds to wait for the endpoint, retries (with exponential
# backoff) on 5xx, 429 and timeouts, and membership changes per POST.
P13N_WEBHOOK_TIMEOUT = env_int("P13N_WEBHOOK_TIMEOUT", 5)
P13N_WEBHOOK_MAX_RETRIES = env_int("P13N_WEBHOOK_MAX_RETRIES", 8)
P13N_WEBHOOK_BATCH = env_int("P13N_WEBHOOK_BATCH", 500)
CELERY_BEAT_SCHEDULE["requeue-pending-webhooks"] = {
    "task": "segments.tasks.deliver_pending_webhooks",
    "schedule": 300.0,
    "options": {"expires": 240.0},
}
if P13N_SEGMENT_SIZE_SNAPSHOT_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["record-segment-sizes"] = {
        "task": "segments.tasks.record_segment_sizes",
        "schedule": float(P13N_SEGMENT_SIZE_SNAPSHOT_SECONDS),
        "options": {"expires": float(P13N_SEGMENT_SIZE_SNAPSHOT_SECONDS) / 2},
    }
if RECOMMENDATIONS_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["recompute-recommendations"] = {
        "task": "content.tasks.recompute_recommendations",
        "schedule": float(RECOMMENDATIONS_INTERVAL_SECONDS),
        # A run missed by a busy worker is superseded by the next one.
        "options": {"expires": float(RECOMMENDATIONS_INTERVAL_SECONDS) / 2},
    }

# --- Published content catalog (content.catalog) ---------------------------------
# Each process keeps the published blocks ready for selection and rebuilds them when
# a write bumps the version stamp in the cache; this bounds how long it keeps them
# when nothing bumped (writes that bypass the ORM).
CONTENT_CATALOG_MAX_AGE_SECONDS = env_int("CONTENT_CATALOG_MAX_AGE_SECONDS", 30)

CHANNEL_LAYERS: dict[str, dict[str, Any]]
if EMBEDDED:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout, which kills the layer's 5 s blocking pop.
            "CONFIG": {
                "hosts": [
                    {"address": env_str("CHANNEL_LAYER_URL", REDIS_URL), "socket_timeout": 30}
                ]
            },
        }
    }

# Shared counters (rate limits): Redis on the production stack, so every web
# process counts against the same budget; process memory when embedded.
CACHES: dict[str, dict[str, Any]]
if EMBEDDED:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("CACHE_URL", REDIS_URL),
            "KEY_PREFIX": "p13n",
        }
    }

# --- API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.negotiation.FirstRendererNegotiation",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "p13n personalization API",
    "DESCRIPTION": "Segment-aware content blocks and behaviour tracking.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from our own static files: no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Product settings ----------------------------------------------------------
# Name of the write key our own pages embed for the JS snippet (created by load_demo).
P13N_WEB_SOURCE = env_str("P13N_WEB_SOURCE", "web")
# Events per second one source may send to the tracking API (0: no limit); over
# it, clients get 429 with Retry-After and retry later.
TRACKING_RATE_LIMIT = env_int("TRACKING_RATE_LIMIT", 5000)
# Events keep the caller's network (IPv4 /24, IPv6 /48), not its address, unless set.
P13N_KEEP_FULL_IP = env_bool("P13N_KEEP_FULL_IP", default=False)
# Visitor cookies use analytics.js names so a site running analytics.js shares ids.
P13N_COOKIE_MAX_AGE = env_int("P13N_COOKIE_MAX_AGE", 365 * 24 * 3600)
P13N_COOKIE_SECURE = env_bool("P13N_COOKIE_SECURE", default=False)

# --- Data quality (personalize.quality, docs/data-quality.md) -------------------
# An event received this long after its own timestamp counts as late.
P13N_LATE_EVENT_SECONDS = env_int("P13N_LATE_EVENT_SECONDS", 3600)
# An event older than one already stored for its profile by at most this much is
# not counted late (clock correction shifts each batch by its own network delay).
P13N_LATE_EVENT_REORDER_SECONDS = env_float("P13N_LATE_EVENT_REORDER_SECONDS", 1.0)
# Alerts compare the last complete window of this many hours with the same window
# on each of the previous days.
P13N_QUALITY_WINDOW_HOURS = env_int("P13N_QUALITY_WINDOW_HOURS", 1)
P13N_QUALITY_BASELINE_DAYS = env_int("P13N_QUALITY_BASELINE_DAYS", 7)
# Counters older than this many days are purged hourly with expired events (0: keep;
# never less than the baseline above plus a day).
P13N_QUALITY_RETENTION_DAYS = env_int("P13N_QUALITY_RETENTION_DAYS", 90)
# Fewer past windows with traffic than this: too little history to judge volume.
P13N_QUALITY_MIN_BASELINE_WINDOWS = env_int("P13N_QUALITY_MIN_BASELINE_WINDOWS", 3)
# Below this many messages per window, a source is too small to alert on.
P13N_QUALITY_MIN_VOLUME = env_int("P13N_QUALITY_MIN_VOLUME", 100)
# A departure must be both unusual (this many standard deviations) and large
# (under DROP_RATIO or over SPIKE_RATIO times the usual volume).
P13N_QUALITY_STDDEVS = float(env_str("P13N_QUALITY_STDDEVS", "3"))
P13N_QUALITY_DROP_RATIO = float(env_str("P13N_QUALITY_DROP_RATIO", "0.5"))
P13N_QUALITY_SPIKE_RATIO = float(env_str("P13N_QUALITY_SPIKE_RATIO", "3"))
# Alert when the reject rate rises this much (0.05: five points) over the usual rate.
P13N_QUALITY_REJECT_RATE_RISE = float(env_str("P13N_QUALITY_REJECT_RATE_RISE", "0.05"))
# Where alerts go: comma-separated addresses and/or a URL that receives a JSON POST.
P13N_QUALITY_ALERT_EMAILS = env_list("P13N_QUALITY_ALERT_EMAILS", "")
P13N_QUALITY_ALERT_WEBHOOK_URL = env_str("P13N_QUALITY_ALERT_WEBHOOK_URL", "")
P13N_QUALITY_WEBHOOK_TIMEOUT = env_int("P13N_QUALITY_WEBHOOK_TIMEOUT", 5)
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "p13n@localhost")
# --- Editors' workflow (preview, history, audit log) ------------------------------
# How long a staff editor's "Preview site as…" lasts before the site shows them
# their own content again (seconds).
P13N_PREVIEW_MAX_AGE = env_int("P13N_PREVIEW_MAX_AGE", 8 * 3600)
# Audit log rows per admin page.
P13N_AUDIT_PAGE_SIZE = env_int("P13N_AUDIT_PAGE_SIZE", 50)
# --- Block measurement (content.measurement) -------------------------------------
# Impressions the server delivers (page slots, block API) are recorded as
# `block_impression` events, one write per request.
MEASUREMENT_RECORD_SERVER_IMPRESSIONS = env_bool(
    "MEASUREMENT_RECORD_SERVER_IMPRESSIONS", default=True
)
# Events that count as conversions, and the property holding their revenue.
# Server impressions are handed to a worker together, once per this many seconds
# per process (0: each request's at once, as in the embedded default).
MEASUREMENT_FLUSH_SECONDS = float(
    env_str("MEASUREMENT_FLUSH_SECONDS", "0" if CELERY_TASK_ALWAYS_EAGER else "1")
)
MEASUREMENT_CONVERSION_EVENTS = env_list("MEASUREMENT_CONVERSION_EVENTS", "order_completed")
MEASUREMENT_REVENUE_PROPERTY = env_str("MEASUREMENT_REVENUE_PROPERTY", "revenue")
# A conversion is credited to every block the visitor saw this many hours before it.
MEASUREMENT_WINDOW_HOURS = env_int("MEASUREMENT_WINDOW_HOURS", 7 * 24)
# Below this many visitors in an arm (variant or control), no verdict is given.
MEASUREMENT_MIN_VISITORS = env_int("MEASUREMENT_MIN_VISITORS", 100)

LOGGERS: dict[str, dict[str, Any]] = {"django.channels.server": {"level": "WARNING"}}
if P13N_EMBEDDED_BEAT:
    # The embedded beat would log two lines per sweep (every SEGMENT_SWEEP_SECONDS)
    # into the server's console; failures still show.
    LOGGERS.update({"celery.beat": {"level": "WARNING"}, "celery.app.trace": {"level": "WARNING"}})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": LOGGERS,
}
