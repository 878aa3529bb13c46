"""Block HTML: sanitized on save and again on render, one function for every channel."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import nh3
from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

logger = logging.getLogger(__name__)

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


# Editors' templates see only what we pass (plain dicts and lists), cannot touch
# attributes the sandbox deems unsafe, and cannot mutate what they are given.
_SANDBOX = ImmutableSandboxedEnvironment(autoescape=True)


class BlockTemplateError(ValueError):
    pass


def check_template(body: str) -> None:
    """Raise BlockTemplateError naming the line when ``body`` is not a valid template."""
    try:
        _SANDBOX.parse(body)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f"line {line}: " if line else ""
        raise BlockTemplateError(f"{where}{exc.message or exc}") from None


@lru_cache(maxsize=1024)
def _compiled(body: str) -> Template:
    """Compiling is most of a render's cost and ``from_string`` never caches: keep the
    compiled templates of the bodies in use (a template is immutable once compiled)."""
    return _SANDBOX.from_string(body)


def render_body(
    body: str,
    *,
    is_template: bool,
    traits: Mapping[str, Any],
    segments: Sequence[str],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The block's HTML for one visitor, sanitized whatever the template produced.

    ``extra`` adds variables computed for the block (its ``recommendations``)."""
    if not is_template:
        return sanitize_html(body)
    try:
        html = _compiled(body).render(
            {**(extra or {}), "traits": dict(traits), "segments": list(segments)}
        )
    except Exception:
        # A template that fails for one visitor's data shows nothing rather than a 500.
        logger.exception("block template failed to render")
        return ""
    return sanitize_html(html)
