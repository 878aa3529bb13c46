"""Who is asking: the visitor's ids from analytics.js-compatible cookies."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from django.core import signing

ANONYMOUS_ID_COOKIE = "ajs_anonymous_id"
USER_ID_COOKIE = "ajs_user_id"
MAX_ID_LENGTH = 255
_ID_PATTERN = re.compile(r"^[\w.@+:=\-|/]{1,255}$")


@dataclass(frozen=True)
class Visitor:
    anonymous_id: str
    user_id: str | None = None
    is_new: bool = False


def clean_cookie_id(raw: str | None) -> str | None:
    """An id from a cookie, accepting analytics.js's JSON-quoted form (``%22abc%22``)."""
    if not raw:
        return None
    value = unquote(raw).strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not value or value == "null" or not _ID_PATTERN.match(value):
        return None
    return value


def visitor_from_cookies(cookies: Mapping[str, str]) -> Visitor | None:
    anonymous_id = clean_cookie_id(cookies.get(ANONYMOUS_ID_COOKIE))
    user_id = clean_cookie_id(cookies.get(USER_ID_COOKIE))
    if anonymous_id is None and user_id is None:
        return None
    return Visitor(anonymous_id=anonymous_id or "", user_id=user_id)


def new_visitor() -> Visitor:
    return Visitor(anonymous_id=str(uuid.uuid4()), is_new=True)


# Live-channel tokens: our pages embed one so a socket can prove whose page it is
# without cookies (e.g. a front-end on another origin). Short-lived and signed
# with the secret key; they name the visitor's ids, never a profile to pick.
LIVE_TOKEN_SALT = "p13n.live"
LIVE_TOKEN_MAX_AGE = 15 * 60


class InvalidLiveToken(Exception):
    pass


def live_token_for(visitor: Visitor) -> str:
    return signing.dumps(
        {"a": visitor.anonymous_id, "u": visitor.user_id}, salt=LIVE_TOKEN_SALT, compress=True
    )


def visitor_from_live_token(token: str, *, max_age: int = LIVE_TOKEN_MAX_AGE) -> Visitor:
    try:
        data = signing.loads(token, salt=LIVE_TOKEN_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise InvalidLiveToken("the token has expired") from None
    except signing.BadSignature:
        raise InvalidLiveToken("the token is not valid") from None
    anonymous_id = data.get("a") if isinstance(data, dict) else None
    user_id = data.get("u") if isinstance(data, dict) else None
    if not isinstance(anonymous_id, str) or not (anonymous_id or isinstance(user_id, str)):
        raise InvalidLiveToken("the token names no visitor")
    return Visitor(anonymous_id=anonymous_id, user_id=user_id if isinstance(user_id, str) else None)
