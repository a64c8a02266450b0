"""Load request input through marshmallow, turning problems into the documented 422 shape."""

from __future__ import annotations

import falcon
from marshmallow import ValidationError

from host_stub.errors import ApiError


def load_query(schema, req) -> dict:
    raw = {k: v for k, v in req.params.items()}
    for key, value in raw.items():
        if isinstance(value, list):
            raise ApiError(falcon.HTTP_422, "invalid_query", f"Query parameter {key!r} was given more than once.",
                           fields={key: ["given more than once"]})
    return _load(schema, raw, "invalid_query", "Some query parameters are not valid.")


def load_body(schema, req) -> dict:
    try:
        body = req.get_media(default_when_empty=None)
    except RecursionError:  # nested deeper than the JSON parser goes: no route takes such a body
        raise ApiError(falcon.HTTP_400, "invalid_body", "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ApiError(falcon.HTTP_400, "invalid_body", "The request body must be a JSON object.")
    return _load(schema, body, "invalid_body", "The request body is not valid.")


def _load(schema, data, code, message):
    unstorable = {key: [UNSTORABLE] for key, value in data.items() if not _storable(value)}
    if unstorable:
        raise ApiError(falcon.HTTP_422, code, message, fields=unstorable)
    try:
        return schema.load(data, unknown="exclude")
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        fields = {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()}
        raise ApiError(falcon.HTTP_422, code, message, fields=fields) from None


UNSTORABLE = "must not contain NUL characters or lone surrogates (\\ud800-\\udfff)"


def _storable(value) -> bool:
    """No string anywhere in ``value`` holds a NUL (PostgreSQL refuses it in text) or a lone surrogate
    (a JSON ``\\ud800`` escape decodes to one; no driver or hash function encodes it). Iterative:
    the body may be nested as deep as the JSON parser allowed."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or not _encodes(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
