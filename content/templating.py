"""The ``slot("hero")`` template function: server-rendered blocks for the first paint."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from jinja2 import pass_context
from markupsafe import Markup

from content import measurement
from content.catalog import published_catalog_for_request
from content.preview import audience_for_request
from content.selectors import RenderedBlock, blocks_for_segments

_AUDIENCE_CACHE = "_p13n_audience"


@pass_context
def slot(context: Any, name: str) -> Markup:
    request: HttpRequest = context["request"]
    # The visitor's memberships (or a staff preview's), read once per request for all slots.
    if not hasattr(request, _AUDIENCE_CACHE):
        setattr(request, _AUDIENCE_CACHE, audience_for_request(request))
    audience = getattr(request, _AUDIENCE_CACHE)
    blocks: list[RenderedBlock] = blocks_for_segments(
        slots=[name],
        segment_ids=audience.segment_ids,
        profile_id=audience.profile_id,
        segment_slugs=audience.segment_slugs,
        visitor=getattr(request, "visitor", None),
        catalog=published_catalog_for_request(request),
    )[name]
    if audience.preview is None:  # an editor's preview is not an impression
        measurement.note_impressions(request, blocks, via="ssr")
    keys = " ".join(block.key for block in blocks)
    # The attributes static/p13n/slots.js reports in block_impression / block_clicked.
    inner = Markup("").join(
        Markup(
            '<div class="p13n-block" data-p13n-block="{}" data-p13n-block-id="{}"'
            ' data-p13n-variant="{}" data-p13n-holdout="{}">{}</div>'
        ).format(
            block.key,
            block.id,
            block.variant,
            "true" if block.holdout else "false",
            Markup(block.html),
        )
        for block in blocks
    )
    html = Markup('<p13n-slot name="{}" data-blocks="{}">{}</p13n-slot>').format(name, keys, inner)
    if audience.preview is not None:
        html += _decision(name, blocks)
    return html


def _decision(name: str, blocks: list[RenderedBlock]) -> Markup:
    """Why the slot shows what it shows, for the editor previewing the page."""
    text = (
        "; ".join(f"{block.key}: {block.reason}" for block in blocks)
        if blocks
        else "empty: no block matched and the slot has no default"
    )
    return Markup(
        '<small class="p13n-preview-reason" data-p13n-preview-slot="{}" title="{}">'
        "slot {} → {}</small>"
    ).format(name, text, name, text)
