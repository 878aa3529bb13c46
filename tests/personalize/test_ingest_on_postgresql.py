"""The ingestion tests again on PostgreSQL, where ingestion takes other paths:
COPY, json_to_recordset updates and claims, the sessions joined by range, the
inbox's SKIP LOCKED (personalize.bulk, personalize.sessions). The unit suite
runs on SQLite; this runs those test modules in a subprocess on a throwaway
PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("P13N_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
MODULES = [
    "test_tracking_api.py",
    "test_pending_batches.py",
    "test_sessions.py",
    "test_event_deduplication.py",
    "test_merges.py",
    "test_traits.py",
    "test_imports.py",
    "test_privacy.py",
    "test_data_quality.py",
]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database name (pytest-django creates ``test_<name>``)."""
    name = f"p13n_ingest_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')


@pytest.mark.stack
def test_the_ingestion_tests_pass_on_postgresql(postgres_database: str) -> None:
    here = Path(__file__).parent.relative_to(REPO)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--ds=config.settings_test_postgresql",
            "--create-db",
            *(str(here / module) for module in MODULES),
        ],
        cwd=REPO,
        env={
            **os.environ,
            "DATABASE_URL": POSTGRES_URL.rsplit("/", 1)[0] + "/" + postgres_database,
        },
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
    assert "failed" not in result.stdout
