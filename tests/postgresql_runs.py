"""Run unit-test modules again on PostgreSQL, in a subprocess with a throwaway database.

The unit suite runs on SQLite; some code takes other paths on PostgreSQL (COPY,
json_to_recordset, SKIP LOCKED, the compiled segment SQL). A stack-marked test
takes the ``postgres_database`` fixture (tests/conftest.py) and calls
:func:`pytest_on_postgresql` with the tests to repeat there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The server's maintenance database: throwaway databases are created beside it.
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def pytest_on_postgresql(
    database: str, targets: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest on ``targets`` (paths or node ids from the repository root) with the
    PostgreSQL test settings on ``database``; fails the caller with the output if
    any test failed."""
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
            *targets,
        ],
        cwd=REPO,
        env={
            **os.environ,
            "DATABASE_URL": POSTGRES_URL.rsplit("/", 1)[0] + "/" + database,
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
    return result
