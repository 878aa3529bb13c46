from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.core.management import call_command

from tests.postgresql_runs import POSTGRES_URL


@pytest.fixture
def demo_data(db: None) -> None:
    """The demo shop's catalog, segments and blocks, as `make run` loads them."""
    call_command("load_demo", verbosity=0)


@pytest.fixture(autouse=True)
def _fresh_published_catalog() -> None:
    """Each test starts from its own rows: the previous test's were rolled back
    without a commit, so no version bump told this process's catalog (nor the
    write key and featured products it keeps)."""
    from config.stamps import ProcessCache
    from content.catalog import forget_published_catalog

    forget_published_catalog()
    ProcessCache.forget_all()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database name for tests.postgresql_runs (pytest-django
    creates ``test_<name>`` in the subprocess; it is dropped here)."""
    name = f"p13n_pg_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')
