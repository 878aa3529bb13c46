"""The ``slot("hero")`` template function: server-rendered blocks for the first paint."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from jinja2 import pass_context
from markupsafe import Markup

from content import measurement
from content.selectors import RenderedBlock, blocks_for_segments
from personalize.selectors import profile_id_for_request
from segments.selectors import current_segment_ids

_SEGMENTS_CACHE = "_p13n_segment_ids"


def _segment_ids(request: HttpRequest) -> frozenset[int]:
    """The visitor's memberships, read once per request for all of a page's slots."""
    if not hasattr(request, _SEGMENTS_CACHE):
        ids = current_segment_ids(profile_id=profile_id_for_request(request))
        setattr(request, _SEGMENTS_CACHE, ids)
    cached: frozenset[int] = getattr(request, _SEGMENTS_CACHE)
    return cached


@pass_context
def slot(context: Any, name: str) -> Markup:
    request: HttpRequest = context["request"]
    blocks: list[RenderedBlock] = blocks_for_segments(
        slots=[name], segment_ids=_segment_ids(request), profile_id=profile_id_for_request(request)
    )[name]
    measurement.note_impressions(request, blocks, via="ssr")
    keys = " ".join(block.key for block in blocks)
    inner = Markup("").join(
        Markup('<div class="p13n-block" data-p13n-block="{}">{}</div>').format(
            block.key, Markup(block.html)
        )
        for block in blocks
    )
    return Markup('<p13n-slot name="{}" data-blocks="{}">{}</p13n-slot>').format(name, keys, inner)
