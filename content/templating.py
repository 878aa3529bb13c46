"""The ``slot("hero")`` template function: server-rendered blocks for the first paint."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from jinja2 import pass_context
from markupsafe import Markup

from content.selectors import RenderedBlock, blocks_for_profile
from personalize.selectors import profile_id_for_request


@pass_context
def slot(context: Any, name: str) -> Markup:
    request: HttpRequest = context["request"]
    blocks: list[RenderedBlock] = blocks_for_profile(
        profile_id=profile_id_for_request(request), slots=[name]
    )[name]
    keys = " ".join(block.key for block in blocks)
    inner = Markup("").join(
        Markup('<div class="p13n-block" data-p13n-block="{}">{}</div>').format(
            block.key, Markup(block.html)
        )
        for block in blocks
    )
    return Markup('<p13n-slot name="{}" data-blocks="{}">{}</p13n-slot>').format(name, keys, inner)
