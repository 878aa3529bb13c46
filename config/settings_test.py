"""Unit-test overrides: always the embedded default, whatever the shell exports.

Tests of the production stack start their own processes with ``config.settings``
and real service URLs (tests/e2e).
"""

from config.settings import *  # noqa: F403

# Django runs SQLite test databases in memory.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
EMBEDDED = True
REDIS_URL = ""
CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = True
# Tests drive no ASGI lifespan; the ones about the embedded beat turn it on.
P13N_EMBEDDED_BEAT = False
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEASUREMENT_FLUSH_SECONDS = 0.0
