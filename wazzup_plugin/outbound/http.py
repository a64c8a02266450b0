"""Answering in the host's JSON error shape without importing the host.

Body: ``{"status": int, "code": str, "message": str}`` plus ``"fields"`` for bad input, and for
send failures the stored message's id and Wazzup's code (``message_id``, ``wazzup_code``).
"""

from __future__ import annotations

import functools

import falcon
from marshmallow import Schema, ValidationError, fields

from wazzup_plugin.text import UNSTORABLE, storable_everywhere


class Problem(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.fields, self.extra = status, code, message, fields, extra
        self.headers = headers or {}

    def write(self, resp) -> None:
        body = {"status": self.status, "code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update({k: v for k, v in self.extra.items() if v is not None})
        resp.status = falcon.code_to_http_status(self.status)
        for name, value in self.headers.items():
            resp.set_header(name, value)
        resp.media = body


def answers_problems(responder):
    """Turn a raised :class:`Problem` into the error answer."""

    @functools.wraps(responder)
    def wrapper(self, req, resp, *args, **kwargs):
        try:
            return responder(self, req, resp, *args, **kwargs)
        except Problem as problem:
            problem.write(resp)

    return wrapper


def prefers_async(req) -> bool:
    """Whether the request asked to be answered before its work is done (RFC 7240 ``respond-async``).

    Preference names are case-insensitive; several may share one header or come in several."""
    for preference in req.get_header("Prefer", default="").split(","):
        name = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
        if name == "respond-async":
            return True
    return False


def load_body(schema: Schema, req) -> dict:
    try:
        body = req.get_media(default_when_empty=None)
    except falcon.MediaMalformedError:
        raise Problem(400, "invalid_body", "The request body is not valid JSON.") from None
    except RecursionError:  # nested deeper than the JSON parser goes: no route takes such a body
        raise Problem(400, "invalid_body", "The request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise Problem(400, "invalid_body", "The request body must be a JSON object.")
    return load(schema, body, "invalid_body", "The request body is not valid.")


def load_query(schema: Schema, req) -> dict:
    raw = dict(req.params)
    for key, value in raw.items():
        if isinstance(value, list):
            raise Problem(422, "invalid_query", f"Query parameter {key!r} was given more than once.",
                          fields={key: ["given more than once"]})
    return load(schema, raw, "invalid_query", "Some query parameters are not valid.")


def load(schema: Schema, data: dict, code: str, message: str) -> dict:
    unstorable = {key: [UNSTORABLE] for key, value in data.items() if not storable_everywhere(value)}
    if unstorable:
        raise Problem(422, code, message, fields=unstorable)
    try:
        return schema.load(data, unknown="exclude")
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        flat = {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()}
        raise Problem(422, code, message, fields=flat) from None


class WazzupErrorSchema(Schema):
    """The error shape, for the OpenAPI document."""

    status = fields.Integer(required=True)
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields", keys=fields.String(), values=fields.List(fields.String()))
    message_id = fields.Integer(metadata={"description": "the stored message, when one was stored"})
    wazzup_code = fields.String(metadata={"description": "Wazzup's error code, when Wazzup refused"})
    data = fields.Dict(metadata={"description": "details, e.g. the stored message"})


def error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": WazzupErrorSchema}}}
