"""DRF authentication for server-side callers: ``Authorization: Bearer <server key>``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from personalize.keys import api_key_check
from personalize.models import ApiKey


class ServerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        # META, not request.headers: that builds a dict of every header, for one.
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith(f"{self.keyword} "):
            return None
        api_key = api_key_check(header[len(self.keyword) + 1 :].strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("unknown or revoked server key")
        return (None, api_key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class HasServerKey(permissions.BasePermission):
    message = "a server key is required: Authorization: Bearer <key> (manage.py create_api_key)"

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey)


class ServerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "personalize.auth.ServerKeyAuthentication"
    name = "serverKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A server secret key."}
