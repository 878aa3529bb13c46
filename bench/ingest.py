"""Benchmark of ingestion through ``/v1/batch`` on the production stack (issue: Ingestion).

1. Several concurrent senders (threads, one keep-alive HTTP session and one
   source each) POST batches of 500 realistic Segment messages (track, page,
   identify from a few thousand visitors, with properties and context) to
   uvicorn on 127.0.0.1, as a CDP forwarder or a server-side library would.
   Reports events/s over the whole run and p50/p95/p99 latency per request.
2. In the same run, PostgreSQL's own ``COPY`` of the very rows the product
   stored into an equal table (``CREATE TABLE … (LIKE personalize_event
   INCLUDING ALL)``: same columns, indexes and unique constraint) is timed as
   the ceiling; the ratio of the two is the figure of merit (target ≥ 0.3×).
3. The RSS of every uvicorn worker process, sampled from /proc during the run.
4. The CPU seconds the web workers, the Celery worker and PostgreSQL used during
   the run (from /proc), to show where the machine's cores went.

Everything runs on 127.0.0.1 and stops by itself. Each sender has its own
source, so the per-source rate limit (TRACKING_RATE_LIMIT) is shared the way
independent clients share it; any 429 is waited out, counted and reported.

    .venv/bin/python -m bench.ingest [--batches 200] [--senders 8] [--batch-size 500]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.live_push import percentile, rss_kib
from tests.e2e.conftest import Process, Server, production_stack

MAX_BODY_BYTES = 500 * 1024
DRAIN_SECONDS = 300

PRODUCTS = [
    (f"sku-{n:04d}", category, round(9.5 + (n * 7.3) % 480, 2))
    for n, category in enumerate(
        ["camping", "hiking", "climbing", "running", "cycling", "water"] * 40
    )
]
PAGES = ["/", "/products/", "/cart/", "/checkout/", "/about/", "/search/"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
]


# --- traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visitor:
    anonymous_id: str
    user_id: str | None


def make_visitors(count: int, rng: random.Random) -> list[Visitor]:
    # About a third of the visitors have logged in at some point.
    return [
        Visitor(
            anonymous_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            user_id=f"user-{n}" if rng.random() < 0.3 else None,
        )
        for n in range(count)
    ]


def make_message(visitor: Visitor, rng: random.Random, at: datetime) -> dict[str, Any]:
    """One message as analytics.js would send it: 60% track, 30% page, 10% identify."""
    path = rng.choice(PAGES)
    message: dict[str, Any] = {
        "anonymousId": visitor.anonymous_id,
        "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "context": {
            "library": {"name": "analytics.js", "version": "5.2.0"},
            "userAgent": rng.choice(AGENTS),
            "locale": "en-US",
            "page": {"path": path, "url": f"https://shop.example.com{path}"},
        },
    }
    if visitor.user_id:
        message["userId"] = visitor.user_id
    roll = rng.random()
    if roll < 0.6:
        sku, category, price = rng.choice(PRODUCTS)
        event = rng.choices(
            ["product_viewed", "add_to_cart", "order_completed", "block_impression"],
            weights=[60, 15, 5, 20],
        )[0]
        properties: dict[str, Any] = {"product_id": sku, "category": category, "price": price}
        if event == "order_completed":
            quantity = rng.randint(1, 3)
            properties.update(
                order_id=f"o-{rng.getrandbits(40):x}",
                revenue=round(price * quantity, 2),
                currency="EUR",
                products=[{"product_id": sku, "price": price, "quantity": quantity}],
            )
        message.update(type="track", event=event, properties=properties)
    elif roll < 0.9:
        message.update(
            type="page",
            name=path.strip("/") or "home",
            properties={"path": path, "referrer": "https://www.example.org/", "title": "Shop"},
        )
    else:
        message.update(
            type="identify",
            traits={
                "plan": rng.choice(["free", "pro", "gold"]),
                "newsletter": rng.random() < 0.5,
                "visits": rng.randint(1, 40),
            },
        )
    return message


def make_bodies(
    *, batches: int, batch_size: int, people: list[Visitor], rng: random.Random, now: datetime
) -> list[bytes]:
    """Request bodies, encoded before the clock starts (the client's CPU is not measured)."""
    bodies = []
    for _ in range(batches):
        batch = [
            make_message(
                rng.choice(people), rng, now - timedelta(seconds=rng.uniform(0, 3 * 24 * 3600))
            )
            for _ in range(batch_size)
        ]
        sent_at = now.isoformat().replace("+00:00", "Z")
        body = json.dumps({"batch": batch, "sentAt": sent_at}, separators=(",", ":")).encode()
        if len(body) > MAX_BODY_BYTES:
            raise SystemExit(f"a batch encodes to {len(body)} bytes, over the API's limit")
        bodies.append(body)
    return bodies


# --- sending --------------------------------------------------------------------------------


@dataclass
class SenderResult:
    latencies_ms: list[float] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    rate_limited: int = 0
    failures: list[str] = field(default_factory=list)


def send(
    base_url: str, write_key: str, bodies: list[bytes], start: threading.Barrier, timeout: float
) -> SenderResult:
    result = SenderResult()
    http = requests.Session()
    http.trust_env = False  # 127.0.0.1 only, never through a proxy
    http.auth = (write_key, "")
    headers = {"Content-Type": "application/json"}
    start.wait()
    for body in bodies:
        while True:
            started = time.perf_counter()
            try:
                response = http.post(
                    f"{base_url}/v1/batch", data=body, headers=headers, timeout=timeout
                )
            except requests.RequestException as exc:
                result.failures.append(repr(exc))
                break
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 429:
                result.rate_limited += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            result.latencies_ms.append(elapsed)
            if response.status_code != 200:
                result.failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                break
            answer = response.json()
            result.accepted += answer["accepted"]
            result.rejected += len(answer["rejected"])
            break
    http.close()
    return result


def create_sources(server: Server, count: int) -> list[str]:
    """One source per sender, through the product's own command (prints the write key)."""
    return [
        server.manage("create_source", f"bench-sender-{n}-{uuid.uuid4().hex[:6]}").strip()
        for n in range(count)
    ]


# --- memory ---------------------------------------------------------------------------------


def worker_pids(web: Process) -> set[int]:
    """uvicorn's worker processes: its group without the supervisor and multiprocessing's
    resource tracker."""
    assert web.popen is not None
    pids = set()
    for pid in web.group_pids() - {web.popen.pid}:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            pids.add(pid)
    return pids


@contextmanager
def sampling_rss(server: Server, every: float = 0.2) -> Iterator[dict[int, list[int]]]:
    """RSS (KiB) of each uvicorn worker process, sampled until the block ends."""
    web = server.processes["uvicorn"]
    samples: dict[int, list[int]] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in worker_pids(web):
                try:
                    samples.setdefault(pid, []).append(rss_kib(pid))
                except (OSError, RuntimeError):
                    continue  # the process exited between listing and reading
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


# --- CPU: where the two cores went ---------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """User + system CPU of one process so far, in clock ticks (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def postgres_pids() -> set[int]:
    pids = set()
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                pids.add(int(comm.parent.name))
        except (OSError, ValueError):
            continue
    return pids


def cpu_by_role(server: Server) -> dict[str, dict[int, int]]:
    """CPU ticks so far of each process, by role: the web workers, the Celery worker
    (with its pool), PostgreSQL (every backend on the machine)."""
    roles = {
        "uvicorn workers": worker_pids(server.processes["uvicorn"]),
        "Celery worker": server.processes["celery-worker"].group_pids(),
        "PostgreSQL": postgres_pids(),
    }
    return {role: {pid: cpu_ticks(pid) for pid in pids} for role, pids in roles.items()}


def cpu_seconds_between(
    before: dict[str, dict[int, int]], after: dict[str, dict[int, int]]
) -> dict[str, float]:
    """CPU seconds each role used in between (processes started meanwhile count from 0)."""
    return {
        role: sum(ticks - before.get(role, {}).get(pid, 0) for pid, ticks in pids.items())
        / CLOCK_TICKS
        for role, pids in after.items()
    }


# --- the ceiling ----------------------------------------------------------------------------


COPY_ATTEMPTS = 3


def copy_ceiling(database_url: str) -> tuple[int, float]:
    """COPY the stored events into an equal table; (rows, seconds) of the COPY alone,
    the fastest of COPY_ATTEMPTS runs, each into a fresh table after a CHECKPOINT
    (so that none pays for flushing the run's dirty pages): the ceiling is the
    best PostgreSQL does, which makes the ratio the harder to meet."""
    buffer = io.BytesIO()
    with psycopg.connect(database_url, connect_timeout=5) as connection:
        with connection.cursor() as cursor:
            # Every column but the id, whatever columns the model has grown.
            cursor.execute(
                "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) "
                "FROM information_schema.columns "
                "WHERE table_name = 'personalize_event' AND column_name <> 'id'"
            )
            found = cursor.fetchone()
            assert found is not None
            columns = found[0]
            with cursor.copy(f"COPY (SELECT {columns} FROM personalize_event) TO STDOUT") as out:
                for data in out:
                    buffer.write(data)
        connection.commit()
        payload = buffer.getvalue()
        attempts = []
        for _ in range(COPY_ATTEMPTS):
            connection.execute("DROP TABLE IF EXISTS bench_copy_event")
            connection.execute(
                "CREATE TABLE bench_copy_event (LIKE personalize_event INCLUDING ALL)"
            )
            connection.commit()
            connection.autocommit = True
            connection.execute("CHECKPOINT")
            connection.autocommit = False
            started = time.perf_counter()
            with connection.cursor() as cursor:
                with cursor.copy(f"COPY bench_copy_event ({columns}) FROM STDIN") as copy:
                    for offset in range(0, len(payload), 1 << 20):
                        copy.write(payload[offset : offset + (1 << 20)])
                rows = cursor.rowcount
            connection.commit()
            attempts.append((rows, time.perf_counter() - started))
        connection.execute("DROP TABLE bench_copy_event")
        connection.commit()
    return min(attempts, key=lambda attempt: attempt[1])


def wait_for_inbox(server: Server) -> float:
    """Seconds until the Celery worker has stored every accepted batch as events."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_SECONDS:
        if server.query("SELECT count(*) FROM personalize_pending_batch")[0][0] == 0:
            break
        time.sleep(0.05)
    return time.monotonic() - started


def wait_for_recomputes(server: Server) -> float:
    """Seconds until the Celery worker has worked off every recompute the run requested."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_SECONDS:
        pending = server.query(
            "SELECT count(*) FROM personalize_profile WHERE recompute_requested_at IS NOT NULL"
        )[0][0]
        if pending == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - started


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=200, help="requests in all (default 200)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent senders (default 8)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=4, help="batches sent first, not timed")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per request")
    args = parser.parse_args()

    now = datetime.now(UTC)
    rng = random.Random(args.seed)
    people = make_visitors(args.visitors, rng)
    # Each sender speaks for its own share of the visitors, as separate sites or
    # app servers would: concurrent batches rarely name the same person.
    shares = [people[n :: args.senders] for n in range(args.senders)]
    warmup = make_bodies(
        batches=args.warmup, batch_size=args.batch_size, people=shares[0], rng=rng, now=now
    )
    per_sender = [
        make_bodies(
            batches=len(range(n, args.batches, args.senders)),
            batch_size=args.batch_size,
            people=shares[n],
            rng=rng,
            now=now,
        )
        for n in range(args.senders)
    ]
    timed = [body for bodies in per_sender for body in bodies]
    mean_body = statistics.fmean(len(b) for b in timed) / 1024

    with tempfile.TemporaryDirectory() as tmp, production_stack(Path(tmp)) as server:
        keys = create_sources(server, args.senders)
        # Warm-up: imports, connection pools and the first profiles, on both web workers.
        send(server.base_url, keys[0], warmup, threading.Barrier(1), args.timeout)
        wait_for_inbox(server)
        rows_before = server.query("SELECT count(*) FROM personalize_event")[0][0]
        results: list[SenderResult] = [SenderResult() for _ in keys]
        start = threading.Barrier(args.senders + 1)

        def run(n: int) -> None:
            results[n] = send(server.base_url, keys[n], per_sender[n], start, args.timeout)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(args.senders)]
        baseline = {pid: rss_kib(pid) for pid in worker_pids(server.processes["uvicorn"])}
        with sampling_rss(server) as rss:
            for thread in threads:
                thread.start()
            start.wait()
            cpu_before = cpu_by_role(server)
            began = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            cpu_used = cpu_seconds_between(cpu_before, cpu_by_role(server))
            stored_after = wait_for_inbox(server)
            through = time.perf_counter() - began
        failed = [f for r in results for f in r.failures]
        if failed:
            # Why the server answered as it did, before its logs go with the stack.
            print(server.processes["uvicorn"].tail(80), file=sys.stderr)
        drain = wait_for_recomputes(server)
        copied, copy_seconds = copy_ceiling(server.database_url)
        event_rows = server.query("SELECT count(*) FROM personalize_event")[0][0]

    latencies = [ms for r in results for ms in r.latencies_ms]
    stored = sum(r.accepted for r in results)
    failures = [f for r in results for f in r.failures]
    events = sum(len(b) for b in per_sender) * args.batch_size
    rate = stored / wall
    copy_rate = copied / copy_seconds
    print(
        f"ingest through /v1/batch (production stack: PostgreSQL, Redis, Celery, uvicorn x2), "
        f"{args.senders} concurrent senders, {len(timed)} batches of {args.batch_size} "
        f"({mean_body:.0f} KiB each), {args.visitors} visitors:"
    )
    print(
        f"  {stored} of {events} events accepted (committed) in {wall:.1f} s: "
        f"{rate:.0f} events/s   "
        f"({event_rows - rows_before} stored as events, "
        f"{sum(r.rejected for r in results)} rejected, "
        f"{sum(r.rate_limited for r in results)} answered 429, {len(failures)} failed)"
    )
    print(
        f"  per request: p50 {percentile(latencies, 50):.0f} ms   "
        f"p95 {percentile(latencies, 95):.0f} ms   p99 {percentile(latencies, 99):.0f} ms   "
        f"max {max(latencies):.0f} ms"
    )
    print(
        f"  the Celery worker had stored them all as events {stored_after:.1f} s after the last "
        f"answer: {stored / through:.0f} events/s from first request to last event stored"
    )
    print(f"  and finished the segment recomputes they asked for {drain:.1f} s after that")
    print(
        f"PostgreSQL COPY of the same {copied} rows (of {event_rows} stored) into "
        f"(LIKE personalize_event INCLUDING ALL), fastest of {COPY_ATTEMPTS}: "
        f"{copy_seconds:.2f} s, {copy_rate:.0f} rows/s"
    )
    print(f"  ratio ingest / COPY: {rate / copy_rate:.3f}x   (target >= 0.3x)")
    print(f"  ratio stored as events / COPY: {stored / through / copy_rate:.3f}x")
    print(
        f"CPU used during the run ({os.cpu_count()} cores x {wall:.1f} s = "
        f"{(os.cpu_count() or 1) * wall:.1f} core-seconds):"
    )
    for role, seconds in cpu_used.items():
        print(
            f"  {role}: {seconds:.1f} s, {seconds * 1000 / max(1, len(timed)):.0f} ms per request"
        )
    print("uvicorn worker RSS during the run:")
    for pid, values in sorted(rss.items()):
        print(
            f"  pid {pid}: {baseline.get(pid, values[0]) / 1024:.1f} MiB before, "
            f"peak {max(values) / 1024:.1f} MiB, end {values[-1] / 1024:.1f} MiB"
        )
    for failure in failures[:5]:
        print(f"  failure: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
