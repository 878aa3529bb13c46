"""Content negotiation of the REST API (JSON only): the common cases skip DRF's Accept
parsing, the others get DRF's answers, as before."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_a_client_that_accepts_json_gets_json(db: None, accept: str | None) -> None:
    headers = {} if accept is None else {"accept": accept}

    response = Client().get("/api/v1/blocks", {"slot": "hero"}, headers=headers)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"segments": [], "slots": {"hero": []}}


def test_a_client_that_accepts_only_html_is_told_406(db: None) -> None:
    response = Client().get("/api/v1/blocks", {"slot": "hero"}, headers={"accept": "text/html"})

    assert response.status_code == 406
    assert response.json() == {"detail": "Could not satisfy the request Accept header."}


def test_a_ranked_accept_header_is_negotiated(db: None) -> None:
    response = Client().get(
        "/api/v1/blocks",
        {"slot": "hero"},
        headers={"accept": "text/html;q=0.9, application/json;q=0.8"},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(("fmt", "status"), [("json", 200), ("xml", 404)])
def test_the_format_parameter_still_chooses(db: None, fmt: str, status: int) -> None:
    response = Client().get("/api/v1/blocks", {"slot": "hero", "format": fmt})

    assert response.status_code == status
