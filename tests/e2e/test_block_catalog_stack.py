"""The published catalog on the production stack: each uvicorn worker keeps its own,
and an edit committed by another process is served on the very next request."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.stack

EDIT = """
from content.services import block_save
block_save(key="catalog-e2e", slot="catalog-e2e", title="T", body="<p>{body}</p>",
           status="{status}")
"""


def _bodies(stack: Server, requests: int) -> set[str]:
    """What new visitors get in the slot, over enough requests to reach both workers."""
    seen = set()
    for _ in range(requests):
        visitor = stack.visitor()
        blocks = visitor.blocks("catalog-e2e")["slots"]["catalog-e2e"]
        seen.add(blocks[0]["html"] if blocks else "")
    return seen


def test_an_edit_from_another_process_is_served_by_every_worker_on_the_next_request(
    stack: Server,
) -> None:
    stack.manage("shell", "-c", EDIT.format(body="first", status="published"))
    assert _bodies(stack, 12) == {"<p>first</p>"}  # both workers have built their catalog

    stack.manage("shell", "-c", EDIT.format(body="second", status="published"))
    assert _bodies(stack, 12) == {"<p>second</p>"}

    stack.manage("shell", "-c", EDIT.format(body="second", status="draft"))
    assert _bodies(stack, 12) == {""}
