"""REST API for segments (server key or staff session): define, list members, explain."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from personalize.auth import ServerKeyAuthentication
from personalize.errors import InvalidInput, NotFound
from personalize.models import ApiKey
from personalize.profile_apis import ID_PARAMETERS, profile_named_by
from segments import selectors
from segments.models import Segment, SegmentKind
from segments.preview import preview_segment
from segments.rules import RuleError
from segments.rules.text import json_to_text, text_to_json
from segments.services import explain_profile, segment_save

MAX_PAGE = 500


class StaffOrServerKey(BasePermission):
    message = "a server key (Authorization: Bearer) or a staff session is required"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey) or bool(request.user and request.user.is_staff)


class SegmentSerializer(serializers.Serializer[Any]):
    slug = serializers.SlugField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    rule = serializers.JSONField(required=False, help_text="The rule as JSON…")
    rule_text = serializers.CharField(required=False, help_text="…or in the text form.")
    is_active = serializers.BooleanField(required=False, default=True)
    members = serializers.IntegerField(read_only=True)


def _segment_json(segment: Segment) -> dict[str, Any]:
    return {
        "slug": segment.slug,
        "name": segment.name,
        "description": segment.description,
        "rule": segment.rule,
        "rule_text": json_to_text(segment.rule) if segment.kind == SegmentKind.DYNAMIC else "",
        "kind": segment.kind,
        "is_active": segment.is_active,
        "members": segment.memberships.filter(exited_at__isnull=True).count(),
    }


def _rule_of(data: dict[str, Any]) -> Any:
    """The rule from ``rule_text`` (text form) or ``rule`` (JSON)."""
    if "rule_text" in data:
        try:
            return text_to_json(data["rule_text"])
        except RuleError as exc:
            raise InvalidInput(f"{exc.path}: {exc.reason}", field="rule_text") from None
    if "rule" in data:
        return data["rule"]
    raise InvalidInput("give the rule as rule (JSON) or rule_text", field="rule")


def _save(data: dict[str, Any], *, slug: str) -> Segment:
    rule = _rule_of(data)
    try:
        return segment_save(
            slug=slug,
            name=data["name"],
            rule=rule,
            description=data.get("description", ""),
            is_active=data.get("is_active", True),
        )
    except RuleError as exc:
        raise InvalidInput(f"{exc.path}: {exc.reason}", field=f"rule.{exc.path}") from None


class _Base(APIView):
    authentication_classes = [ServerKeyAuthentication, SessionAuthentication]
    permission_classes = [StaffOrServerKey]


def _segment_or_404(slug: str) -> Segment:
    segment = Segment.objects.filter(slug=slug).first()
    if segment is None:
        raise NotFound(f"no segment {slug!r}", field="slug")
    return segment


def _valid(data: Any) -> dict[str, Any]:
    serializer = SegmentSerializer(data=data)
    if not serializer.is_valid():
        field, errors = next(iter(serializer.errors.items()))
        raise InvalidInput(f"{field}: {errors[0]}", field=field)
    validated: dict[str, Any] = dict(serializer.validated_data)
    return validated


class SegmentListApi(_Base):
    @extend_schema(responses=SegmentSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response([_segment_json(s) for s in Segment.objects.order_by("slug")])

    @extend_schema(request=SegmentSerializer, responses={201: SegmentSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(request.data)
        if Segment.objects.filter(slug=data["slug"]).exists():
            raise InvalidInput(f"a segment {data['slug']!r} exists; PUT to change it", field="slug")
        return Response(_segment_json(_save(data, slug=data["slug"])), status=201)


class SegmentDetailApi(_Base):
    @extend_schema(responses=SegmentSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(_segment_json(_segment_or_404(slug)))

    @extend_schema(request=SegmentSerializer, responses=SegmentSerializer)
    def put(self, request: Request, slug: str) -> Response:
        _segment_or_404(slug)
        body = request.data if isinstance(request.data, dict) else {}
        data = _valid({**body, "slug": slug})
        return Response(_segment_json(_save(data, slug=slug)))


class SegmentMembersApi(_Base):
    @extend_schema(
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: dict},
    )
    def get(self, request: Request, slug: str) -> Response:
        segment = _segment_or_404(slug)
        try:
            limit = min(int(request.query_params.get("limit", 100)), MAX_PAGE)
            offset = max(int(request.query_params.get("offset", 0)), 0)
        except ValueError:
            raise InvalidInput("limit and offset are whole numbers", field="limit") from None
        members = selectors.segment_members(segment_id=segment.pk)
        page = [
            {
                "profile_id": m.profile_id,
                "entered_at": m.entered_at,
                "ids": [i.value for i in m.profile.identities.all()],
            }
            for m in members[offset : offset + limit]
        ]
        return Response({"count": members.count(), "results": page})


class SegmentExplainApi(_Base):
    @extend_schema(parameters=ID_PARAMETERS, responses={200: dict})
    def get(self, request: Request, slug: str) -> Response:
        segment = _segment_or_404(slug)
        profile = profile_named_by(request.query_params)
        evaluation = explain_profile(profile_id=profile.pk, segment=segment, now=timezone.now())
        return Response(
            {
                "segment": segment.slug,
                "profile_id": profile.pk,
                "matched": evaluation.matched,
                "conditions": [{"text": c.text, "held": c.held} for c in evaluation.conditions],
                "next_change_at": evaluation.next_change_at,
            }
        )


class ProfileSegmentsApi(_Base):
    @extend_schema(parameters=ID_PARAMETERS, responses={200: dict})
    def get(self, request: Request) -> Response:
        profile = profile_named_by(request.query_params)
        memberships = selectors.current_memberships(profile_id=profile.pk)
        scores = selectors.profile_scores(profile_id=profile.pk)
        return Response(
            {
                "profile_id": profile.pk,
                "segments": [
                    {"slug": m.segment.slug, "name": m.segment.name, "entered_at": m.entered_at}
                    for m in memberships
                ],
                "scores": [
                    {
                        "slug": s.score.slug,
                        "name": s.score.name,
                        "value": s.value,
                        "criteria": s.criteria,
                        "updated_at": s.updated_at,
                    }
                    for s in scores
                ],
            }
        )


class PreviewSerializer(serializers.Serializer[Any]):
    slug = serializers.SlugField(
        required=False, default="", help_text="The saved segment to compare with, if any."
    )
    rule = serializers.JSONField(required=False, help_text="The candidate rule as JSON…")
    rule_text = serializers.CharField(required=False, help_text="…or in the text form.")


class SegmentPreviewApi(_Base):
    """A candidate rule's size now, a sample of members, and who would enter or leave."""

    @extend_schema(request=PreviewSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        serializer = PreviewSerializer(data=request.data)
        if not serializer.is_valid():
            field, errors = next(iter(serializer.errors.items()))
            raise InvalidInput(f"{field}: {errors[0]}", field=field)
        data = dict(serializer.validated_data)
        try:
            preview = preview_segment(rule=_rule_of(data), slug=data["slug"])
        except RuleError as exc:
            raise InvalidInput(f"{exc.path}: {exc.reason}", field=f"rule.{exc.path}") from None
        return Response(preview.as_json())
