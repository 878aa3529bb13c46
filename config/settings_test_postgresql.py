"""Unit-test overrides on PostgreSQL: the embedded test settings with ``DATABASE_URL``'s
database (pytest-django creates and drops ``test_<name>``). Used by tests that run a
unit test again on PostgreSQL in a subprocess (tests/segments/test_evaluation_paths.py).
"""

import os

import dj_database_url

from config.settings_test import *  # noqa: F403

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
