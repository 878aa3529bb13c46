from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from personalize.visitors import ANONYMOUS_ID_COOKIE, new_visitor, visitor_from_cookies


class VisitorMiddleware:
    """Gives every request a ``visitor``; the first visit gets an anonymous id cookie.

    The cookie is readable by scripts on purpose: analytics.js and our snippet
    read the same ``ajs_anonymous_id`` so every source reports the same id.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        visitor = visitor_from_cookies(request.COOKIES)
        if visitor is None or not visitor.anonymous_id:
            fresh = new_visitor()
            visitor = (
                fresh
                if visitor is None
                else type(visitor)(
                    anonymous_id=fresh.anonymous_id, user_id=visitor.user_id, is_new=True
                )
            )
        request.visitor = visitor  # type: ignore[attr-defined]
        response = self.get_response(request)
        if visitor.is_new:
            response.set_cookie(
                ANONYMOUS_ID_COOKIE,
                visitor.anonymous_id,
                max_age=settings.P13N_COOKIE_MAX_AGE,
                samesite="Lax",
                secure=settings.P13N_COOKIE_SECURE,
                httponly=False,
            )
        return response
