from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.fixture
def demo_data(db: None) -> None:
    """The demo shop's catalog, segments and blocks, as `make run` loads them."""
    call_command("load_demo", verbosity=0)
