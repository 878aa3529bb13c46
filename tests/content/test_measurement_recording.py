"""Impressions the server delivers are recorded: one INSERT per request, never for previews."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from content.measurement import ImpressionMiddleware, flush_impressions, note_impressions
from content.models import Block
from content.selectors import blocks_for_profile
from personalize.models import Event, Identity, Profile
from personalize.visitors import Visitor
from segments.services import segment_save
from tests.factories import BlockFactory, IdentityFactory, ProfileFactory


@pytest.fixture
def page_blocks(db: None) -> dict[str, Block]:
    return {
        slot: BlockFactory.create(slot=slot, key=f"{slot}-default", is_default=True)
        for slot in ("hero", "promo", "recs")
    }


def _known_visitor(client: Client, anonymous_id: str = "anon-1") -> Profile:
    profile: Profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value=anonymous_id)
    client.cookies["ajs_anonymous_id"] = anonymous_id
    return profile


def _event_inserts(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('INSERT INTO "personalize_event"')
    ]


def test_a_page_records_every_slot_as_an_impression_in_one_insert(
    page_blocks: dict[str, Block],
) -> None:
    client = Client()
    profile = _known_visitor(client)
    client.get("/")  # the web source's write key is created on the first page

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")

    assert response.status_code == 200
    inserts = _event_inserts(queries)
    assert len(inserts) == 1
    assert '"personalize_event"' in inserts[0]
    events = Event.objects.filter(name="block_impression").order_by("id")
    assert events.count() == 6  # two pages, three slots each
    assert [e.properties for e in events[3:]] == [
        {
            "block_id": page_blocks[slot].pk,
            "block_key": f"{slot}-default",
            "slot": slot,
            "variant": "",
            "holdout": False,
            "via": "ssr",
        }
        for slot in ("hero", "promo", "recs")
    ]
    last = events.last()
    assert last is not None
    assert (last.profile_id, last.anonymous_id, last.source.name) == (
        profile.pk,
        "anon-1",
        "server",
    )
    assert last.context["page"] == {"path": "/"}


def test_a_first_visit_with_no_profile_records_nothing_and_creates_no_profile(
    page_blocks: dict[str, Block],
) -> None:
    response = Client().get("/")

    assert response.status_code == 200
    assert Event.objects.count() == 0
    assert Profile.objects.count() == 0


def test_the_block_api_records_its_answer_as_api_impressions_in_one_insert(
    page_blocks: dict[str, Block],
) -> None:
    client = Client()
    profile = _known_visitor(client)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/blocks", {"slot": ["hero", "promo"]})

    assert response.status_code == 200
    assert len(_event_inserts(queries)) == 1
    assert sorted(
        (e.properties["block_key"], e.properties["via"], e.profile_id)
        for e in Event.objects.filter(name="block_impression")
    ) == [("hero-default", "api", profile.pk), ("promo-default", "api", profile.pk)]


def test_debug_calls_and_polling_components_record_no_impressions(
    page_blocks: dict[str, Block],
) -> None:
    staff = Client()
    staff.force_login(User.objects.create_user("editor", password="x", is_staff=True))
    _known_visitor(staff)

    debug = staff.get("/api/v1/blocks", {"slot": "hero", "debug": "1"})
    polled = staff.get("/api/v1/blocks", {"slot": "hero", "impressions": "client"})

    assert (debug.status_code, polled.status_code) == (200, 200)
    assert Event.objects.filter(name="block_impression").count() == 0


def test_a_marked_preview_request_records_nothing(page_blocks: dict[str, Block]) -> None:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-p")
    request = RequestFactory().get("/")
    request.visitor = Visitor(anonymous_id="anon-p")  # type: ignore[attr-defined]
    request.p13n_preview = True  # type: ignore[attr-defined]
    blocks = blocks_for_profile(profile_id=profile.pk, slots=["hero"])["hero"]

    note_impressions(request, blocks, via="ssr")

    assert flush_impressions(request) == 0
    assert Event.objects.count() == 0


def test_a_page_that_fails_after_rendering_its_slots_records_no_impressions(
    page_blocks: dict[str, Block],
) -> None:
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-f")
    blocks = blocks_for_profile(profile_id=profile.pk, slots=["hero"])["hero"]

    def view(request: HttpRequest) -> HttpResponse:
        note_impressions(request, blocks, via="ssr")
        return HttpResponse(status=500)

    def served(request: HttpRequest) -> HttpResponse:
        note_impressions(request, blocks, via="ssr")
        return HttpResponse(status=200)

    for get_response in (view, served):
        request = RequestFactory().get("/")
        request.visitor = Visitor(anonymous_id="anon-f")  # type: ignore[attr-defined]
        ImpressionMiddleware(get_response)(request)

    assert Event.objects.filter(name="block_impression").count() == 1


def test_recording_can_be_switched_off(page_blocks: dict[str, Block], settings: object) -> None:
    settings.MEASUREMENT_RECORD_SERVER_IMPRESSIONS = False  # type: ignore[attr-defined]
    client = Client()
    _known_visitor(client)

    client.get("/")
    client.get("/api/v1/blocks", {"slot": "hero"})

    assert Event.objects.filter(name="block_impression").count() == 0


def test_a_segment_counting_impressions_is_recomputed_when_the_server_records_them(
    page_blocks: dict[str, Block], django_capture_on_commit_callbacks: Any
) -> None:
    segment_save(
        slug="seen-hero",
        name="Saw the hero",
        rule={
            "type": "aggregate",
            "fn": "count",
            "event": "block_impression",
            "window": {"last": "1d"},
            "op": "gte",
            "value": 1,
        },
    )
    client = Client()
    profile = _known_visitor(client)

    with django_capture_on_commit_callbacks(execute=True):
        client.get("/api/v1/blocks", {"slot": "hero"})

    assert list(profile.memberships.values_list("segment__slug", flat=True)) == ["seen-hero"]


def test_nothing_is_recorded_for_a_visitor_who_withdrew_consent(
    page_blocks: dict[str, Block],
) -> None:
    client = Client()
    profile = _known_visitor(client)
    Profile.objects.filter(pk=profile.pk).update(consent=Profile.Consent.DENIED)

    page = client.get("/")
    api = client.get("/api/v1/blocks", {"slot": "hero"})

    assert (page.status_code, api.status_code) == (200, 200)
    assert Event.objects.filter(profile=profile).count() == 0


def test_a_process_hands_many_requests_impressions_to_the_worker_at_once(
    page_blocks: dict[str, Block], settings: Any
) -> None:
    from content import measurement

    settings.MEASUREMENT_FLUSH_SECONDS = 60  # the timer never fires within the test
    client = Client()
    profile = _known_visitor(client)
    client.get("/")
    client.get("/api/v1/blocks", {"slot": "hero"})
    held = Event.objects.filter(profile=profile, name="block_impression").count()

    with CaptureQueriesContext(connection) as queries:
        measurement._buffer.flush()

    assert held == 0
    assert len(_event_inserts(queries)) == 1
    vias = sorted(
        Event.objects.filter(profile=profile, name="block_impression").values_list(
            "properties__via", flat=True
        )
    )
    assert vias == ["api", "ssr", "ssr", "ssr"]
