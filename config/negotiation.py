"""Content negotiation for our REST API, which renders JSON only.

DRF's default negotiation parses the Accept header into media types and ranks
them on every request: a tenth of a block API request. A request that accepts
anything (no Accept header, or ``*/*``) or asks for exactly the first renderer's
type, with no ``?format=``, gets that renderer at once; every other request is
negotiated by DRF as before (so an unacceptable type still gets its 406).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FirstRendererNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> Any:
        renderers = list(renderers)
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        if (
            renderers
            and not format_suffix
            and accept in {"*/*", renderers[0].media_type}
            and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
