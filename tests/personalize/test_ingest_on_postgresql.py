"""The ingestion tests again on PostgreSQL, where ingestion takes other paths:
COPY, json_to_recordset updates and claims, the sessions joined by range, the
inbox's SKIP LOCKED and server-bound insert (personalize.bulk, personalize.sessions,
personalize.services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.postgresql_runs import REPO, pytest_on_postgresql

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


@pytest.mark.stack
def test_the_ingestion_tests_pass_on_postgresql(postgres_database: str) -> None:
    here = Path(__file__).parent.relative_to(REPO)
    result = pytest_on_postgresql(postgres_database, [str(here / m) for m in MODULES])
    assert "failed" not in result.stdout
