"""The product as real processes, for end-to-end tests over HTTP and WebSockets.

``stack`` is the production stack: a fresh PostgreSQL database, a Redis logical
database of its own, ``manage.py migrate`` and ``load_demo``, then a Celery
worker, Celery beat and uvicorn with two workers, each in its own process group.
``embedded`` is the no-configuration default: one uvicorn process on SQLite.

Nothing here touches the unit tests' in-memory database: the servers run with
``config.settings`` and their own environment, and tests talk to them only over
127.0.0.1. If PostgreSQL or Redis cannot be reached the fixtures fail; CI must
never mistake a missing service for a passing suite.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import requests
from playwright.sync_api import Browser, Playwright, sync_playwright
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = f"postgres://postgres@{HOST}:5432/postgres"
REDIS_URL = f"redis://{HOST}:6379"
# Logical databases the suite may claim; a concurrent run takes the next free one.
REDIS_DBS = range(9, 16)
REDIS_CLAIM_KEY = "p13n-e2e:claimed-by"
STARTUP_SECONDS = 90
CHROMIUM = "/usr/bin/chromium"
# The machine has no internet: without these Chromium stalls on start-up calls.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WRITE_KEY = re.compile(r'p13n\.load\("([^"]+)"\)')
# Variables of the developer's shell that would change which stack a server runs.
INHERITED_SETTINGS = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_TASK_ALWAYS_EAGER",
    "CHANNEL_LAYER_URL",
    "SEGMENT_SWEEP_SECONDS",
    "SEGMENT_STALE_REQUEST_SECONDS",
    "DJANGO_DEBUG",
    "DJANGO_ALLOWED_HOSTS",
    "P13N_WEB_SOURCE",
)


# --- processes ----------------------------------------------------------------------------


@dataclass
class Process:
    """One server process in its own process group, its output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 150) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def group_pids(self) -> set[int]:
        """Every live process of this process's group: the master and its workers."""
        if self.popen is None:
            return set()
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            # After the command name: state, ppid, pgrp.
            if fields[0] != "Z" and int(fields[2]) == self.popen.pid:
                pids.add(int(stat.parent.name))
        return pids

    def stop(self, grace: float = 15.0) -> None:
        if self.popen is None:
            return
        group = self.popen.pid
        _signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self.running or self.group_pids()):
            time.sleep(0.1)
        if self.running or self.group_pids():
            _signal_group(group, signal.SIGKILL)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _http() -> requests.Session:
    """An HTTP client that ignores the shell's proxy settings: tests talk to 127.0.0.1 only."""
    session = requests.Session()
    session.trust_env = False
    return session


def _server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_SETTINGS}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
        # Tests talk to 127.0.0.1 only: never through a proxy from the shell.
        NO_PROXY="*",
        no_proxy="*",
    )
    env.update(settings)
    return env


# --- a running server and its visitors ----------------------------------------------------


