"""Chats and messages to JSON: host columns plus plugin fields, loaded once per page."""

from __future__ import annotations


class Serializer:
    def __init__(self, chat_schema, message_schema, chat_fields, message_fields):
        self._chat_schema = chat_schema(many=True)
        self._message_schema = message_schema(many=True)
        self._chat_fields = chat_fields
        self._message_fields = message_fields

    def chats(self, conn, rows) -> list[dict]:
        return self._dump(conn, rows, self._chat_schema, self._chat_fields)

    def messages(self, conn, rows) -> list[dict]:
        return self._dump(conn, rows, self._message_schema, self._message_fields)

    @staticmethod
    def _dump(conn, rows, schema, field_sets) -> list[dict]:
        items = [dict(r) for r in rows]
        if items:
            ids = [item["id"] for item in items]
            for fs in field_sets:
                extra = fs.load(conn, ids) or {}
                for item in items:
                    values = extra.get(item["id"], {})
                    for name in fs.fields:
                        item[name] = values.get(name)
        return schema.dump(items)
