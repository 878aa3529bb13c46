"""Probes for load balancers and orchestrators.

``/healthz`` answers from the process alone (is it serving?); ``/readyz`` also
checks the database, so a replica that lost it is taken out of rotation. The
block API benchmark uses ``/healthz`` as its ceiling: a bare Django JSON view
behind the same middleware on the same server.
"""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return JsonResponse({"status": "unavailable", "database": str(exc)[:200]}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
