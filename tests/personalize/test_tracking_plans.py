from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from personalize.models import Event, RejectedEvent, Source
from personalize.plans import compiled_plan_count
from personalize.quarantine import replay

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"discount": {"type": "number"}, "sku": {"type": "string"}},
    "required": ["sku"],
}
PLAN = {
    "track": {"Order Completed": ORDER_SCHEMA},
    "identify": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}},
}


def _source(**fields: Any) -> Source:
    return Source.objects.create(
        name="site", tracking_plan=fields.pop("plan", PLAN), **{"plan_mode": "block", **fields}
    )


def _batch(source: Source, *items: dict[str, Any]) -> dict[str, Any]:
    response = Client().post(
        "/v1/batch",
        data={"writeKey": source.write_key, "batch": list(items)},
        content_type="application/json",
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _order(message_id: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "anonymousId": "a1",
        "messageId": message_id,
        "properties": properties,
    }


@pytest.mark.django_db
def test_block_mode_rejects_violating_events_per_index_and_keeps_the_good_ones() -> None:
    source = _source()

    body = _batch(
        source,
        _order("good", sku="S1", discount=10),
        _order("bad-discount", sku="S2", discount="ten"),
        _order("no-sku", discount=3),
    )

    assert body["stored"] == 1
    assert body["rejected"] == [
        {
            "index": 1,
            "field": "properties.discount",
            "message": "'ten' is not of type 'number'",
            "violations": [
                {
                    "field": "properties.discount",
                    "reason": "'ten' is not of type 'number'",
                    "rule": "type",
                }
            ],
        },
        {
            "index": 2,
            "field": "properties.sku",
            "message": "'sku' is a required property",
            "violations": [
                {
                    "field": "properties.sku",
                    "reason": "'sku' is a required property",
                    "rule": "required",
                }
            ],
        },
    ]
    assert list(Event.objects.values_list("message_id", flat=True)) == ["good"]
    kept = {r.payload["messageId"]: r for r in RejectedEvent.objects.all()}
    assert sorted(kept) == ["bad-discount", "no-sku"]
    assert (kept["bad-discount"].event_name, kept["bad-discount"].field) == (
        "Order Completed",
        "properties.discount",
    )
    assert kept["no-sku"].violations[0]["rule"] == "required"


@pytest.mark.django_db
def test_flag_mode_stores_violating_events_with_their_violations() -> None:
    source = _source(plan_mode="flag")

    body = _batch(source, _order("flagged", sku=7, discount=1), _order("clean", sku="S1"))

    assert (body["stored"], body["rejected"]) == (2, [])
    assert Event.objects.get(message_id="flagged").violations == [
        {"field": "properties.sku", "reason": "7 is not of type 'string'", "rule": "type"}
    ]
    assert Event.objects.get(message_id="clean").violations == []
    assert RejectedEvent.objects.count() == 0


@pytest.mark.django_db
def test_identify_traits_are_checked_against_the_identify_schema_with_formats() -> None:
    source = _source()

    body = _batch(
        source,
        {"type": "identify", "userId": "u1", "messageId": "i1", "traits": {"email": "nope"}},
        {"type": "identify", "userId": "u2", "messageId": "i2", "traits": {"email": "a@b.co"}},
    )

    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "traits.email")]
    assert body["rejected"][0]["message"] == "'nope' is not a 'email'"
    assert list(Event.objects.values_list("message_id", flat=True)) == ["i2"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("policy", "stored", "rejected_fields", "violations"),
    [
        ("allow", 1, [], []),
        (
            "flag",
            1,
            [],
            [
                {
                    "field": "event",
                    "reason": "'Coupon Applied' is not in the tracking plan",
                    "rule": "unplanned",
                }
            ],
        ),
        ("block", 0, ["event"], None),
    ],
)
def test_events_the_plan_does_not_name_follow_the_unplanned_policy(
    policy: str, stored: int, rejected_fields: list[str], violations: list[Any] | None
) -> None:
    # The plan's own mode is block: the unplanned policy alone decides.
    source = _source(unplanned_events=policy)

    body = _batch(
        source,
        {"type": "track", "event": "Coupon Applied", "anonymousId": "a", "messageId": "c1"},
    )

    assert body["stored"] == stored
    assert [r["field"] for r in body["rejected"]] == rejected_fields
    event = Event.objects.filter(message_id="c1").first()
    assert (event.violations if event else None) == violations
    assert RejectedEvent.objects.count() == len(rejected_fields)


@pytest.mark.django_db
def test_a_source_without_a_plan_checks_nothing_whatever_its_policies() -> None:
    source = _source(plan={}, unplanned_events="block")

    body = _batch(source, _order("o1", discount="free"))

    assert (body["stored"], body["rejected"]) == (1, [])


@pytest.mark.django_db
def test_page_calls_without_a_page_schema_are_not_checked_even_if_unplanned_is_block() -> None:
    source = _source(unplanned_events="block")

    body = _batch(source, {"type": "page", "anonymousId": "a", "messageId": "p1"})

    assert (body["stored"], body["rejected"]) == (1, [])


@pytest.mark.django_db
def test_single_track_call_blocked_by_the_plan_answers_400_naming_the_field() -> None:
    source = _source()

    response = Client().post(
        "/v1/track",
        data={**_order("t1", discount=1), "writeKey": source.write_key},
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["field"] == "properties.sku"
    assert Event.objects.count() == 0
    assert RejectedEvent.objects.get().field == "properties.sku"


@pytest.mark.django_db
def test_replay_revalidates_against_the_current_plan_so_fixing_the_plan_stores_them() -> None:
    source = _source()
    _batch(source, _order("legacy", discount=5, sku=123))
    rejected = RejectedEvent.objects.get()

    still = replay(rejected_ids=[rejected.pk])
    assert (still.replayed, still.still_rejected) == (0, 1)
    assert Event.objects.count() == 0

    source.tracking_plan = {
        "track": {"Order Completed": {**ORDER_SCHEMA, "properties": {"sku": {}}}}
    }
    source.save()
    fixed = replay(rejected_ids=[rejected.pk])

    assert (fixed.replayed, fixed.still_rejected) == (1, 0)
    assert Event.objects.get().message_id == "legacy"
    rejected.refresh_from_db()
    assert rejected.status == RejectedEvent.Status.REPLAYED


@pytest.mark.django_db
def test_replay_still_rejected_by_the_plan_keeps_the_new_reasons() -> None:
    source = _source()
    _batch(source, _order("o1", discount="x", sku="S"))
    rejected = RejectedEvent.objects.get()
    source.tracking_plan = {"track": {"Order Completed": {"required": ["currency"]}}}
    source.save()

    result = replay(rejected_ids=[rejected.pk])

    rejected.refresh_from_db()
    assert result.still_rejected == 1
    assert (rejected.field, rejected.status) == ("properties.currency", "quarantined")
    assert rejected.violations == [
        {
            "field": "properties.currency",
            "reason": "'currency' is a required property",
            "rule": "required",
        }
    ]


@pytest.mark.django_db
def test_a_batch_compiles_the_plan_once_not_once_per_event() -> None:
    source = _source(plan={"track": {"Unique Plan Event": {"type": "object"}}})
    before = compiled_plan_count()
    events = [
        {"type": "track", "event": "Unique Plan Event", "anonymousId": "a", "messageId": f"m{i}"}
        for i in range(50)
    ]

    _batch(source, *events[:25])
    _batch(source, *events[25:])

    assert compiled_plan_count() - before == 1
    assert Event.objects.count() == 50


def _source_form(plan: Any, **overrides: str) -> dict[str, str]:
    return {
        "name": "site",
        "write_key": "wk-123",
        "enabled": "on",
        "created_at_0": "2025-01-01",
        "created_at_1": "00:00:00",
        "tracking_plan": json.dumps(plan),
        "plan_mode": "block",
        "unplanned_events": "allow",
        **overrides,
    }


@pytest.mark.django_db
def test_invalid_plan_in_the_admin_form_names_the_event_and_saves_nothing(
    admin_client: Client,
) -> None:
    plan = {"track": {"Order Completed": {"type": "money"}}}

    response = admin_client.post("/admin/personalize/source/add/", _source_form(plan))

    assert response.status_code == 200
    page = response.content.decode()
    assert "track event &quot;Order Completed&quot;: &#x27;money&#x27; is not valid" in page
    assert Source.objects.count() == 0


@pytest.mark.django_db
def test_unknown_plan_section_is_refused_in_the_admin_form(admin_client: Client) -> None:
    response = admin_client.post("/admin/personalize/source/add/", _source_form({"trak": {}}))

    assert response.status_code == 200
    assert "Unknown tracking plan key(s) &#x27;trak&#x27;" in response.content.decode()
    assert Source.objects.count() == 0


@pytest.mark.django_db
def test_valid_plan_in_the_admin_form_is_saved(admin_client: Client) -> None:
    response = admin_client.post("/admin/personalize/source/add/", _source_form(PLAN))

    assert response.status_code == 302
    assert Source.objects.get().tracking_plan == PLAN


@pytest.mark.django_db
def test_admin_filters_flagged_events(admin_client: Client) -> None:
    source = _source(plan_mode="flag")
    _batch(source, _order("flagged-one", discount="x", sku="S"), _order("clean-one", sku="S"))

    flagged = admin_client.get("/admin/personalize/event/?flagged=yes").content.decode()
    clean = admin_client.get("/admin/personalize/event/?flagged=no").content.decode()
    everything = admin_client.get("/admin/personalize/event/").content.decode()

    assert "2 events" in everything
    assert "1 event" in flagged
    assert "1 event" in clean
    assert Event.objects.exclude(violations=[]).get().message_id == "flagged-one"
    assert Event.objects.filter(violations=[]).get().message_id == "clean-one"
