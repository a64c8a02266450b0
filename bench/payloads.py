"""Webhook deliveries for the load tests, built by the product's own delivery builders.

A delivery is rendered once by ``wazzup_plugin.sandbox.deliveries`` with placeholders for the
message id and chat id; wrk's Lua then fills them in per request from a counter, so every request
carries new messages (or, for redelivery, ids from a pool stored beforehand). Python can build the
very same ids (:func:`message_id`, :func:`chat_id`) to preload that pool.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from bench.harness import _lua_str

CHANNEL_ID = "b96a353b-06f5-4cac-8413-ba1d8e93f981"
TEXT = "Здравствуйте! Подскажите, пожалуйста, готов ли мой заказ и когда его можно забрать?"
AT = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
_MID, _CHAT = "@@MID@@", "@@CHAT@@"


def message_id(run: int, tid: int, k: int) -> str:
    """A UUID-shaped Wazzup message id; the same formula as the Lua below."""
    return f"{run:08x}-{tid:04x}-4000-8000-{k:012x}"


def chat_id(k: int, chats: int) -> str:
    return f"79{k % chats:09d}"


def message_item(mid: str, chat: str) -> dict:
    from wazzup_plugin.sandbox.deliveries import incoming_message

    return incoming_message(channel_id=CHANNEL_ID, chat_id=chat, message_id=mid, text=TEXT, at=AT,
                            name=f"Клиент {chat}")


def delivery_body(items: list[dict]) -> bytes:
    from wazzup_plugin.sandbox.deliveries import delivery

    return json.dumps(delivery(messages=items), ensure_ascii=False).encode("utf-8")


def _lua_concat(template: str) -> str:
    """A Lua expression joining the template's literal parts with the variables mid and chat."""
    pieces = []
    for part in re.split(f"({_MID}|{_CHAT})", template):
        if part == _MID:
            pieces.append("mid")
        elif part == _CHAT:
            pieces.append("chat")
        elif part:
            pieces.append(_lua_str(part))
    return " .. ".join(pieces)


def webhook_body_lua(*, batch: int, chats: int, run: int, pool: int | None = None) -> str:
    """Lua defining ``make_body(n)``: ``batch`` messages per delivery over ``chats`` chats.

    New ids per request (thread id and counter in the id); with ``pool``, ids cycle through
    ``message_id(run, 0, 0 .. pool-1)``, which the caller stored beforehand (redelivery).
    """
    item = json.dumps(message_item(_MID, _CHAT), ensure_ascii=False)
    envelope = delivery_body([{"x": 1}]).decode("utf-8")
    prefix, suffix = envelope.split('{"x": 1}')
    k_expr = "((n - 1) * BATCH + i) % POOL" if pool else "(n - 1) * BATCH + i"
    t_expr = "0" if pool else "tid"
    return f"""
local BATCH = {batch}
local CHATS = {chats}
local RUN = {run}
local POOL = {pool or 0}
local PREFIX = {_lua_str(prefix)}
local SUFFIX = {_lua_str(suffix)}
function make_body(n)
  local parts = {{}}
  for i = 1, BATCH do
    local k = {k_expr}
    local mid = string.format("%08x-%04x-4000-8000-%012x", RUN, {t_expr}, k)
    local chat = string.format("79%09d", k % CHATS)
    parts[i] = {_lua_concat(item)}
  end
  return PREFIX .. table.concat(parts, ", ") .. SUFFIX
end
"""
