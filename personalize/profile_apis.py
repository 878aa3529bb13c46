"""REST API for server-side callers holding a server key: look up a profile."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from personalize.auth import HasServerKey, ServerKeyAuthentication
from personalize.errors import InvalidInput, NotFound
from personalize.selectors import profile_by_id_value, recent_events
from segments.selectors import current_segment_slugs


class ProfileLookupApi(APIView):
    """A profile's ids, traits, current segments and recent events."""

    authentication_classes = [ServerKeyAuthentication]
    permission_classes = [HasServerKey]

    class OutputSerializer(serializers.Serializer[Any]):
        class IdentitySerializer(serializers.Serializer[Any]):
            kind = serializers.CharField()
            value = serializers.CharField()

        class EventSerializer(serializers.Serializer[Any]):
            type = serializers.CharField()
            name = serializers.CharField()
            timestamp = serializers.DateTimeField()
            properties = serializers.JSONField()

        profile_id = serializers.IntegerField(source="id")
        identities = IdentitySerializer(many=True)
        traits = serializers.JSONField()
        segments = serializers.ListField(child=serializers.CharField())
        last_seen_at = serializers.DateTimeField(allow_null=True)
        recent_events = EventSerializer(many=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("user_id", str, required=False),
            OpenApiParameter("anonymous_id", str, required=False),
        ],
        responses=OutputSerializer,
    )
    def get(self, request: Request) -> Response:
        user_id = request.query_params.get("user_id", "").strip()
        anonymous_id = request.query_params.get("anonymous_id", "").strip()
        if bool(user_id) == bool(anonymous_id):
            raise InvalidInput("give exactly one of user_id or anonymous_id", field="user_id")
        kind, value = ("user_id", user_id) if user_id else ("anonymous_id", anonymous_id)
        profile = profile_by_id_value(kind=kind, value=value)
        if profile is None:
            raise NotFound(f"no profile with {kind} {value!r}", field=kind)
        data = {
            "id": profile.pk,
            "identities": list(profile.identities.all()),
            "traits": profile.traits,
            "segments": current_segment_slugs(profile_id=profile.pk),
            "last_seen_at": profile.last_seen_at,
            "recent_events": list(recent_events(profile_id=profile.pk, limit=50)),
        }
        return Response(self.OutputSerializer(data).data)
