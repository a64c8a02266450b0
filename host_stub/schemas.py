"""Marshmallow schemas: the JSON the host serves, its query parameters, and the OpenAPI document.

Plugin fields are added flat (``wazzup_chat_id``) when the app builds its schemas at startup.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from host_stub.models import DIRECTIONS, MESSAGE_STATUSES
from host_stub.pagination import MAX_ID, MAX_SEQ


class ErrorSchema(Schema):
    status = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "machine-readable error code"})
    message = fields.String(required=True, metadata={"description": "what went wrong, for people"})
    fields_ = fields.Dict(data_key="fields", keys=fields.String(), values=fields.List(fields.String()),
                          metadata={"description": "per-field problems, when input was wrong"})


class ChatSchema(Schema):
    id = fields.Integer()
    type = fields.String(metadata={"description": "chat type, e.g. 'wazzup' or 'internal'"})
    title = fields.String()
    phone = fields.String(allow_none=True)
    avatar_uri = fields.String(allow_none=True)
    unread_count = fields.Integer()
    last_message_at = fields.AwareDateTime(allow_none=True)
    last_message_preview = fields.String()
    last_activity_at = fields.AwareDateTime()
    created_at = fields.AwareDateTime()
    change_seq = fields.Integer(metadata={"description": "change counter value of the last change"})


class MessageSchema(Schema):
    id = fields.Integer()
    chat_id = fields.Integer()
    direction = fields.String(validate=validate.OneOf(DIRECTIONS))
    status = fields.String(validate=validate.OneOf(MESSAGE_STATUSES))
    type = fields.String()
    text = fields.String(allow_none=True)
    content_uri = fields.String(allow_none=True)
    content_name = fields.String(allow_none=True)
    content_type = fields.String(allow_none=True)
    author_name = fields.String(allow_none=True)
    messenger_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    queued_at = fields.AwareDateTime(allow_none=True)
    accepted_at = fields.AwareDateTime(allow_none=True)
    sent_at = fields.AwareDateTime(allow_none=True)
    delivered_at = fields.AwareDateTime(allow_none=True)
    read_at = fields.AwareDateTime(allow_none=True)
    failed_at = fields.AwareDateTime(allow_none=True)
    unknown_at = fields.AwareDateTime(allow_none=True)
    error_code = fields.String(allow_none=True)
    error_text = fields.String(allow_none=True)
    edited_at = fields.AwareDateTime(allow_none=True)
    deleted_at = fields.AwareDateTime(allow_none=True)
    previous_text = fields.String(allow_none=True)
    change_seq = fields.Integer()


class ChatTypeSchema(Schema):
    name = fields.String()
    label = fields.String()
    icon = fields.String()
    panel = fields.String(allow_none=True)
    can_compose = fields.Boolean()


_CURSOR = ("the previous page's next_cursor, sent with the same other parameters; a cursor from another listing "
           "mode (with or without changed_since or after) answers 422 invalid_cursor")
_CHANGED_SINCE = ("a change_seq: what was created or changed after it, in change order. Follow next_cursor until "
                  "it is null; then poll from that last page's change_seq")


class ChatListQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(validate=validate.Length(max=200), metadata={"description": _CURSOR})
    type = fields.String(validate=validate.Length(max=32))
    q = fields.String(validate=validate.Length(max=100))
    changed_since = fields.Integer(validate=validate.Range(0, MAX_SEQ), metadata={"description": _CHANGED_SINCE})


class MessageListQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String(validate=validate.Length(max=200), metadata={"description": _CURSOR})
    after = fields.Integer(validate=validate.Range(0, MAX_ID), metadata={
        "description": "a message id: the messages newer than it, oldest first; not with changed_since "
                       "(422 invalid_query)"})
    changed_since = fields.Integer(validate=validate.Range(0, MAX_SEQ), metadata={
        "description": _CHANGED_SINCE + "; not with after (422 invalid_query)"})


def page_schema(name: str, item_schema: type[Schema]) -> type[Schema]:
    return Schema.from_dict({
        "items": fields.List(fields.Nested(item_schema)),
        "next_cursor": fields.String(allow_none=True, metadata={"description": "pass as cursor for the next page"}),
        "change_seq": fields.Integer(metadata={"description": (
            "the change counter when this page was read (not its last item's). Poll with changed_since set to it "
            "only from: in changed_since mode, the last page (next_cursor null); when browsing, the FIRST page")}),
    }, name=name)


def extend_schema(base: type[Schema], extra_fields: dict, name: str) -> type[Schema]:
    """The base schema plus plugin fields; plugin fields are always present (null when unknown)."""
    return type(name, (base,), {k: _nullable(v) for k, v in extra_fields.items()})


def _nullable(field: fields.Field) -> fields.Field:
    field.allow_none = True
    return field
