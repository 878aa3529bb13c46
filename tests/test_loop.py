"""The personalization loop on the embedded default, through its real interfaces."""

from __future__ import annotations

import uuid

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from config.asgi import application
from personalize.models import Source


def _track(
    client: Client, write_key: str, anonymous_id: str, event: str, **properties: object
) -> None:
    response = client.post(
        "/v1/batch",
        data={
            "writeKey": write_key,
            "batch": [
                {
                    "type": "track",
                    "event": event,
                    "anonymousId": anonymous_id,
                    "messageId": str(uuid.uuid4()),
                    "properties": properties,
                }
            ],
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
async def test_three_product_views_push_the_engaged_hero_to_the_open_page(demo_data: None) -> None:
    from asgiref.sync import sync_to_async

    client = Client()
    await sync_to_async(client.get)("/")
    anonymous_id = client.cookies["ajs_anonymous_id"].value
    write_key = (await Source.objects.aget(name="web")).write_key

    communicator = WebsocketCommunicator(
        application,
        "/ws/personalize/",
        headers=[
            (b"cookie", f"ajs_anonymous_id={anonymous_id}".encode()),
            (b"origin", b"http://testserver"),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"type": "subscribe", "slots": ["hero"]})
    first = await communicator.receive_json_from(timeout=5)
    assert first["slots"]["hero"][0]["key"] == "hero-welcome"

    for _ in range(3):
        await sync_to_async(_track)(
            client, write_key, anonymous_id, "product_viewed", category="hiking"
        )
    pushed = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert pushed["entered"] == ["engaged-shoppers"]
    assert pushed["segments"] == ["engaged-shoppers"]
    assert pushed["slots"]["hero"][0]["key"] == "hero-engaged"
    page = await sync_to_async(client.get)("/")
    assert 'data-blocks="hero-engaged"' in page.content.decode()
    api = await sync_to_async(client.get)("/api/v1/blocks?slot=hero")
    assert api.json()["slots"]["hero"][0]["key"] == "hero-engaged"
