"""Benchmark of the block API and the homepage on the production stack (issue: Content).

Seeds 200 segments, 1,000 published blocks over 10 slots and 100,000 profiles
(each in about five segments), then drives three endpoints of the same
uvicorn (2 workers) with ``wrk`` on 127.0.0.1, each request as a random one of
the 100,000 visitors (their ``ajs_anonymous_id`` cookie):

- ``/healthz``: a bare Django JSON view behind the same middleware: the ceiling;
- ``/api/v1/blocks?slot=hero&slot=promo&slot=recs``: three slots chosen per visitor;
- ``/``: the server-rendered homepage with its slots.

Prints requests/s, p50 and p99 for each and the ratios to the ceiling.
Targets: block API throughput >= 0.5x the bare view's, p99 <= 2x the bare view's.

    .venv/bin/python -m bench.block_api [--profiles 100000] [--seconds 20]

Needs ``wrk`` (Debian package ``wrk``; ``make bench`` installs it).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import production_stack

SLOTS = ["hero", "promo", "recs", "banner", "sidebar", "footer", "modal", "strip", "inline", "tile"]
API_PATH = "/api/v1/blocks?slot=hero&slot=promo&slot=recs"
# Runs inside the stack's Django (manage.py shell): the ORM writes rows whatever
# columns the models have grown, without the save services (no recompute storm:
# memberships are written directly, as the workers would have).
SEED = """
import random
from django.db import connection, transaction
from django.utils import timezone
from content.models import Block
from personalize.models import Identity, Profile
from segments.models import Membership, Segment

rng = random.Random(13)
now = timezone.now()
PROFILES, SEGMENTS, BLOCKS, SLOTS = {profiles}, {segments}, {blocks}, {slots!r}
with transaction.atomic():
    segments = Segment.objects.bulk_create(
        Segment(
            name=f"Bench segment {{i}}", slug=f"bench-{{i}}",
            rule={{"type": "trait", "path": "bench_group", "op": "eq", "value": i}},
        )
        for i in range(SEGMENTS)
    )
    blocks = Block.objects.bulk_create(
        Block(
            slot=SLOTS[i % len(SLOTS)], key=f"bench-block-{{i}}", title=f"Bench block {{i}}",
            body=f"<p>Offer <strong>{{i}}</strong> for you</p>",
            data={{"image": f"/static/bench/{{i}}.jpg", "cta": "Shop now"}},
            priority=rng.randint(0, 100), status=Block.Status.PUBLISHED,
        )
        for i in range(BLOCKS)
    )
    targets, exclusions = [], []
    for block in blocks:
        for segment in rng.sample(segments, rng.randint(1, 3)):
            targets.append(Block.segments.through(block_id=block.id, segment_id=segment.id))
        if rng.random() < 0.1:
            exclusions.append(
                Block.excluded_segments.through(block_id=block.id, segment_id=rng.choice(segments).id)
            )
    Block.segments.through.objects.bulk_create(targets, ignore_conflicts=True)
    Block.excluded_segments.through.objects.bulk_create(exclusions, ignore_conflicts=True)
for start in range(0, PROFILES, 10000):
    with transaction.atomic():
        profiles = Profile.objects.bulk_create(
            Profile(last_seen_at=now) for _ in range(start, min(start + 10000, PROFILES))
        )
        Identity.objects.bulk_create(
            Identity(profile=p, kind=Identity.Kind.ANONYMOUS_ID, value=f"bench-{{start + n}}")
            for n, p in enumerate(profiles)
        )
        Membership.objects.bulk_create(
            Membership(profile=p, segment=s, entered_at=now)
            for p in profiles
            for s in rng.sample(segments, 5)
        )
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
print("seeded")
"""

LUA = """
math.randomseed(%d)
request = function()
  local n = math.random(0, %d)
  return wrk.format("GET", nil, {["Cookie"] = "ajs_anonymous_id=bench-" .. n})
end
"""


@dataclass(frozen=True)
class LoadResult:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: str


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(
    name: str, url: str, *, script: Path, seconds: int, connections: int, threads: int
) -> LoadResult:
    done = subprocess.run(
        [
            "wrk",
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={seconds}s",
            "--latency",
            "--timeout=10s",
            f"--script={script}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    if not (rps and p50 and p99):
        raise RuntimeError(f"could not read wrk's output:\n{out}\n{done.stderr}")
    errors = "; ".join(
        line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line
    )
    return LoadResult(
        name=name,
        requests_per_second=float(rps.group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        errors=errors,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (or run `make bench`)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp, production_stack(Path(tmp)) as server:
        started = time.perf_counter()
        server.manage(
            "shell",
            "-c",
            SEED.format(
                profiles=args.profiles, segments=args.segments, blocks=args.blocks, slots=SLOTS
            ),
        )
        print(
            f"seeded {args.profiles:,} profiles, {args.segments} segments, {args.blocks:,} "
            f"published blocks over {len(SLOTS)} slots in {time.perf_counter() - started:.0f} s"
        )
        script = Path(tmp) / "visitors.lua"
        script.write_text(LUA % (13, args.profiles - 1))
        targets = [
            ("bare JSON view (/healthz)", "/healthz"),
            ("block API (3 slots)", API_PATH),
            ("homepage (SSR)", "/"),
        ]
        results = []
        for name, path in targets:
            url = server.base_url + path
            # Warm-up: lazy imports, connection pools, per-process caches.
            run_wrk(name, url, script=script, seconds=3, connections=args.connections, threads=2)
            results.append(
                run_wrk(
                    name,
                    url,
                    script=script,
                    seconds=args.seconds,
                    connections=args.connections,
                    threads=2,
                )
            )
    bare = results[0]
    print(
        f"\nwrk, {args.connections} connections, {args.seconds} s each, random visitor per "
        "request; production stack (PostgreSQL, Redis, uvicorn x2) on this machine:"
    )
    print(f"  {'endpoint':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x bare':>8} {'p99 x':>7}")
    for result in results:
        print(
            f"  {result.name:<28} {result.requests_per_second:>9.0f} {result.p50_ms:>8.1f} "
            f"{result.p99_ms:>8.1f} {result.requests_per_second / bare.requests_per_second:>8.2f} "
            f"{result.p99_ms / bare.p99_ms:>7.2f}"
            + (f"   ({result.errors})" if result.errors else "")
        )
    print("  targets: block API >= 0.50x the bare view's req/s, p99 <= 2.00x the bare view's p99")
    return 0


if __name__ == "__main__":
    sys.exit(main())
