"""Block HTML: sanitized on save and again on render, one function for every channel."""

from __future__ import annotations

import nh3

ALLOWED_TAGS = nh3.ALLOWED_TAGS | {
    "section",
    "figure",
    "figcaption",
    "span",
    "div",
    "img",
    "button",
}
ALLOWED_ATTRIBUTES = {
    **nh3.ALLOWED_ATTRIBUTES,
    "*": {"class", "id", "title", "data-p13n-track"},
    "a": {"href", "title", "class", "hreflang"},
    "img": {"src", "alt", "width", "height", "class", "loading"},
}


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )
