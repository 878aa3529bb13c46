"""Benchmark of segment evaluation on the production stack (issue: Segments).

Generates 100,000 profiles and 2,000,000 events in the stack's PostgreSQL, defines
20 segments covering the rule kinds, then measures:

1. full batch recompute: each segment's compiled SQL over all profiles (the path a
   segment save takes), against hand-written SQL for the same 20 segments;
2. a naive per-profile Python evaluation (snapshot + reference evaluator) on a
   sample, extrapolated to every profile;
3. incremental evaluation of one profile after one new event, with 50 segments
   defined (p50/p95);
4. time-driven flips: memberships whose window lapses at a known instant, flipped
   by the scheduled sweep (Celery beat + worker); delay after the due time.

Targets: full recompute within 1.5x of the hand-written SQL; incremental p95
under 20 ms; flips within 5 s of their due time.

    .venv/bin/python -m bench.segments [--profiles 100000] [--events 2000000]

Everything runs against 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.e2e.conftest import production_stack

# The 20 segments, in the editors' text form, with the hand-written SQL an
# engineer would write for each (PostgreSQL, same meaning; %(now)s is the instant).
SEGMENTS: list[tuple[str, str, str]] = [
    (
        "b-pro-plan",
        'trait.plan = "pro"',
        "SELECT id FROM personalize_profile WHERE traits->>'plan' = 'pro'",
    ),
    (
        "b-age-25-34",
        "trait.age between 25 and 34",
        "SELECT id FROM personalize_profile WHERE jsonb_typeof(traits->'age') = 'number'"
        " AND (traits->>'age')::numeric BETWEEN 25 AND 34",
    ),
    (
        "b-france-germany",
        'trait.country in ["FR", "DE"]',
        "SELECT id FROM personalize_profile WHERE traits->>'country' IN ('FR', 'DE')",
    ),
    (
        "b-example-emails",
        'trait.email ends_with "@example.com"',
        "SELECT id FROM personalize_profile WHERE traits->>'email' LIKE '%%@example.com'",
    ),
    (
        "b-browsers-48h",
        "count(product_viewed, last 48h) >= 3",
        "SELECT profile_id FROM personalize_event WHERE name = 'product_viewed'"
        " AND timestamp > %(now)s - interval '48 hours' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING count(*) >= 3",
    ),
    (
        "b-spenders-30d",
        "sum(order_completed.revenue, last 30d) > 500",
        "SELECT profile_id FROM personalize_event WHERE name = 'order_completed'"
        " AND timestamp > %(now)s - interval '30 days' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING sum((properties->>'revenue')::numeric) > 500",
    ),
    (
        "b-big-baskets",
        "avg(order_completed.revenue, all time) >= 150",
        "SELECT profile_id FROM personalize_event WHERE name = 'order_completed'"
        " AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING avg((properties->>'revenue')::float8) >= 150",
    ),
    (
        "b-premium-lookers",
        "max(product_viewed.price, last 7d) > 200",
        "SELECT profile_id FROM personalize_event WHERE name = 'product_viewed'"
        " AND timestamp > %(now)s - interval '7 days' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING max((properties->>'price')::numeric) > 200",
    ),
    (
        "b-bargain-buyers",
        "min(order_completed.revenue, last 60d) < 20",
        "SELECT profile_id FROM personalize_event WHERE name = 'order_completed'"
        " AND timestamp > %(now)s - interval '60 days' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING min((properties->>'revenue')::numeric) < 20",
    ),
    (
        "b-explorers",
        "distinct(product_viewed.category, last 30d) >= 3",
        "SELECT profile_id FROM personalize_event WHERE name = 'product_viewed'"
        " AND timestamp > %(now)s - interval '30 days' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING count(DISTINCT properties->>'category') >= 3",
    ),
    (
        "b-tent-shoppers",
        'count(product_viewed where category = "tents", last 14d) >= 2',
        "SELECT profile_id FROM personalize_event WHERE name = 'product_viewed'"
        " AND properties->>'category' = 'tents'"
        " AND timestamp > %(now)s - interval '14 days' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING count(*) >= 2",
    ),
    (
        "b-readers-last-week",
        "count(page, between 14d and 7d ago) >= 5",
        "SELECT profile_id FROM personalize_event WHERE name = 'page'"
        " AND timestamp > %(now)s - interval '14 days' AND timestamp <= %(now)s - interval '7 days'"
        " GROUP BY profile_id HAVING count(*) >= 5",
    ),
    (
        "b-lapsed-buyers",
        "last(order_completed) > 30d ago",
        "SELECT profile_id FROM personalize_event WHERE name = 'order_completed'"
        " AND timestamp <= %(now)s GROUP BY profile_id"
        " HAVING max(timestamp) < %(now)s - interval '30 days'",
    ),
    (
        "b-no-email-opens",
        "not count(email_opened, last 14d) >= 1",
        "SELECT id FROM personalize_profile p WHERE NOT EXISTS (SELECT 1 FROM personalize_event e"
        " WHERE e.profile_id = p.id AND e.name = 'email_opened'"
        " AND e.timestamp > %(now)s - interval '14 days' AND e.timestamp <= %(now)s)",
    ),
    (
        "b-cart-abandoners",
        "sequence(add_to_cart then no order_completed within 30m, last 7d)",
        "SELECT DISTINCT f.profile_id FROM personalize_event f WHERE f.name = 'add_to_cart'"
        " AND f.timestamp > %(now)s - interval '7 days'"
        " AND f.timestamp + interval '30 minutes' <= %(now)s"
        " AND NOT EXISTS (SELECT 1 FROM personalize_event t WHERE t.profile_id = f.profile_id"
        " AND t.name = 'order_completed' AND t.timestamp >= f.timestamp"
        " AND t.timestamp <= f.timestamp + interval '30 minutes' AND t.timestamp <= %(now)s)",
    ),
    (
        "b-view-then-cart",
        "sequence(product_viewed then add_to_cart within 1h, last 7d)",
        "SELECT DISTINCT f.profile_id FROM personalize_event f WHERE f.name = 'product_viewed'"
        " AND f.timestamp > %(now)s - interval '7 days' AND f.timestamp <= %(now)s"
        " AND EXISTS (SELECT 1 FROM personalize_event t WHERE t.profile_id = f.profile_id"
        " AND t.name = 'add_to_cart' AND t.timestamp >= f.timestamp"
        " AND t.timestamp <= f.timestamp + interval '1 hour' AND t.timestamp <= %(now)s)",
    ),
    (
        "b-browsers-not-spenders",
        "in_segment(b-browsers-48h) and not in_segment(b-spenders-30d)",
        "SELECT profile_id FROM personalize_event WHERE name = 'product_viewed'"
        " AND timestamp > %(now)s - interval '48 hours' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING count(*) >= 3"
        " EXCEPT SELECT profile_id FROM personalize_event WHERE name = 'order_completed'"
        " AND timestamp > %(now)s - interval '30 days' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING sum((properties->>'revenue')::numeric) > 500",
    ),
    (
        "b-engaged",
        "count(product_viewed, last 48h) >= 3 and count(page, last 48h) >= 5",
        "SELECT profile_id FROM personalize_event WHERE name IN ('product_viewed', 'page')"
        " AND timestamp > %(now)s - interval '48 hours' AND timestamp <= %(now)s"
        " GROUP BY profile_id HAVING count(*) FILTER (WHERE name = 'product_viewed') >= 3"
        " AND count(*) FILTER (WHERE name = 'page') >= 5",
    ),
    (
        "b-pro-or-active-not-us",
        '(trait.plan = "pro" or count(page, last 7d) >= 10) and not trait.country = "US"',
        "SELECT p.id FROM personalize_profile p LEFT JOIN (SELECT profile_id, count(*) AS n"
        " FROM personalize_event WHERE name = 'page' AND timestamp > %(now)s - interval '7 days'"
        " AND timestamp <= %(now)s GROUP BY profile_id) c ON c.profile_id = p.id"
        " WHERE (p.traits->>'plan' = 'pro' OR coalesce(c.n, 0) >= 10)"
        " AND coalesce(p.traits->>'country', '') <> 'US'",
    ),
    (
        "b-q3-buyers",
        'count(order_completed, from "2026-07-01T00:00:00+00:00" to "2026-10-01T00:00:00+00:00")'
        " >= 1",
        "SELECT DISTINCT profile_id FROM personalize_event WHERE name = 'order_completed'"
        " AND timestamp >= '2026-07-01T00:00:00+00:00' AND timestamp < '2026-10-01T00:00:00+00:00'"
        " AND timestamp <= %(now)s",
    ),
]

EVENT_MIX = [  # name, share
    ("page", 0.40),
    ("product_viewed", 0.30),
    ("add_to_cart", 0.12),
    ("email_opened", 0.08),
    ("order_completed", 0.05),
    ("search", 0.05),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _column_defaults(model: Any, known: set[str]) -> tuple[list[str], list[Any]]:
    """Columns the generator does not fill, with their Django defaults (models grow)."""
    from django.db import connection

    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.column in known:
            continue
        columns.append(field.column)
        values.append(field.get_db_prep_save(field.get_default(), connection))
    return columns, values


def generate(*, profiles: int, events: int, days: int = 60) -> None:
    """Profiles with traits, and events spread over the last ``days`` days, all in SQL."""
    from django.db import connection, transaction

    from personalize.models import Event, Profile, Source

    source, _ = Source.objects.get_or_create(name="bench")
    profile_known = {"traits", "created_at", "last_seen_at"}
    extra_columns, extra_values = _column_defaults(Profile, profile_known)
    extra_sql = "".join(f", {c}" for c in extra_columns)
    extra_params = "".join(", %s" for _ in extra_columns)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO personalize_profile (traits, created_at, last_seen_at{extra_sql})
            SELECT jsonb_build_object(
                       'plan', (ARRAY['free', 'pro', 'team'])[1 + g %% 3],
                       'age', 18 + (g * 7919) %% 60,
                       'country', (ARRAY['FR', 'DE', 'US', 'GB', 'ES'])[1 + (g * 31) %% 5],
                       'email', 'user' || g || (ARRAY['@example.com', '@mail.test'])[1 + g %% 2]),
                   now(), now(){extra_params}
            FROM generate_series(1, %s) g
            """,
            [*extra_values, profiles],
        )
        cursor.execute("SELECT min(id), max(id) FROM personalize_profile")
        first_id, last_id = cursor.fetchone()
    # Names by cumulative share of a uniform draw.
    bounds, total = [], 0.0
    for name, share in EVENT_MIX:
        total += share
        bounds.append((total, name))
    name_case = (
        "CASE "
        + " ".join(f"WHEN r < {bound:.4f} THEN '{name}'" for bound, name in bounds[:-1])
        + f" ELSE '{bounds[-1][1]}' END"
    )
    event_known = {
        "source_id", "profile_id", "message_id", "type", "name", "properties", "context",
        "anonymous_id", "user_id", "timestamp", "original_timestamp", "sent_at", "received_at",
    }  # fmt: skip
    extra_columns, extra_values = _column_defaults(Event, event_known)
    extra_sql = "".join(f", {c}" for c in extra_columns)
    extra_params = "".join(", %s" for _ in extra_columns)
    chunk = 250_000
    for start in range(0, events, chunk):
        size = min(chunk, events - start)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO personalize_event (source_id, profile_id, message_id, type, name,
                    properties, context, anonymous_id, user_id, timestamp, original_timestamp,
                    sent_at, received_at{extra_sql})
                SELECT %s, pid, 'bench-' || g, CASE WHEN n = 'page' THEN 'page' ELSE 'track' END,
                       n,
                       CASE n
                         WHEN 'order_completed' THEN jsonb_build_object(
                             'revenue', round((5 + random() * 400)::numeric, 2))
                         WHEN 'page' THEN jsonb_build_object('path', '/p/' || (g %% 50))
                         ELSE jsonb_build_object(
                             'product_id', 'sku-' || (g %% 500),
                             'category', (ARRAY['tents', 'boots', 'packs', 'stoves',
                                                'lights', 'sleep'])[1 + (g %% 6)],
                             'price', round((10 + random() * 390)::numeric, 2))
                       END,
                       jsonb_build_object('device', jsonb_build_object(
                           'type', (ARRAY['mobile', 'desktop', 'tablet'])[1 + (g %% 3)])),
                       '', '', ts, ts, ts, ts{extra_params}
                FROM (
                    SELECT g, %s + (g::bigint * 7919) %% %s AS pid, {name_case} AS n,
                           now() - random() * interval '{days} days' AS ts
                    FROM (SELECT g, random() AS r FROM generate_series(%s, %s) g) draws
                ) rows
                """,
                [
                    source.id,
                    *extra_values,
                    first_id,
                    last_id - first_id + 1,
                    start,
                    start + size - 1,
                ],
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def define_segments(extra: int) -> list[Any]:
    """The 20 bench segments, plus ``extra`` variants with other thresholds."""
    from segments.models import Segment
    from segments.rules.text import text_to_json

    rows = [Segment(name=slug, slug=slug, rule=text_to_json(text)) for slug, text, _ in SEGMENTS]
    for index in range(extra):
        rows.append(
            Segment(
                name=f"extra-{index}",
                slug=f"extra-{index}",
                rule=text_to_json(f"count(product_viewed, last {index + 1}d) >= {2 + index % 5}"),
            )
        )
    # Saved without segment_save: the bench times the batch recompute itself.
    return Segment.objects.bulk_create(rows)


def time_batch(segments: list[Any]) -> tuple[float, float, list[tuple[str, float, float, int]]]:
    """(compiled total s, hand-written total s, per segment rows)."""
    from django.db import connection
    from django.utils import timezone

    from segments.selectors import active_segment_definitions, segment_member_ids

    definitions = {d.slug: d.rule for d in active_segment_definitions()}
    hand = {slug: sql for slug, _, sql in SEGMENTS}
    now = timezone.now()
    rows = []
    for segment in segments:
        if segment.slug not in hand:
            continue
        started = time.perf_counter()
        members = segment_member_ids(rule=definitions[segment.slug], segments=definitions, now=now)
        compiled = time.perf_counter() - started
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(hand[segment.slug], {"now": now})
            expected = {row[0] for row in cursor.fetchall()}
        handwritten = time.perf_counter() - started
        if members != expected:
            raise SystemExit(
                f"{segment.slug}: compiled SQL found {len(members)} members, "
                f"hand-written SQL {len(expected)}: they must agree"
            )
        rows.append((segment.slug, compiled, handwritten, len(members)))
    return sum(r[1] for r in rows), sum(r[2] for r in rows), rows


def time_full_recompute() -> float:
    """What saving every segment costs: recompute_segment (SQL + membership writes)."""
    from segments.models import Segment
    from segments.services import recompute_segment

    hand = {slug for slug, _, _ in SEGMENTS}
    started = time.perf_counter()
    for segment in Segment.objects.filter(slug__in=hand):
        recompute_segment(segment_id=segment.id)
    return time.perf_counter() - started


def time_naive(sample: int, profiles: int) -> float:
    """Per-profile Python evaluation of the 20 segments on a sample, extrapolated (s)."""
    from django.utils import timezone

    from personalize.models import Profile
    from segments.rules import evaluate
    from segments.selectors import active_segment_definitions, snapshot_for_rules

    definitions = {d.slug: d.rule for d in active_segment_definitions()}
    twenty = {slug: definitions[slug] for slug, _, _ in SEGMENTS}
    now = timezone.now()
    ids = list(Profile.objects.order_by("?").values_list("id", flat=True)[:sample])
    started = time.perf_counter()
    for profile in Profile.objects.filter(id__in=ids):
        snapshot = snapshot_for_rules(profile=profile, rules=twenty, now=now)
        for rule in twenty.values():
            evaluate(rule, snapshot, now, definitions)
    return (time.perf_counter() - started) / len(ids) * profiles


def time_incremental(samples: int) -> list[float]:
    """ms to recompute one profile (50 segments) right after one new event."""
    from django.db import transaction
    from django.utils import timezone

    from personalize.models import Event, Profile, Source
    from segments.definitions import ChangedInputs
    from segments.services import recompute_profile, record_pending_inputs

    source = Source.objects.get(name="bench")
    ids = list(Profile.objects.order_by("?").values_list("id", flat=True)[:samples])
    # Each profile first gets one full evaluation (its bookkeeping), as the profiles of a
    # running system have; the batch phase also left every profile due.
    Profile.objects.filter(id__in=ids).update(next_evaluation_at=None)
    for profile_id in ids:
        recompute_profile(profile_id=profile_id)
    timings = []
    for index, profile_id in enumerate(ids):
        now = timezone.now()
        # What ingestion does (without queueing a task: the worker is stopped):
        # store the event and record why the profile needs a recompute.
        with transaction.atomic():
            Event.objects.create(
                source=source,
                profile_id=profile_id,
                message_id=f"incremental-{index}",
                type="track",
                name="product_viewed",
                properties={"product_id": "sku-1", "category": "tents", "price": 99},
                timestamp=now,
                received_at=now,
            )
            record_pending_inputs(
                inputs={profile_id: ChangedInputs(event_names=frozenset({"product_viewed"}))}
            )
        started = time.perf_counter()
        recompute_profile(profile_id=profile_id)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def time_flips(count: int, lapse_seconds: int) -> list[float]:
    """Seconds between each membership's due time and its flip by the sweep."""
    from django.utils import timezone

    from personalize.models import Event, Profile, Source
    from segments.models import Membership, Segment
    from segments.rules.text import text_to_json
    from segments.services import recompute_profile

    # Earlier phases left every profile due for a refresh; the sweep would work
    # through that backlog first. Measure flips on their own.
    Profile.objects.update(next_evaluation_at=None, recompute_requested_at=None)
    segment = Segment.objects.create(
        name="flip", slug="bench-flip", rule=text_to_json("count(flip_probe, last 20s) >= 1")
    )
    source = Source.objects.get(name="bench")
    ids = list(Profile.objects.order_by("id").values_list("id", flat=True)[:count])
    due = {}
    for index, profile_id in enumerate(ids):
        at = (
            timezone.now()
            - timedelta(seconds=20 - lapse_seconds)
            + timedelta(milliseconds=37 * index)
        )
        Event.objects.create(
            source=source,
            profile_id=profile_id,
            message_id=f"flip-{index}",
            type="track",
            name="flip_probe",
            timestamp=at,
            received_at=at,
        )
        recompute_profile(profile_id=profile_id)
        due[profile_id] = at + timedelta(seconds=20)
    deadline = time.monotonic() + lapse_seconds + 60
    while time.monotonic() < deadline:
        open_left = Membership.objects.filter(
            segment=segment, profile_id__in=ids, exited_at__isnull=True
        ).count()
        if open_left == 0:
            break
        time.sleep(0.5)
    delays = []
    for profile_id, exited_at in Membership.objects.filter(
        segment=segment, profile_id__in=ids, exited_at__isnull=False
    ).values_list("profile_id", "exited_at"):
        if exited_at is not None:
            delays.append((exited_at - due[profile_id]).total_seconds())
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--flips", type=int, default=100)
    args = parser.parse_args()
    random.seed(13)

    with tempfile.TemporaryDirectory() as tmp, production_stack(Path(tmp)) as server:
        os.environ.update(server.env)
        import django

        django.setup()
        started = time.perf_counter()
        generate(profiles=args.profiles, events=args.events)
        print(
            f"generated {args.profiles:,} profiles and {args.events:,} events "
            f"in {time.perf_counter() - started:.0f} s"
        )
        segments = define_segments(extra=30)
        compiled, handwritten, rows = time_batch(segments)
        print("\n1. batch: each segment's compiled SQL vs hand-written SQL (same members):")
        for slug, c, h, members in rows:
            print(f"  {slug:<24} {c * 1000:>8.0f} ms  {h * 1000:>8.0f} ms  {members:>7,} members")
        print(
            f"  total: compiled {compiled:.2f} s, hand-written {handwritten:.2f} s, "
            f"ratio {compiled / handwritten:.2f}x (target <= 1.5x)"
        )
        full = time_full_recompute()
        print(f"  full recompute of the 20 (SQL + membership writes): {full:.2f} s")
        naive = time_naive(min(args.samples, 500), args.profiles)
        print(
            f"\n2. naive per-profile Python evaluation, extrapolated to {args.profiles:,} "
            f"profiles: {naive:.0f} s ({naive / compiled:.0f}x the compiled SQL)"
        )
        # The stack's worker and beat would now refresh every profile the batch
        # touched; stop them so the incremental timings measure one thing.
        server.processes["celery-beat"].stop()
        server.processes["celery-worker"].stop()
        timings = time_incremental(args.samples)
        print(
            f"\n3. incremental: one profile after one event, 50 segments, {len(timings)} samples: "
            f"p50 {percentile(timings, 50):.1f} ms, p95 {percentile(timings, 95):.1f} ms "
            f"(target p95 < 20 ms)"
        )
        server.processes["celery-worker"].start()
        server.processes["celery-beat"].start()
        delays = time_flips(args.flips, lapse_seconds=10)
        if delays:
            print(
                f"\n4. time-driven flips by the sweep: {len(delays)} of {args.flips} flipped; "
                f"delay after due time p50 {percentile(delays, 50):.2f} s, "
                f"p95 {percentile(delays, 95):.2f} s, max {max(delays):.2f} s (target < 5 s)"
            )
        else:
            print("\n4. time-driven flips: none flipped within the wait")
        print(f"   mean incremental {statistics.fmean(timings):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