@dataclass
class Server:
    """A running instance of the product: its address, environment and processes."""

    port: int
    env: dict[str, str]
    tmp: Path
    processes: dict[str, Process] = field(default_factory=dict)
    database_url: str = ""

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws/personalize/"

    def manage(self, *args: str) -> str:
        """Run a management command against this server's database; its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"manage.py {' '.join(args)} exited {done.returncode}\n"
                f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}",
                pytrace=False,
            )
        return done.stdout

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows straight from the stack's PostgreSQL database, bypassing the product."""
        with psycopg.connect(self.database_url, connect_timeout=5) as connection:
            return connection.execute(sql, params).fetchall()

    def wait_until_stored(self, timeout: float = 60) -> None:
        """Wait for the worker to store every batch /v1/batch accepted (the inbox empty)."""
        deadline = time.monotonic() + timeout
        while self.query("SELECT count(*) FROM personalize_pending_batch") != [(0,)]:
            if time.monotonic() > deadline:
                pytest.fail(f"accepted batches still not stored after {timeout}s\n{self.logs()}")
            time.sleep(0.1)

    def start(self, name: str, args: list[str]) -> Process:
        process = Process(name=name, args=args, env=self.env, log_path=self.tmp / f"{name}.log")
        self.processes[name] = process
        process.start()
        return process

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log_path}) ---\n{p.tail()}" for p in self.processes.values()
        )

    def wait_until(self, what: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until it holds; fail with every log if a process dies or time runs out."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            for process in self.processes.values():
                if not process.running:
                    pytest.fail(
                        f"{process.name} exited while waiting for {what}\n{self.logs()}",
                        pytrace=False,
                    )
            if ready():
                return
            time.sleep(0.2)
        pytest.fail(f"timed out after {STARTUP_SECONDS}s waiting for {what}\n{self.logs()}")

    def answers_http(self) -> bool:
        try:
            return _http().get(f"{self.base_url}/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_web(self, workers: int) -> None:
        self.start(
            "uvicorn",
            [
                str(VENV_BIN / "uvicorn"),
                "config.asgi:application",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
        )
        self.wait_until(f"HTTP on {self.base_url}", self.answers_http)

    def visitor(self) -> Visitor:
        """A new visitor: their first page view gives them the anonymous id cookie."""
        http = _http()
        home = http.get(f"{self.base_url}/", timeout=10)
        assert home.status_code == 200, home.text
        match = WRITE_KEY.search(home.text)
        assert match is not None, "the homepage does not load the snippet with a write key"
        anonymous_id = http.cookies.get("ajs_anonymous_id")
        assert anonymous_id is not None, f"no ajs_anonymous_id cookie: {home.headers}"
        return Visitor(
            server=self,
            http=http,
            anonymous_id=anonymous_id,
            write_key=match.group(1),
        )


@dataclass
class Visitor:
    """One browser's worth of cookies, driven over HTTP and WebSockets."""

    server: Server
    http: requests.Session
    anonymous_id: str
    write_key: str

    def batch(self, *messages: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/batch as the snippet does; the response body."""
        response = self.http.post(
            f"{self.server.base_url}/v1/batch",
            json={
                "writeKey": self.write_key,
                "batch": [{"anonymousId": self.anonymous_id, **m} for m in messages],
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def track(self, event: str, **properties: Any) -> dict[str, Any]:
        return self.batch(
            {
                "type": "track",
                "event": event,
                "messageId": str(uuid.uuid4()),
                "properties": properties,
            }
        )

    def homepage(self) -> str:
        response = self.http.get(f"{self.server.base_url}/", timeout=10)
        assert response.status_code == 200, response.text
        return response.text

    def blocks(self, slot: str) -> dict[str, Any]:
        response = self.http.get(
            f"{self.server.base_url}/api/v1/blocks", params={"slot": slot}, timeout=10
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    @contextmanager
    def socket(self) -> Iterator[LiveSocket]:
        """An open page's WebSocket, proven by this visitor's cookie and the site's origin."""
        with connect(
            self.server.ws_url,
            origin=Origin(self.server.base_url),
            additional_headers={"Cookie": f"ajs_anonymous_id={self.anonymous_id}"},
            proxy=None,
            open_timeout=10,
        ) as connection:
            yield LiveSocket(connection)


class LiveSocket:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def send_json(self, message: dict[str, Any]) -> None:
        self.connection.send(json.dumps(message))

    def receive_json(self, timeout: float) -> dict[str, Any]:
        """The next message; TimeoutError if none arrives in ``timeout`` seconds."""
        message: dict[str, Any] = json.loads(self.connection.recv(timeout=timeout))
        return message

    def subscribe(self, *slots: str) -> dict[str, Any]:
        """Declare the page's slots; the server answers with their current blocks."""
        self.send_json({"type": "subscribe", "slots": list(slots)})
        return self.receive_json(timeout=10)

    @property
    def local_port(self) -> int:
        port: int = self.connection.socket.getsockname()[1]
        return port


def block_keys(update: dict[str, Any], slot: str) -> list[str]:
    return [block["key"] for block in update["slots"][slot]]


def pid_holding_connection(server: Process, server_port: int, client_port: int) -> int | None:
    """Which process of ``server``'s group holds the server end of a TCP connection."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            columns = line.split()
            local_port = int(columns[1].rsplit(":", 1)[1], 16)
            remote_port = int(columns[2].rsplit(":", 1)[1], 16)
            established = columns[3] == "01"
            if established and (local_port, remote_port) == (server_port, client_port):
                inodes.add(columns[9])
    if len(inodes) != 1:
        return None
    wanted = f"socket:[{inodes.pop()}]"
    for pid in server.group_pids():
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) == wanted:
                    return pid
            except OSError:
                continue
    return None


# --- services -----------------------------------------------------------------------------


def _postgres() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}\n"
            "The stack tests need it; start it (see .ci/run) instead of skipping them.",
            pytrace=False,
        )


def _claim_redis_db(token: str) -> tuple[int, redis.Redis]:
    """A logical database no other run is using, emptied; claimed for an hour at most."""
    for db in REDIS_DBS:
        client = redis.Redis.from_url(f"{REDIS_URL}/{db}", socket_connect_timeout=5)
        try:
            claimed = client.set(REDIS_CLAIM_KEY, token, nx=True, ex=3600)
        except redis.RedisError as exc:
            pytest.fail(
                f"Redis is not reachable at {REDIS_URL}: {exc}\n"
                "The stack tests need it; start it (see .ci/run) instead of skipping them.",
                pytrace=False,
            )
        if claimed:
            client.flushdb()
            client.set(REDIS_CLAIM_KEY, token, ex=3600)
            return db, client
        client.close()
    pytest.fail(f"every Redis database in {list(REDIS_DBS)} is claimed by another test run")


# --- fixtures -----------------------------------------------------------------------------


@contextmanager
def production_stack(
    tmp: Path, *, web_workers: int = 2, sweep_seconds: int = 1
) -> Iterator[Server]:
    """PostgreSQL, Redis, Celery worker and beat, uvicorn: started, yielded, torn down.

    Used by the ``stack`` fixture and by the benchmarks under bench/.
    """
    token = uuid.uuid4().hex[:12]
    database = f"p13n_e2e_{token}"
    admin = _postgres()
    redis_db, broker = _claim_redis_db(token)
    database_url = f"postgres://postgres@{HOST}:5432/{database}"
    server = Server(
        port=_free_port(),
        tmp=tmp,
        database_url=database_url,
        env=_server_env(
            DATABASE_URL=database_url,
            REDIS_URL=f"{REDIS_URL}/{redis_db}",
            SEGMENT_SWEEP_SECONDS=str(sweep_seconds),
            PENDING_SWEEP_SECONDS=str(sweep_seconds),
            SEGMENT_STALE_REQUEST_SECONDS="3",
        ),
    )
    try:
        admin.execute(f'CREATE DATABASE "{database}"')
        server.manage("migrate", "--noinput")
        server.manage("load_demo")
        worker = server.start(
            "celery-worker",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--queues",
                "default,segments",
                "--concurrency",
                "2",
                "--pool",
                "prefork",
                "--loglevel",
                "INFO",
                "--hostname",
                f"e2e-{token}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
        )
        beat = server.start(
            "celery-beat",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(tmp / "celerybeat-schedule"),
            ],
        )
        server.start_web(workers=web_workers)
        server.wait_until("the Celery worker", lambda: " ready." in worker.log())
        server.wait_until("Celery beat", lambda: "beat: Starting..." in beat.log())
        yield server
    finally:
        server.stop()
        broker.flushdb()
        broker.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The production stack: PostgreSQL, Redis, Celery worker and beat, uvicorn x2."""
    with production_stack(tmp_path_factory.mktemp("stack")) as server:
        yield server


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default with no configuration: one uvicorn process, SQLite, eager tasks."""
    tmp = tmp_path_factory.mktemp("embedded")
    server = Server(
        port=_free_port(),
        tmp=tmp,
        env=_server_env(DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}"),
    )
    try:
        server.manage("migrate", "--noinput")
        server.manage("load_demo")
        server.start_web(workers=1)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (never a downloaded browser).

    Closed when the e2e tests are done: while open, Playwright's sync API keeps an
    event loop running in the main thread, and tests after them that call
    ``async_to_sync`` from that thread (as Celery tasks and views do) would fail."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test shows the tail of every server log it ran against."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name in ("stack", "embedded"):
            server = funcargs.get(name)
            if isinstance(server, Server):
                for process in server.processes.values():
                    report.sections.append((f"{name}: {process.name} log", process.tail()))
    return report
