"""The Jinja2 environment for site pages (Django's Jinja2 backend)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.messages import get_messages
from django.middleware.csrf import get_token
from django.templatetags.static import static
from django.urls import reverse
from jinja2 import Environment, pass_context
from markupsafe import Markup


def url(name: str, *args: Any, **kwargs: Any) -> str:
    return reverse(name, args=args or None, kwargs=kwargs or None)


@pass_context
def csrf_field(context: Any) -> Markup:
    token = get_token(context["request"])
    return Markup('<input type="hidden" name="csrfmiddlewaretoken" value="{}">').format(token)


def write_key() -> str:
    """The write key of the source our own pages report to."""
    from personalize.selectors import web_source_write_key

    return web_source_write_key(settings.P13N_WEB_SOURCE)


@pass_context
def live_token(context: Any) -> str:
    """A short-lived signed token naming this page's visitor, for the live socket."""
    from personalize.visitors import live_token_for

    return live_token_for(context["request"].visitor)


@pass_context
def segment_badges(context: Any) -> Markup:
    from content.catalog import published_catalog_for_request
    from content.preview import preview_for_request
    from content.selectors import segment_slugs
    from segments.selectors import profile_and_segment_ids_for_request

    request = context["request"]
    preview = preview_for_request(request)
    if preview is not None:
        slugs = list(preview.segment_slugs)
    else:
        profile_id, segment_ids = profile_and_segment_ids_for_request(request)
        slugs = segment_slugs(
            segment_ids, profile_id=profile_id, catalog=published_catalog_for_request(request)
        )
    return Markup("").join(Markup('<span class="badge">{}</span>').format(s) for s in slugs)


@pass_context
def preview(context: Any) -> Any:
    """The staff preview this page is rendered for, or None (see content.preview)."""
    from content.preview import preview_for_request

    return preview_for_request(context["request"])


def environment(**options: Any) -> Environment:
    from content.templating import slot

    env = Environment(**options)
    env.globals.update(
        {
            "url": url,
            "static": static,
            "slot": slot,
            "csrf_field": csrf_field,
            "write_key": write_key,
            "segment_badges": segment_badges,
            "preview": preview,
            "live_token": live_token,
            "get_messages": get_messages,
        }
    )
    return env
