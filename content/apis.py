from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponseBase
from django.template.response import SimpleTemplateResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from content.catalog import published_catalog
from content.measurement import record_api_impressions
from content.preview import preview_for_request
from content.selection import MAX_SLOTS, is_slot_name
from content.selectors import blocks_for_segments, segment_slugs
from personalize.auth import ServerKeyAuthentication
from personalize.errors import Forbidden, InvalidInput
from personalize.models import ApiKey
from personalize.visitors import Visitor
from segments.selectors import profile_and_segment_ids, profile_and_segment_ids_for_request


class BlocksApi(APIView):
    """The blocks chosen for a visitor.

    From a browser: the requesting visitor, by their ``ajs_*`` cookies. From a
    server holding a server key: any visitor, by ``anonymous_id`` or ``user_id``.
    ``debug=1`` adds each decision's reason, for staff and server keys only.
    """

    authentication_classes = [ServerKeyAuthentication, SessionAuthentication]
    permission_classes: list[type] = []

    class BlockSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        key = serializers.CharField()
        slot = serializers.CharField()
        title = serializers.CharField()
        html = serializers.CharField()
        data = serializers.JSONField()  # type: ignore[assignment]
        variant = serializers.CharField(
            help_text="The A/B variant shown (empty when the block has none)."
        )
        holdout = serializers.BooleanField(
            help_text="Held out of this block: the content is the slot's default, or empty."
        )
        reason = serializers.CharField(
            required=False, help_text="With debug=1 (staff or server key)."
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "slot", str, many=True, required=True, description="Slot names; repeat for several."
            ),
            OpenApiParameter("anonymous_id", str, description="With a server key: whose blocks."),
            OpenApiParameter("user_id", str, description="With a server key: whose blocks."),
            OpenApiParameter(
                "debug", bool, description="Add decision reasons (staff or server key)."
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
            if not is_slot_name(name):
                raise InvalidInput(
                    f"{name[:60]!r} is not a slot name (a-z, 0-9, - and _)", field="slot"
                )
        has_server_key = isinstance(request.auth, ApiKey)
        anonymous_id = request.query_params.get("anonymous_id", "").strip()
        user_id = request.query_params.get("user_id", "").strip()
        visitor: Visitor | None
        if anonymous_id or user_id:
            if not has_server_key:
                raise Forbidden("choosing the visitor needs a server key", field="anonymous_id")
            visitor = Visitor(anonymous_id=anonymous_id, user_id=user_id or None)
            profile_id, segment_ids = profile_and_segment_ids(visitor)
        else:
            visitor = getattr(request._request, "visitor", None)
            profile_id, segment_ids = profile_and_segment_ids_for_request(request._request)
        debug = request.query_params.get("debug") in {"1", "true"}
        if debug and not (has_server_key or request.user.is_staff):
            raise Forbidden("debug is for staff and server keys", field="debug")
        catalog = published_catalog()
        # A staff editor previewing the site sees the preview's blocks here too.
        preview = None if (anonymous_id or user_id) else preview_for_request(request._request)
        if preview is not None:
            blocks = blocks_for_segments(
                slots=slots,
                segment_ids=preview.segment_ids,
                profile_id=preview.profile_id,
                segment_slugs=preview.segment_slugs,
                catalog=catalog,
            )
            segments = list(preview.segment_slugs)
        else:
            blocks = blocks_for_segments(
                slots=slots,
                segment_ids=segment_ids,
                profile_id=profile_id,
                visitor=visitor,
                catalog=catalog,
            )
            segments = segment_slugs(segment_ids, profile_id=profile_id, catalog=catalog)
            record_api_impressions(
                request._request, profile_id=profile_id, blocks=blocks, debug=debug
            )
        response = Response(
            {
                "segments": segments,
                "slots": {
                    slot: [b.as_json(with_reason=debug) for b in chosen]
                    for slot, chosen in blocks.items()
                },
            }
        )
        # Per-visitor content: never stored by shared caches, never reused across cookies.
        response["Cache-Control"] = "private, no-store"
        response["Vary"] = "Cookie"
        return response

    # A plain HttpResponse, not DRF's Response: see _rendered_now.
    def finalize_response(  # type: ignore[override]
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        return _rendered_now(super().finalize_response(request, response, *args, **kwargs))


def _rendered_now(response: HttpResponseBase) -> HttpResponseBase:
    """The response rendered in the view, as a plain ``HttpResponse``.

    Django renders a response that still has a ``render`` method (DRF's) after the
    view, and under ASGI that is one more trip from the event loop to a thread and
    back for every request; the view's thread renders it at no extra cost.
    """
    if not isinstance(response, SimpleTemplateResponse):
        return response
    response.render()
    rendered = HttpResponse(response.content, status=response.status_code)
    for header, value in response.items():
        rendered[header] = value
    rendered.cookies = response.cookies
    return rendered
