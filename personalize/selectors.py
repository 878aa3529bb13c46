"""Reads for visitors and profiles."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest

from config.stamps import ProcessCache
from personalize.models import SOURCES_STAMP, Event, Identity, Profile, Source
from personalize.visitors import Visitor

_REQUEST_CACHE = "_p13n_profile_id"


def profile_id_for_visitor(visitor: Visitor) -> int | None:
    """The visitor's profile, preferring the user id; None before their first event."""
    for kind, value in (
        (Identity.Kind.USER_ID, visitor.user_id),
        (Identity.Kind.ANONYMOUS_ID, visitor.anonymous_id),
    ):
        if value:
            found = (
                Identity.objects.filter(kind=kind, value=value)
                .values_list("profile_id", flat=True)
                .first()
            )
            if found is not None:
                return found
    return None


def profile_id_for_request(request: HttpRequest) -> int | None:
    """Looked up once per request: every slot on a page shares the answer."""
    if not hasattr(request, _REQUEST_CACHE):
        visitor: Visitor | None = getattr(request, "visitor", None)
        setattr(
            request, _REQUEST_CACHE, None if visitor is None else profile_id_for_visitor(visitor)
        )
    cached: int | None = getattr(request, _REQUEST_CACHE)
    return cached


def remember_profile_id_for_request(request: HttpRequest, profile_id: int | None) -> None:
    """For a caller that found the request's profile another way (with its segments)."""
    setattr(request, _REQUEST_CACHE, profile_id)


def recent_events(*, profile_id: int, limit: int = 50) -> QuerySet[Event]:
    return Event.objects.filter(profile_id=profile_id).order_by("-timestamp", "-id")[:limit]


# The tracking API authenticates every request by its write key: the source (and
# its tracking plan) is kept per process until any source is written, so a
# disabled source or a rotated key is refused from then on in every process.
# Unknown keys are not kept (they cost a query, and cannot fill the memory).
_sources_by_write_key: ProcessCache[Source] = ProcessCache(SOURCES_STAMP, max_age_seconds=60)


def source_by_write_key(write_key: str) -> Source | None:
    try:
        return _sources_by_write_key.get(write_key, lambda: Source.objects.get(write_key=write_key))
    except Source.DoesNotExist:
        return None


# Every page embeds it: kept per process until a source is written (a rotated key
# is embedded by the next page in every process).
_web_write_keys: ProcessCache[str] = ProcessCache(SOURCES_STAMP, max_age_seconds=60)


def web_source_write_key(name: str) -> str:
    """The write key our own pages embed for the JS snippet (created on first use)."""

    def load() -> str:
        source, _ = Source.objects.get_or_create(name=name)
        return source.write_key

    return _web_write_keys.get(name, load)


def profile_by_id_value(*, kind: str, value: str) -> Profile | None:
    return (
        Profile.objects.prefetch_related("identities")
        .filter(identities__kind=kind, identities__value=value)
        .first()
    )


def profile_with_identities(profile_id: int) -> Profile | None:
    return Profile.objects.prefetch_related("identities").filter(pk=profile_id).first()
