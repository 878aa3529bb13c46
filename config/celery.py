"""The Celery application; the worker and beat run ``celery -A config ...``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("p13n")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
