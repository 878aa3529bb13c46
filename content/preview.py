"""Staff preview: browse the real site as a chosen set of segments or as a real profile.

The choice lives in the editor's Django session, signed and bound to the staff
user who made it. It is honoured only while ``request.user`` is active staff, so
a visitor cannot trigger it, whatever their session holds. Every place that
picks blocks for a request (the ``slot()`` template function, the block API)
asks :func:`audience_for_request` whose segments to use; nothing else changes:
a preview reads memberships and traits, it never writes them, and the site's
tracking scripts are left out of previewed pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core import signing
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import reverse

from personalize.models import Profile
from segments.models import Segment
from segments.selectors import profile_and_segment_ids_for_request

PREVIEW_SESSION_KEY = "p13n_preview"
PREVIEW_SALT = "p13n.preview"
_REQUEST_CACHE = "_p13n_preview"


@dataclass(frozen=True)
class Preview:
    """What a staff editor is previewing the site as."""

    label: str
    segment_ids: frozenset[int]
    segment_slugs: tuple[str, ...]
    # Set when previewing as a real profile: template blocks see its traits.
    profile_id: int | None = None


@dataclass(frozen=True)
class Audience:
    """Whose content a request gets: the visitor's own, or a staff preview's."""

    segment_ids: frozenset[int]
    profile_id: int | None
    # None: read the profile's own segment slugs (the visitor's case).
    segment_slugs: tuple[str, ...] | None = None
    preview: Preview | None = None


def _is_staff(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )


# --- writes (the admin page calls these) -----------------------------------------------


def preview_start(
    *, request: HttpRequest, segment_ids: Iterable[int] = (), profile_id: int | None = None
) -> None:
    """Start previewing as ``segment_ids``, or as the profile ``profile_id`` when given."""
    if not _is_staff(request.user):
        raise PermissionError("previewing the site needs staff rights")
    payload: dict[str, object] = {"u": request.user.pk}
    if profile_id is not None:
        payload["p"] = profile_id
    else:
        payload["s"] = sorted(set(segment_ids))
    request.session[PREVIEW_SESSION_KEY] = signing.dumps(payload, salt=PREVIEW_SALT)
    if hasattr(request, _REQUEST_CACHE):
        delattr(request, _REQUEST_CACHE)


def preview_stop(*, request: HttpRequest) -> None:
    request.session.pop(PREVIEW_SESSION_KEY, None)
    if hasattr(request, _REQUEST_CACHE):
        delattr(request, _REQUEST_CACHE)


# --- reads -----------------------------------------------------------------------------


def preview_for_request(request: HttpRequest) -> Preview | None:
    """The request's preview, if a staff editor started one; read once per request."""
    if not hasattr(request, _REQUEST_CACHE):
        setattr(request, _REQUEST_CACHE, _load_preview(request))
    cached: Preview | None = getattr(request, _REQUEST_CACHE)
    return cached


def _load_preview(request: HttpRequest) -> Preview | None:
    session = getattr(request, "session", None)
    # The session first: visitors without the key never cost a user lookup.
    if session is None or PREVIEW_SESSION_KEY not in session:
        return None
    user = getattr(request, "user", None)
    if not _is_staff(user):
        return None
    try:
        payload = signing.loads(
            session[PREVIEW_SESSION_KEY],
            salt=PREVIEW_SALT,
            max_age=settings.P13N_PREVIEW_MAX_AGE,
        )
    except signing.BadSignature:  # also expired
        return None
    if not isinstance(payload, dict) or user is None or payload.get("u") != user.pk:
        return None
    profile_id = payload.get("p")
    if isinstance(profile_id, int):
        return _profile_preview(profile_id)
    ids = payload.get("s")
    if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
        return segments_preview(ids)
    return None


def segments_preview(segment_ids: Iterable[int]) -> Preview:
    segments = list(
        Segment.objects.filter(pk__in=list(segment_ids)).only("id", "slug", "name").order_by("name")
    )
    label = ", ".join(s.name for s in segments) if segments else "no segment"
    return Preview(
        label=f"segments: {label}" if segments else "a visitor in no segment",
        segment_ids=frozenset(s.id for s in segments),
        segment_slugs=tuple(sorted(s.slug for s in segments)),
    )


def _profile_preview(profile_id: int) -> Preview:
    profile = Profile.objects.prefetch_related("identities").filter(pk=profile_id).first()
    if profile is None:
        # Erased since the preview started: show what a stranger sees.
        return Preview(
            label=f"profile #{profile_id} (no longer exists)",
            segment_ids=frozenset(),
            segment_slugs=(),
        )
    ids = ", ".join(f"{i.kind}={i.value}" for i in list(profile.identities.all())[:2])
    # Memberships are read live: the preview follows the profile as it changes.
    memberships = profile.memberships.filter(exited_at__isnull=True).values_list(
        "segment_id", "segment__slug"
    )
    return Preview(
        label=f"profile #{profile.pk}" + (f" ({ids})" if ids else ""),
        segment_ids=frozenset(segment_id for segment_id, _ in memberships),
        segment_slugs=tuple(sorted(slug for _, slug in memberships)),
        profile_id=profile.pk,
    )


def audience_for_request(request: HttpRequest) -> Audience:
    """The segments (and profile, for traits) a page's blocks are chosen for."""
    preview = preview_for_request(request)
    if preview is not None:
        return Audience(
            segment_ids=preview.segment_ids,
            profile_id=preview.profile_id,
            segment_slugs=preview.segment_slugs,
            preview=preview,
        )
    # The visitor's own: profile and memberships in one query, once per request.
    profile_id, segment_ids = profile_and_segment_ids_for_request(request)
    return Audience(segment_ids=segment_ids, profile_id=profile_id)


# --- the site is read-only while previewing ---------------------------------------------


class PreviewReadOnlyMiddleware:
    """Refuses writes through the site (cart, checkout, tracking) during a preview.

    A preview shows someone else's view of the site: nothing done in it may be
    recorded against the editor's own visitor profile or anyone else's. Admin
    stays writable, so the editor can exit the preview or edit blocks.
    """

    SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.method not in self.SAFE_METHODS
            and not request.path.startswith(reverse("admin:index"))
            and preview_for_request(request) is not None
        ):
            return HttpResponseForbidden(
                "The site is read-only while you preview it. Exit the preview first.",
                content_type="text/plain",
            )
        return self.get_response(request)
