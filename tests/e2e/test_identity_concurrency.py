"""Two processes' worth of requests resolving the same new ids at once, on PostgreSQL.

Each thread ingests a batch naming the same 50 new visitors. Whichever inserts
an id second skips it, sees another profile owns it, and redoes its resolution:
every visitor ends with exactly one profile and both batches' events on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import HOST, REPO, _postgres, _server_env

pytestmark = pytest.mark.stack

VISITORS = 50

SCRIPT = """
import json, threading
import django
django.setup()
from django.db import connection
from django.utils import timezone
from personalize.models import Event, Identity, Profile
from personalize.services import ingest_messages, server_source
from personalize.tracking import parse_message

source = server_source()
barrier = threading.Barrier(2)
results = {}

def run(name):
    now = timezone.now()
    messages = [
        parse_message(
            {"type": "identify", "anonymousId": f"a-{n}", "userId": f"u-{n}",
             "messageId": f"{name}-{n}", "traits": {"seen_by": name}},
            message_type=None, received_at=now,
        )
        for n in range(%(visitors)d)
    ]
    barrier.wait()
    try:
        results[name] = sorted(ingest_messages(source=source, messages=messages, received_at=now).profile_ids)
    finally:
        connection.close()

threads = [threading.Thread(target=run, args=(name,)) for name in ("one", "two")]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(json.dumps({
    "results": results,
    "profiles": Profile.objects.count(),
    "identities": Identity.objects.count(),
    "events_per_profile": sorted(set(
        Event.objects.values_list("profile_id").order_by().annotate(
            n=django.db.models.Count("id")).values_list("n", flat=True))),
}))
"""


def test_two_batches_naming_the_same_new_ids_at_once_make_one_profile_each(
    tmp_path: Path,
) -> None:
    database = f"p13n_e2e_ident_{uuid.uuid4().hex[:10]}"
    admin = _postgres()
    env = _server_env(DATABASE_URL=f"postgres://postgres@{HOST}:5432/{database}")
    admin.execute(f'CREATE DATABASE "{database}"')
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=REPO,
            env=env,
            check=True,
            timeout=120,
        )
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT % {"visitors": VISITORS}],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()

    assert outcome["results"]["one"] == outcome["results"]["two"]
    assert len(outcome["results"]["one"]) == VISITORS
    assert outcome["profiles"] == VISITORS
    assert outcome["identities"] == 2 * VISITORS
    assert outcome["events_per_profile"] == [2]
