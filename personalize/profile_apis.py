"""REST API for server-side callers holding a server key: look up a profile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from personalize.auth import HasServerKey, ServerKeyAuthentication
from personalize.errors import InvalidInput, NotFound
from personalize.models import Profile
from personalize.privacy import profile_erase, profile_export
from personalize.selectors import profile_by_id_value, recent_events
from personalize.services import store_pending_batches
from segments.selectors import current_segment_slugs

ID_PARAMETERS = [
    OpenApiParameter("user_id", str, required=False),
    OpenApiParameter("anonymous_id", str, required=False),
]


def profile_named_by(params: Mapping[str, Any]) -> Profile:
    """The profile for exactly one of ``user_id`` / ``anonymous_id``."""
    user_id = str(params.get("user_id") or "").strip()
    anonymous_id = str(params.get("anonymous_id") or "").strip()
    if bool(user_id) == bool(anonymous_id):
        raise InvalidInput("give exactly one of user_id or anonymous_id", field="user_id")
    kind, value = ("user_id", user_id) if user_id else ("anonymous_id", anonymous_id)
    profile = profile_by_id_value(kind=kind, value=value)
    if profile is None:
        raise NotFound(f"no profile with {kind} {value!r}", field=kind)
    return profile


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
        consent = serializers.CharField()
        segments = serializers.ListField(child=serializers.CharField())
        last_seen_at = serializers.DateTimeField(allow_null=True)
        recent_events = EventSerializer(many=True)

    @extend_schema(parameters=ID_PARAMETERS, responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        store_pending_batches(wait=True)  # what was accepted before this request is in the answer
        profile = profile_named_by(request.query_params)
        data = {
            "id": profile.pk,
            "identities": list(profile.identities.all()),
            "traits": profile.traits,
            "consent": profile.consent,
            "segments": current_segment_slugs(profile_id=profile.pk),
            "last_seen_at": profile.last_seen_at,
            "recent_events": list(recent_events(profile_id=profile.pk, limit=50)),
        }
        return Response(self.OutputSerializer(data).data)


class ProfileExportApi(APIView):
    """Everything held about a person, as JSON (a data subject access request)."""

    authentication_classes = [ServerKeyAuthentication]
    permission_classes = [HasServerKey]

    @extend_schema(parameters=ID_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        store_pending_batches(wait=True)
        return Response(profile_export(profile=profile_named_by(request.query_params)))


class ProfileEraseApi(APIView):
    """Erase a person: events, traits, ids, memberships and what other apps hold."""

    authentication_classes = [ServerKeyAuthentication]
    permission_classes = [HasServerKey]

    class InputSerializer(serializers.Serializer[Any]):
        user_id = serializers.CharField(required=False)
        anonymous_id = serializers.CharField(required=False)

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, Mapping) else {}
        # Events accepted before the request must not bring the person back afterwards.
        store_pending_batches(wait=True)
        counts = profile_erase(profile=profile_named_by(data))
        return Response({"erased": counts})
