"""Version stamps shared by every process, for values each process keeps in memory.

A web process keeps what it would otherwise read on every request from rows that
rarely change: the published content catalog, our web source's write key, the
homepage's featured products. Each such value has a *stamp*, a random string in
Django's cache (Redis on the production stack). A write to the rows bumps the
stamp; a reader that finds another stamp than the one its value was built under
rebuilds it. So an edit in one process is seen by the next request in every
process.

Reading a stamp from Redis on every request costs a round trip (a third of a
block API request's CPU). So on Redis each bump is also published on a channel
that every process subscribes to once; a reader drains whatever bumps have
reached its socket with a non-blocking read and answers from memory. Redis
writes a publish to every subscriber's socket in the same event-loop pass in
which it answers the publisher, so a bump is in every process's socket before
the writer's own request can have returned: the next request still sees it.

While a process is not subscribed (starting up, Redis restarted, a pub/sub
failure) it reads the stamp from the cache on every call, as without pub/sub,
and tries to subscribe again every ``RESUBSCRIBE_SECONDS``; after subscribing it
reads each stamp once more, since bumps sent while it was away are lost. Other
cache backends (process memory in the embedded default) are read on every call:
they are cheap, or have no pub/sub.

If the cache cannot be reached at all, every read returns a unique stamp: the
value is rebuilt on every request, slower but never stale.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any, ClassVar, Generic, TypeVar

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, BaseCache, caches
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

logger = logging.getLogger(__name__)

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
RESUBSCRIBE_SECONDS = 5.0
# Waiting longer than this for Redis to confirm a subscription counts as a failure.
SUBSCRIBE_TIMEOUT_SECONDS = 2.0
HEALTH_CHECK_SECONDS = 10
SUBSCRIBER_NAME = "p13n-stamps"

_V = TypeVar("_V")
_Model = TypeVar("_Model", bound=models.Model)


def _new_version() -> str:
    return uuid.uuid4().hex


class SharedStamps:
    """A process's view of the shared stamps (the module keeps one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backend: BaseCache | None = None
        self._publisher: Any = None
        self._channel_name = ""
        # While subscribed: stamps as of the last drain, and which subscription
        # (epoch) they belong to; a new subscription starts from nothing.
        self._pubsub: Any = None
        self._pid = 0
        self._epoch = 0
        self._known: dict[str, str] = {}
        self._subscribing = False
        self._last_attempt = float("-inf")

    # --- the cache ------------------------------------------------------------------

    def _cache(self) -> BaseCache:
        # One backend for the process: ``django.core.cache.cache`` is a new backend
        # per thread and async context, so under ASGI each request would open its
        # own Redis connection; redis-py's connection pool is thread-safe.
        if self._backend is None:
            self._backend = caches.create_connection(DEFAULT_CACHE_ALIAS)
        return self._backend

    def _read(self, name: str) -> str:
        cache = self._cache()
        version = cache.get(name)
        if version is None:  # never bumped, or the cache lost it: agree on one
            cache.add(name, _new_version(), timeout=None)
            version = cache.get(name)
        return str(version)

    # --- pub/sub (Redis only) ---------------------------------------------------------

    @staticmethod
    def _redis_url() -> str | None:
        config = settings.CACHES.get(DEFAULT_CACHE_ALIAS, {})
        if config.get("BACKEND") != REDIS_BACKEND:
            return None
        location = config.get("LOCATION")
        # Django's Redis cache writes to the first server of a list.
        servers = location.split(",") if isinstance(location, str) else list(location or [])
        return servers[0].strip() if servers else None

    def _client(self, url: str) -> tuple[Any, str]:
        """The client that publishes bumps, and the channel (per key prefix and
        database: pub/sub channels are shared by every database of a server)."""
        if self._publisher is None:
            from redis import Redis

            publisher = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            db = publisher.connection_pool.connection_kwargs.get("db", 0)
            self._channel_name = f"{self._cache().make_key('stamps')}:db{db}"
            self._publisher = publisher
        return self._publisher, self._channel_name

    def _drain(self) -> int | None:
        """Apply the bumps that reached this process (caller holds the lock): the
        subscription's epoch, or None when not subscribed."""
        if self._pubsub is None:
            return None
        if self._pid != os.getpid():  # a forked child must not read its parent's socket
            self._pubsub = None
            return None
        try:
            while (message := self._pubsub.get_message(timeout=0)) is not None:
                if message["type"] == "message":
                    name, _, version = message["data"].decode().partition(" ")
                    self._known[name] = version
        except Exception:
            logger.warning("stamp subscription lost: reading stamps from the cache", exc_info=True)
            pubsub, self._pubsub = self._pubsub, None
            self._close(pubsub)
            return None
        return self._epoch

    def _maybe_subscribe(self) -> None:
        """Subscribe if due, outside the lock (other threads read the cache meanwhile)."""
        url = self._redis_url()
        with self._lock:
            due = time.monotonic() - self._last_attempt >= RESUBSCRIBE_SECONDS
            if url is None or self._subscribing or not due:
                return
            self._subscribing = True
            self._last_attempt = time.monotonic()
        pubsub = None
        try:
            from redis import Redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            _, channel = self._client(url)
            # No silent reconnect: bumps sent meanwhile would be lost unnoticed.
            subscriber = Redis.from_url(
                url,
                socket_connect_timeout=SUBSCRIBE_TIMEOUT_SECONDS,
                socket_timeout=SUBSCRIBE_TIMEOUT_SECONDS,
                retry=Retry(NoBackoff(), 0),
                # A PING now and then, so a connection that died quietly is noticed.
                health_check_interval=HEALTH_CHECK_SECONDS,
                # Named, so an operator (and a test) can find it in CLIENT LIST.
                client_name=SUBSCRIBER_NAME,
            )
            pubsub = subscriber.pubsub()
            pubsub.subscribe(channel)
            confirmed = pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_SECONDS)
            if confirmed is None or confirmed["type"] != "subscribe":
                raise ConnectionError(f"no subscription confirmation: {confirmed!r}")
        except Exception:
            logger.warning("cannot subscribe to stamp bumps: reading the cache", exc_info=True)
            self._close(pubsub)
            with self._lock:
                self._subscribing = False
            return
        with self._lock:
            self._pubsub, self._pid = pubsub, os.getpid()
            # Bumps sent before the subscription were not received: read each stamp again.
            self._epoch += 1
            self._known = {}
            self._subscribing = False

    @staticmethod
    def _close(pubsub: Any) -> None:
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                logger.debug("closing the stamp subscription failed", exc_info=True)

    # --- the API ---------------------------------------------------------------------

    def current(self, name: str) -> str:
        try:
            with self._lock:
                epoch = self._drain()
                if epoch is not None and (known := self._known.get(name)) is not None:
                    return known
            if epoch is None:
                self._maybe_subscribe()
                with self._lock:
                    epoch = self._drain()
            version = self._read(name)
            if epoch is not None:
                with self._lock:
                    # Unless a bump arrived meanwhile, or the subscription was replaced
                    # (bumps sent in between were lost: that one reads again).
                    if self._epoch == epoch and self._pubsub is not None:
                        version = self._known.setdefault(name, version)
            return version
        except Exception:
            logger.warning("stamp %s unavailable: rebuilding", name, exc_info=True)
            return f"unavailable-{_new_version()}"

    def bump(self, name: str) -> None:
        version = _new_version()
        try:
            self._cache().set(name, version, timeout=None)
            url = self._redis_url()
            if url is None:
                return
            with self._lock:
                publisher, channel = self._client(url)
                if self._pubsub is not None:
                    # This process sees its own write at once, not when the message is back.
                    self._known[name] = version
            publisher.publish(channel, f"{name} {version}")
        except Exception:
            # The write itself succeeded; readers fall back as described above.
            logger.exception("could not bump the stamp %s", name)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


