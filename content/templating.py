"""The ``slot("hero")`` template function: server-rendered blocks for the first paint."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from jinja2 import pass_context
from markupsafe import Markup

from content.catalog import published_catalog_for_request
from content.selectors import RenderedBlock, blocks_for_segments
from segments.selectors import profile_and_segment_ids_for_request


@pass_context
def slot(context: Any, name: str) -> Markup:
    request: HttpRequest = context["request"]
    # The visitor's profile and memberships, and the catalog, once for all of a page's slots.
    profile_id, segment_ids = profile_and_segment_ids_for_request(request)
    blocks: list[RenderedBlock] = blocks_for_segments(
        slots=[name],
        segment_ids=segment_ids,
        profile_id=profile_id,
        visitor=getattr(request, "visitor", None),
        catalog=published_catalog_for_request(request),
    )[name]
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
    return Markup('<p13n-slot name="{}" data-blocks="{}">{}</p13n-slot>').format(name, keys, inner)
