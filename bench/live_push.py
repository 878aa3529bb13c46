"""Benchmark of the live channel on the production stack (issue: Live).

1. Event-to-push latency: one visitor keeps a page socket open and sends
   ``identify`` calls that flip a trait-based segment in and out; each call
   goes through the whole path (HTTP ingest, PostgreSQL, Redis broker, Celery
   worker, channel layer, ASGI worker, socket). Reports p50/p95/p99.
2. Idle sockets: a single-process uvicorn holds N idle page sockets, each of its
   own visitor; reports its memory per socket.

Everything runs on 127.0.0.1 and stops by itself. Targets: p95 < 100 ms;
5,000 idle sockets on one worker.

    .venv/bin/python -m bench.live_push [--events 1000] [--sockets 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import websockets

from tests.e2e.conftest import HOST, VENV_BIN, Server, _free_port, production_stack

TOGGLE_SEGMENT = (
    "from segments.services import segment_save; "
    "segment_save(slug='bench-toggle', name='Bench toggle', "
    "rule={'type': 'trait', 'path': 'bench_on', 'op': 'eq', 'value': True})"
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def measure_latency(server: Server, events: int) -> tuple[list[float], list[float]]:
    from websockets.sync.client import connect

    visitor = server.visitor()
    latencies: list[float] = []
    ingest: list[float] = []
    with connect(
        server.ws_url,
        origin=websockets.typing.Origin(server.base_url),
        additional_headers={"Cookie": f"ajs_anonymous_id={visitor.anonymous_id}"},
        proxy=None,
    ) as socket:
        socket.send(json.dumps({"type": "subscribe", "slots": ["hero"]}))
        json.loads(socket.recv(timeout=10))
        for index in range(events):
            started = time.perf_counter()
            visitor.batch(
                {
                    "type": "identify",
                    "messageId": str(uuid.uuid4()),
                    "traits": {"bench_on": index % 2 == 0},
                }
            )
            ingest.append((time.perf_counter() - started) * 1000)
            expected = "entered" if index % 2 == 0 else "exited"
            while True:
                message = json.loads(socket.recv(timeout=10))
                if message.get("type") == "update" and "bench-toggle" in message.get(expected, []):
                    break
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies, ingest


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def _hold(
    url: str, origin: str, count: int, opened: list[int]
) -> list[websockets.ClientConnection]:
    semaphore = asyncio.Semaphore(100)
    sockets: list[websockets.ClientConnection] = []

    async def one() -> None:
        async with semaphore:
            socket = await websockets.connect(
                url,
                origin=websockets.typing.Origin(origin),
                additional_headers={"Cookie": f"ajs_anonymous_id={uuid.uuid4()}"},
                proxy=None,
                open_timeout=60,
                ping_interval=None,
            )
            await socket.send(json.dumps({"type": "subscribe", "slots": ["hero"]}))
            await socket.recv()
            sockets.append(socket)
            opened[0] += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return sockets


def measure_idle_sockets(server: Server, count: int) -> tuple[int, int, int]:
    """Open ``count`` sockets on a one-process uvicorn; (held, rss before KiB, rss after KiB)."""
    port = _free_port()
    single = server.start(
        "uvicorn-single",
        [
            str(VENV_BIN / "uvicorn"),
            "config.asgi:application",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
        ],
    )
    base = f"http://{HOST}:{port}"
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/api/v1/blocks?slot=hero", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    assert single.popen is not None
    pid = single.popen.pid
    # Warm up: one socket so lazy imports and pools are loaded before the baseline.
    opened = [0]
    asyncio.run(_warm(f"ws://{HOST}:{port}/ws/personalize/", base))
    before = rss_kib(pid)

    async def run() -> tuple[int, int]:
        sockets = await _hold(f"ws://{HOST}:{port}/ws/personalize/", base, count, opened)
        await asyncio.sleep(2)
        after = rss_kib(pid)
        alive = sum(1 for s in sockets if s.state.name == "OPEN")
        await asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
        return alive, after

    alive, after = asyncio.run(run())
    single.stop()
    return alive, before, after


async def _warm(url: str, origin: str) -> None:
    sockets = await _hold(url, origin, 1, [0])
    await sockets[0].close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=5000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.sockets + 1024)), hard)
    )

    with tempfile.TemporaryDirectory() as tmp, production_stack(Path(tmp)) as server:
        server.manage("shell", "-c", TOGGLE_SEGMENT)
        latencies, ingest = measure_latency(server, args.events)
        print(f"event-to-push latency over {len(latencies)} events (production stack, uvicorn x2):")
        print(
            f"  p50 {percentile(latencies, 50):.1f} ms   p95 {percentile(latencies, 95):.1f} ms   "
            f"p99 {percentile(latencies, 99):.1f} ms   mean {statistics.fmean(latencies):.1f} ms   "
            f"(target p95 < 100 ms)"
        )
        print(
            f"  of which the HTTP ingest call (200 after commit): p50 {percentile(ingest, 50):.1f} ms   "
            f"p95 {percentile(ingest, 95):.1f} ms"
        )
        alive, before, after = measure_idle_sockets(server, args.sockets)
        per_socket = (after - before) / max(alive, 1)
        print(f"idle sockets on one uvicorn process: {alive} of {args.sockets} open (target 5000)")
        print(
            f"  RSS {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after: "
            f"{per_socket:.1f} KiB per socket"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