_stamps = SharedStamps()


def current(name: str) -> str:
    """The stamp ``name`` as of now (see the module docstring)."""
    return _stamps.current(name)


def bump(name: str) -> None:
    """Rows behind ``name`` changed: every process rebuilds what it kept from them.

    Bumped now (this transaction's own reads, and tests, which never commit) and
    again after commit: a process that rebuilt from the not yet committed rows in
    between rebuilds once more.
    """
    _stamps.bump(name)
    transaction.on_commit(lambda: _stamps.bump(name))


class ProcessCache(Generic[_V]):
    """Values this process keeps until the stamp ``name`` is bumped (or ``max_age``).

    ``get(key, load)`` returns the kept value or calls ``load`` (reading the rows
    after the stamp, so a write committed meanwhile bumps it again). Values are
    shared by the process's threads: treat them as read-only.
    """

    _all: ClassVar[list[ProcessCache[Any]]] = []

    def __init__(self, name: str, *, max_age_seconds: float) -> None:
        self.name = name
        self.max_age_seconds = max_age_seconds
        self._version = ""
        self._built_at = 0.0
        self._values: dict[Hashable, _V] = {}
        ProcessCache._all.append(self)

    def get(self, key: Hashable, load: Callable[[], _V]) -> _V:
        version = current(self.name)
        values = self._values
        if version != self._version or time.monotonic() - self._built_at > self.max_age_seconds:
            values = {}
            self._version, self._built_at, self._values = version, time.monotonic(), values
        try:
            return values[key]
        except KeyError:
            value = values[key] = load()  # racing threads load the same rows
            return value

    def forget(self) -> None:
        self._version, self._values = "", {}

    @classmethod
    def forget_all(cls) -> None:
        """Drop every kept value (tests: rows rolled back behind the stamps' back)."""
        for cache in cls._all:
            cache.forget()
        _stamps.forget()


def bump_on_save_and_delete(model: type[models.Model], name: str) -> None:
    """Any saved or deleted ``model`` row bumps the stamp ``name`` (cache invalidation only)."""

    def changed(sender: Any, **kwargs: Any) -> None:
        bump(name)

    uid = f"stamp-{name}-{model._meta.label}"
    post_save.connect(changed, sender=model, weak=False, dispatch_uid=f"{uid}-save")
    post_delete.connect(changed, sender=model, weak=False, dispatch_uid=f"{uid}-delete")


class StampBumpingQuerySet(models.QuerySet[_Model]):
    """Bulk writes bump the stamps in ``bumps`` too (they send no ``post_save``/
    ``post_delete`` per row)."""

    bumps: ClassVar[tuple[str, ...]] = ()

    def rows_changed(self) -> None:
        for name in self.bumps:
            bump(name)

    def update(self, **kwargs: Any) -> int:
        updated = super().update(**kwargs)
        self.rows_changed()
        return updated

    def delete(self) -> tuple[int, dict[str, int]]:
        deleted = super().delete()
        self.rows_changed()
        return deleted

    def bulk_create(self, *args: Any, **kwargs: Any) -> list[_Model]:
        created = super().bulk_create(*args, **kwargs)
        self.rows_changed()
        return created

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        updated = super().bulk_update(*args, **kwargs)
        self.rows_changed()
        return updated
