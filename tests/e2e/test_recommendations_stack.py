"""Recommendations on the production stack: learned by load_demo's first run on PostgreSQL,
recomputed by the Celery worker, served to a visitor by the block API."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Server

pytestmark = pytest.mark.stack

JOB_SUCCEEDED = re.compile(
    r"Task content\.tasks\.recompute_recommendations\[[0-9a-f-]{36}\] succeeded in [0-9.e-]+s: "
    r"\{'profiles': \d+, 'interactions': \d+, 'items': \d+, 'pairs': \d+\}"
)


def test_a_visitor_gets_neighbours_of_what_they_viewed_and_the_worker_recomputes(
    stack: Server,
) -> None:
    (rope_id,) = stack.query("SELECT id FROM shop_product WHERE slug = 'rope-60m'")[0]
    visitor = stack.visitor()

    visitor.track(
        "product_viewed", product_id=str(rope_id), name="Dynamic Rope 60 m", category="climbing"
    )
    block = visitor.blocks("recs")["slots"]["recs"][0]

    recommended = block["data"]["recommendations"]
    assert block["key"] == "recs-popular"
    assert {item["name"] for item in recommended[:2]} == {"All-Round Harness", "Headlamp 400"}
    assert {item["reason"] for item in recommended} == {"because you viewed Dynamic Rope 60 m"}
    assert "because you viewed Dynamic Rope 60 m" in visitor.homepage()

    worker = stack.processes["celery-worker"]
    before = len(worker.log())
    subprocess.run(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "config",
            "call",
            "content.tasks.recompute_recommendations",
        ],
        cwd=REPO,
        env=stack.env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    stack.wait_until(
        "the worker's recommendations run",
        lambda: bool(JOB_SUCCEEDED.search(worker.log()[before:])),
    )
    # The demo's 12 products, and any other items the session's tests viewed.
    assert stack.query("SELECT count(*) FROM content_item")[0][0] >= 12
    assert visitor.blocks("recs")["slots"]["recs"][0]["data"]["recommendations"] == recommended
