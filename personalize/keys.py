"""Server secret keys: issued once, stored hashed, checked by hash."""

from __future__ import annotations

import hashlib
import secrets

from django.utils import timezone

from personalize.models import ApiKey

KEY_PREFIX = "p13n_sk_"


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def issue_key(api_key: ApiKey) -> str:
    """Give ``api_key`` a fresh secret (prefix and hash); the raw key is returned once."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key.prefix = raw_key[: len(KEY_PREFIX) + 6]
    api_key.hashed_key = hash_key(raw_key)
    return raw_key


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """A new key; the raw key is returned once and never stored."""
    api_key = ApiKey(name=name)
    raw_key = issue_key(api_key)
    api_key.save()
    return api_key, raw_key


def api_key_check(raw_key: str) -> ApiKey | None:
    """The active key matching ``raw_key``, with its use recorded; None otherwise."""
    if not raw_key.startswith(KEY_PREFIX):
        return None
    api_key = ApiKey.objects.filter(hashed_key=hash_key(raw_key), revoked=False).first()
    if api_key is not None:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return api_key
