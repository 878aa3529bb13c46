"""The live socket (/ws/personalize/) on the real ASGI application and in-memory layer."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from personalize import live
from personalize.models import Identity, Profile
from personalize.services import resolve_profile
from personalize.visitors import Visitor, live_token_for
from segments.services import recompute_profile
from segments.signals import SegmentsChanged
from tests.factories import BlockFactory, IdentityFactory, ProfileFactory, SegmentFactory

ORIGIN = (b"origin", b"http://testserver")


def _socket(cookie: str | None = None, path: str = "/ws/personalize/") -> WebsocketCommunicator:
    headers = [ORIGIN]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def _connected(cookie: str) -> WebsocketCommunicator:
    communicator = _socket(cookie)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def _vip_user_with_blocks() -> int:
    vip = SegmentFactory.create(
        slug="vip", name="VIP", rule={"type": "trait", "path": "plan", "op": "eq", "value": "gold"}
    )
    BlockFactory.create(slot="hero", key="hero-default", is_default=True)
    BlockFactory.create(slot="hero", key="hero-vip", segments=[vip], priority=10)
    user = ProfileFactory.create(traits={"plan": "gold"})
    IdentityFactory.create(profile=user, kind=Identity.Kind.USER_ID, value="user-1")
    recompute_profile(profile_id=user.pk)
    return int(user.pk)


@pytest.mark.django_db(transaction=True)
async def test_socket_without_a_visitor_cookie_is_closed_with_4401() -> None:
    communicator = _socket()

    await communicator.connect()
    closed = await communicator.receive_output(timeout=2)

    assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
    assert await Profile.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_socket_with_a_forged_token_is_closed_with_4403() -> None:
    communicator = _socket("ajs_anonymous_id=anon-1", path="/ws/personalize/?token=forged")

    await communicator.connect()
    closed = await communicator.receive_output(timeout=2)

    assert (closed["type"], closed["code"]) == ("websocket.close", 4403)
    assert await Profile.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_socket_with_a_signed_token_is_the_tokens_visitor() -> None:
    token = live_token_for(Visitor(anonymous_id="anon-token"))
    communicator = _socket(path=f"/ws/personalize/?token={token}")

    connected, _ = await communicator.connect()
    await communicator.disconnect()

    assert connected
    assert await Identity.objects.filter(kind="anonymous_id", value="anon-token").aexists()


@pytest.mark.django_db(transaction=True)
async def test_socket_from_a_foreign_origin_is_refused() -> None:
    communicator = WebsocketCommunicator(
        application,
        "/ws/personalize/",
        headers=[(b"origin", b"http://evil.example"), (b"cookie", b"ajs_anonymous_id=anon-1")],
    )

    connected, _ = await communicator.connect()

    assert not connected
    assert await Profile.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_ping_is_answered_with_pong() -> None:
    communicator = await _connected("ajs_anonymous_id=anon-1")

    await communicator.send_json_to({"type": "ping"})
    reply = await communicator.receive_json_from()
    await communicator.disconnect()

    assert reply == {"type": "pong"}


@pytest.mark.parametrize(
    "message",
    [
        {"type": "subscribe"},
        {"type": "subscribe", "slots": "hero"},
        {"type": "subscribe", "slots": ["Hero!"]},
        {"type": "subscribe", "slots": [f"s{i}" for i in range(21)]},
    ],
)
@pytest.mark.django_db(transaction=True)
async def test_bad_subscribe_gets_an_error_naming_slots(message: dict[str, Any]) -> None:
    communicator = await _connected("ajs_anonymous_id=anon-1")

    await communicator.send_json_to(message)
    reply = await communicator.receive_json_from()
    await communicator.disconnect()

    assert reply == {"type": "error", "field": "slots", "message": "a list of up to 20 slot names"}


@pytest.mark.django_db(transaction=True)
async def test_unknown_message_type_gets_an_error_naming_type() -> None:
    communicator = await _connected("ajs_anonymous_id=anon-1")

    await communicator.send_json_to({"type": "shout"})
    reply = await communicator.receive_json_from()
    await communicator.disconnect()

    assert reply == {"type": "error", "field": "type", "message": "expected subscribe or ping"}


@pytest.mark.django_db(transaction=True)
async def test_subscribe_answers_with_the_visitors_current_blocks() -> None:
    await sync_to_async(_vip_user_with_blocks)()
    communicator = await _connected("ajs_anonymous_id=anon-1")

    await communicator.send_json_to({"type": "subscribe", "slots": ["hero", "hero", "promo"]})
    update = await communicator.receive_json_from()
    await communicator.disconnect()

    assert (update["type"], update["entered"], update["exited"], update["segments"]) == (
        "update",
        [],
        [],
        [],
    )
    assert {slot: [b["key"] for b in blocks] for slot, blocks in update["slots"].items()} == {
        "hero": ["hero-default"],
        "promo": [],
    }


@pytest.mark.django_db(transaction=True)
async def test_after_a_merge_the_socket_follows_the_surviving_profile() -> None:
    user_id = await sync_to_async(_vip_user_with_blocks)()
    communicator = await _connected("ajs_anonymous_id=anon-1")
    await communicator.send_json_to({"type": "subscribe", "slots": ["hero"]})
    before = await communicator.receive_json_from()
    merged_id = (
        await Identity.objects.filter(value="anon-1").values_list("profile_id", flat=True).aget()
    )
    assert before["slots"]["hero"][0]["key"] == "hero-default"

    await sync_to_async(resolve_profile)(anonymous_id="anon-1", user_id="user-1")
    followed = await communicator.receive_json_from(timeout=5)

    assert (followed["segments"], followed["slots"]["hero"][0]["key"]) == (["vip"], "hero-vip")
    assert not await Profile.objects.filter(pk=merged_id).aexists()

    # Pushes now come from the surviving profile's group, not the merged one's.
    await sync_to_async(live.push_membership_changes)(
        None,
        changes=[
            SegmentsChanged(profile_id=merged_id, entered=["ghost"], exited=[], segments=["ghost"])
        ],
    )
    assert await communicator.receive_nothing(timeout=0.3)
    await sync_to_async(live.push_membership_changes)(
        None,
        changes=[SegmentsChanged(profile_id=user_id, entered=["vip"], exited=[], segments=["vip"])],
    )
    pushed = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert (pushed["entered"], pushed["segments"]) == (["vip"], ["vip"])
