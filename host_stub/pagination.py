"""Opaque cursors: a base64url JSON list of the sort key of the last row returned."""

from __future__ import annotations

import base64
import json

import falcon

from host_stub.errors import ApiError


def encode_cursor(*key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> list:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
        if not isinstance(key, list) or len(key) != len(kinds):
            raise ValueError
        for value, kind in zip(key, kinds):
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError
        return key
    except ValueError:
        raise ApiError(falcon.HTTP_422, "invalid_cursor",
                       "The cursor is not one this server gave out; start again without it.",
                       fields={"cursor": ["invalid cursor"]}) from None
