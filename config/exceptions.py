"""One mapping from domain errors to HTTP responses for the REST API."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler

from personalize.errors import DomainError


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(
            {"code": exc.code, "message": str(exc), "field": exc.field}, status=exc.status
        )
    return exception_handler(exc, context)
