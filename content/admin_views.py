"""Editors' admin pages beyond the model admins: "Preview site as…" and the audit log.

Mounted under /admin/editors/ and wrapped by ``admin.site.admin_view``: staff
only (others go to the admin login), CSRF-protected, never cached.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from content.audit import AUDITED, audit_log
from content.preview import preview_for_request, preview_start, preview_stop
from personalize.models import Identity, Profile
from personalize.selectors import profile_by_id_value
from segments.models import Segment

# Pages an editor may open in preview (the site's pages; the shop's product pages via the catalog).
PREVIEW_PAGES = [("/", "Homepage"), ("/shop/", "Shop catalog"), ("/shop/cart/", "Cart")]


def _safe_next(request: HttpRequest, target: str | None, fallback: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


class PreviewForm(forms.Form):
    MODE_SEGMENTS = "segments"
    MODE_PROFILE = "profile"

    mode = forms.ChoiceField(
        choices=[(MODE_SEGMENTS, "A set of segments"), (MODE_PROFILE, "A real profile")],
        widget=forms.RadioSelect,
        initial=MODE_SEGMENTS,
    )
    segments = forms.ModelMultipleChoiceField(
        queryset=Segment.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: a visitor in no segment.",
    )
    id_kind = forms.ChoiceField(
        label="Find the profile by",
        choices=[
            (Identity.Kind.USER_ID, "User id"),
            (Identity.Kind.ANONYMOUS_ID, "Anonymous id"),
            ("profile", "Profile id"),
        ],
        required=False,
        initial=Identity.Kind.USER_ID,
    )
    id_value = forms.CharField(label="Id", required=False, max_length=255)
    next = forms.CharField(
        label="Open",
        required=False,
        widget=forms.Select(choices=PREVIEW_PAGES),
        initial="/",
    )

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if cleaned.get("mode") != self.MODE_PROFILE:
            return cleaned
        kind = cleaned.get("id_kind") or Identity.Kind.USER_ID
        value = (cleaned.get("id_value") or "").strip()
        if not value:
            self.add_error("id_value", "give the profile's id")
            return cleaned
        profile: Profile | None
        if kind == "profile":
            # Ids are 64-bit: longer digit strings name no profile (and would overflow SQL).
            is_id = value.isascii() and value.isdecimal() and len(value) <= 18
            profile = Profile.objects.filter(pk=int(value)).first() if is_id else None
        else:
            profile = profile_by_id_value(kind=kind, value=value)
        if profile is None:
            self.add_error("id_value", f"no profile has {kind.replace('_', ' ')} {value!r}")
            return cleaned
        cleaned["profile"] = profile
        return cleaned


def preview_page(request: HttpRequest) -> HttpResponse:
    """Choose an audience, then browse the site as it."""
    if request.method == "POST":
        form = PreviewForm(request.POST)
        if form.is_valid():
            profile = form.cleaned_data.get("profile")
            if profile is not None:
                preview_start(request=request, profile_id=profile.pk)
            else:
                preview_start(
                    request=request, segment_ids=[s.pk for s in form.cleaned_data["segments"]]
                )
            return HttpResponseRedirect(_safe_next(request, form.cleaned_data.get("next"), "/"))
    else:
        # A block's "Preview" link arrives with its segments ticked.
        initial: dict[str, Any] = {}
        if request.GET.getlist("segments"):
            initial["segments"] = [s for s in request.GET.getlist("segments") if s.isdecimal()]
        form = PreviewForm(initial=initial)
    context = {
        **admin.site.each_context(request),
        "title": "Preview site as…",
        "form": form,
        "current": preview_for_request(request),
    }
    return TemplateResponse(request, "admin/content/preview.html", context)


@require_POST
def preview_exit(request: HttpRequest) -> HttpResponse:
    preview_stop(request=request)
    messages.info(request, "Preview ended: the site shows your own content again.")
    return redirect(_safe_next(request, request.POST.get("next"), reverse("editors-preview")))


class AuditFilterForm(forms.Form):
    object_type = forms.ChoiceField(label="Object", required=False)
    user = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput({"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput({"type": "date"}))
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, object_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type_field = self.fields["object_type"]
        assert isinstance(type_field, forms.ChoiceField)
        type_field.choices = [("", "All"), *((t, t.capitalize()) for t in object_types)]
        user_field = self.fields["user"]
        assert isinstance(user_field, forms.ModelChoiceField)
        user_field.queryset = get_user_model().objects.filter(is_staff=True).order_by("username")


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


@require_GET
def audit_page(request: HttpRequest) -> HttpResponse:
    """Who changed which block, variant or segment, and what they changed; read-only."""
    readable = [
        name
        for name, model in AUDITED.items()
        if request.user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}")
    ]
    if not readable:
        raise PermissionDenied
    form = AuditFilterForm(request.GET or None, object_types=readable)
    entries_page = None
    page = 1
    size = max(1, settings.P13N_AUDIT_PAGE_SIZE)
    if not form.is_bound or form.is_valid():
        data = form.cleaned_data if form.is_bound else {}
        page = data.get("page") or 1
        user = data.get("user")
        entries_page = audit_log(
            object_types=[data["object_type"]] if data.get("object_type") else readable,
            user_id=user.pk if user is not None else None,
            since=_day_start(data["since"]) if data.get("since") else None,
            until=_day_start(data["until"]) + timedelta(days=1) if data.get("until") else None,
            offset=(page - 1) * size,
            limit=size,
        )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        **admin.site.each_context(request),
        "title": "Audit log",
        "form": form,
        "entries": entries_page.entries if entries_page else [],
        "page": page,
        "previous_query": _with_page(query, page - 1) if page > 1 else None,
        "next_query": _with_page(query, page + 1)
        if entries_page and entries_page.has_more
        else None,
    }
    return TemplateResponse(request, "admin/content/audit_log.html", context)


def _with_page(query: Any, page: int) -> str:
    query = query.copy()
    query["page"] = str(page)
    return str(query.urlencode())
