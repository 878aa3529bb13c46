from __future__ import annotations

import re

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from content.selectors import blocks_for_profile
from personalize.errors import InvalidInput
from personalize.selectors import profile_id_for_request
from segments.selectors import current_segment_slugs

SLOT_NAME = re.compile(r"^[a-z0-9_-]{1,50}$")
MAX_SLOTS = 20


class BlocksApi(APIView):
    """The blocks chosen for the requesting visitor (by their ``ajs_*`` cookies)."""

    authentication_classes: list[type] = []
    permission_classes: list[type] = []

    class BlockSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        key = serializers.CharField()
        slot = serializers.CharField()
        title = serializers.CharField()
        html = serializers.CharField()
        data = serializers.JSONField()  # type: ignore[assignment]
        reason = serializers.CharField()

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "slot", str, many=True, required=True, description="Slot names; repeat for several."
            ),
        ],
        responses=inline_serializer(
            "BlocksResponse",
            {
                "segments": serializers.ListField(child=serializers.CharField()),
                "slots": serializers.DictField(child=BlockSerializer(many=True)),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        slots = request.query_params.getlist("slot")
        if not slots:
            raise InvalidInput("at least one slot is required, e.g. ?slot=hero", field="slot")
        if len(slots) > MAX_SLOTS:
            raise InvalidInput(f"at most {MAX_SLOTS} slots per request", field="slot")
        for name in slots:
            if not SLOT_NAME.match(name):
                raise InvalidInput(
                    f"{name[:60]!r} is not a slot name (a-z, 0-9, - and _)", field="slot"
                )
        profile_id = profile_id_for_request(request._request)
        blocks = blocks_for_profile(profile_id=profile_id, slots=slots)
        response = Response(
            {
                "segments": current_segment_slugs(profile_id=profile_id),
                "slots": {slot: [b.as_json() for b in chosen] for slot, chosen in blocks.items()},
            }
        )
        # Per-visitor content: never stored by shared caches, never reused across cookies.
        response["Cache-Control"] = "private, no-store"
        response["Vary"] = "Cookie"
        return response
