"""The sandbox's state and behaviour, apart from HTTP: what it accepted, what it sends back.

State lives in memory in one process (the sandbox server runs one process with threads), guarded
by one lock. ``reset()`` forgets everything but the config (and, unless asked, the webhook).
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Callable

import requests

from wazzup_plugin.sandbox import deliveries, templates
from wazzup_plugin.sandbox.config import SandboxConfig
from wazzup_plugin.sandbox.faults import Faults
from wazzup_plugin.sandbox.ratelimit import FixedWindowLimiter
from wazzup_plugin.sandbox.sender import WebhookSender

CUSTOMER_NAMES = ("Ivan Petrov", "Maria Ivanova", "Olga Smirnova", "Dmitry Kuznetsov", "Anna Sokolova",
                  "Sergey Popov", "Elena Volkova", "Alexey Morozov")
BAD_CONTACT_DESCRIPTION = "Account with this chatId does not exist"
DEFAULT_SUBSCRIPTIONS = {"messagesAndStatuses": False, "contactsAndDealsCreation": False,
                         "channelsUpdates": False, "templateStatus": False}
# What `helpdesk-stub wazzup24 set-webhook` subscribes to: for tests that set ``webhook_uri`` directly.
PLUGIN_SUBSCRIPTIONS = {**DEFAULT_SUBSCRIPTIONS, "messagesAndStatuses": True, "channelsUpdates": True}
KNOWN_MESSAGE_IDS = 200_000   # message ids remembered for refMessageId checks (oldest forgotten first)


class SandboxError(ValueError):
    """A control request the sandbox cannot carry out (the message says why)."""


# A channel's transport -> the chat type of its one-to-one chats (WhatsApp's, for a transport not listed).
CHANNEL_CHAT_TYPES = {"tgapi": "telegram", "telegram": "telegram", "max": "max", "instagram": "instagram",
                      "vk": "vk", "avito": "avito", "viber": "viber"}


class Sandbox:
    def __init__(self, config: SandboxConfig, clock: Callable[[], datetime], http: requests.Session):
        self.config = config
        self.clock = clock
        self.http = http
        self.lock = threading.RLock()
        self.faults = Faults()
        self.limiter = FixedWindowLimiter()
        self.webhook_uri: str | None = None
        self.subscriptions = dict(DEFAULT_SUBSCRIPTIONS)
        self.sender = WebhookSender(http=http, clock=clock, target=lambda: self.webhook_uri,
                                    options=lambda: self.config, subscriptions=lambda: self.subscriptions)
        self.reset(keep_webhook=False)

    # ------------------------------------------------------------ state

    def reset(self, keep_webhook: bool = True) -> None:
        with self.lock:
            self.accepted: deque[dict] = deque(maxlen=100_000)
            self.accepted_total = 0
            self.crm_counts: Counter[str] = Counter()
            self.crm_last_accepted: dict[str, datetime] = {}
            self.outcomes: Counter[str] = Counter()
            self.known_chats: dict[str, dict] = {}     # chatId -> {"channelId", "name"}
            self.customer_messages: deque[dict] = deque(maxlen=10_000)
            self.message_ids: dict[str, None] = {}      # every message id issued or delivered, oldest first
            self.last_incoming: dict[tuple[str, str], datetime] = {}  # (channelId, chatId) -> the customer's last
            self.users: dict[str, str] = {}             # the account's users (POST /v3/users): id -> name
            # Telegram/MAX customers written to first: (channelId, "phone"|"username", value) -> their chatId
            self.addressed_chats: dict[tuple[str, str, str], str] = {}
            self.faults.clear()
            self.limiter.reset()
            self.sender.clear()
            if not keep_webhook:
                self.webhook_uri = None
                self.subscriptions = dict(DEFAULT_SUBSCRIPTIONS)

    def register_webhook(self, uri: str | None, subscriptions: dict | None = None) -> None:
        """Register a webhook as a PATCH would (without its test POST); by default with the
        subscriptions the plugin's ``set-webhook`` asks for."""
        with self.lock:
            self.webhook_uri = uri
            self.subscriptions = {**DEFAULT_SUBSCRIPTIONS, **(PLUGIN_SUBSCRIPTIONS if subscriptions is None
                                                              else subscriptions)}

    def remember_message_id(self, message_id: str) -> None:
        with self.lock:
            self.message_ids[message_id] = None
            if len(self.message_ids) > KNOWN_MESSAGE_IDS:
                del self.message_ids[next(iter(self.message_ids))]

    def knows_message(self, message_id: str) -> bool:
        with self.lock:
            return message_id in self.message_ids

    def update_config(self, changes: dict) -> SandboxConfig:
        with self.lock:
            self.config = self.config.updated(changes)
            return self.config

    def upsert_users(self, users: list[dict]) -> None:
        """Create or rename users, matched by id (``POST /v3/users``, already validated)."""
        with self.lock:
            for user in users:
                self.users[user["id"]] = user["name"]

    def delete_user(self, user_id: str) -> bool:
        """Remove a user (``DELETE /v3/users/:id``); False: there was none with this id."""
        with self.lock:
            return self.users.pop(user_id, None) is not None

    def listed_users(self) -> list[dict]:
        """The users as ``GET /v3/users`` lists them: sorted by name."""
        with self.lock:
            return [{"id": i, "name": n} for i, n in sorted(self.users.items(), key=lambda item: (item[1], item[0]))]

    def count(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1

    def now(self) -> datetime:
        return self.clock()

    # ------------------------------------------------------------ sends

    def repeated_crm_id(self, crm_message_id: str | None) -> bool:
        if crm_message_id is None:
            return False
        with self.lock:
            last = self.crm_last_accepted.get(crm_message_id)
        return last is not None and (self.now() - last).total_seconds() < self.config.crm_dedupe_seconds

    def accept(self, body: dict) -> tuple[dict, list[dict], list[tuple[float, dict]]]:
        """Record an accepted send. Returns (the 201 body, deliveries to post before answering,
        deliveries to post after, as (delay, body))."""
        cfg = self.config
        now = self.now()
        message_id = str(uuid.uuid4())
        chat_id = body.get("chatId") or self.chat_of_address(body)
        crm_id = body.get("crmMessageId")
        text = templates.template_text(cfg, body) if "templateId" in body else body.get("text")
        record = {"messageId": message_id, "chatId": chat_id, "channelId": body["channelId"],
                  "chatType": body["chatType"], "text": text, "contentUri": body.get("contentUri"),
                  "templateId": body.get("templateId"), "templateValues": body.get("templateValues"),
                  "crmMessageId": crm_id, "crmUserId": body.get("crmUserId"), "refMessageId": body.get("refMessageId"),
                  "acceptedAt": deliveries.iso(now)}
        with self.lock:
            self.remember_message_id(message_id)
            self.accepted.append(record)
            self.accepted_total += 1
            if crm_id is not None:
                self.crm_counts[crm_id] += 1
                self.crm_last_accepted[crm_id] = now
            self.known_chats.setdefault(chat_id, {"channelId": body["channelId"], "name": chat_id})
        before: list[dict] = []
        after: list[tuple[float, dict]] = []
        if cfg.echo != "off":
            echo = deliveries.delivery(messages=[self._echo_item(record, now)])
            (before.append(echo) if cfg.echo == "before" else after.append((0.0, echo)))
        statuses = self._status_plan(record, now)
        if cfg.statuses_before_201:
            before.extend(body for _, body in statuses)
        else:
            after.extend(statuses)
        return {"messageId": message_id, "chatId": chat_id}, before, after

    def _echo_item(self, record: dict, now: datetime) -> dict:
        extra = {"sentFromApp": False}
        if record["crmUserId"]:
            extra["authorId"] = record["crmUserId"]
            with self.lock:
                name = self.users.get(record["crmUserId"])
            if name is not None:  # Wazzup records a crmUserId as the sender only for a user it has (§3.1)
                extra["authorName"] = name
        if self.config.echo_crm_message_id and record["crmMessageId"] is not None:
            extra["crmMessageId"] = record["crmMessageId"]
        return deliveries.incoming_message(
            channel_id=record["channelId"], chat_id=record["chatId"], chat_type=record["chatType"],
            text=record["text"], content_uri=record["contentUri"], message_id=record["messageId"],
            at=now, is_echo=True, **extra)

    def _status_plan(self, record: dict, now: datetime) -> list[tuple[float, dict]]:
        """The status deliveries that follow a send, as (delay, body), in the order they are posted."""
        cfg = self.config
        if record["chatId"] in cfg.bad_contacts:
            steps = [("error", cfg.status_delays[0],
                      {"error": "BAD_CONTACT", "description": BAD_CONTACT_DESCRIPTION})]
        elif record["templateId"] is None and not self.window_open(record["channelId"], record["chatId"]):
            steps = [("error", cfg.status_delays[0], dict(templates.WINDOW_CLOSED))]
        else:
            steps = [(s, d, None) for s, d in zip(("sent", "delivered", "read"), cfg.status_delays)]
        if cfg.reorder_statuses and len(steps) > 1:
            delays = [d for _, d, _ in steps]
            steps = [(s, d, e) for (s, _, e), d in zip(reversed(steps), delays)]
        plan = []
        for status, delay, error in steps:
            item = deliveries.status_update(message_id=record["messageId"], status=status,
                                            at=now + timedelta(seconds=delay), error=error)
            body = deliveries.delivery(statuses=[item])
            plan.append((delay, body))
            if cfg.duplicate_statuses:
                plan.append((delay, body))
        return plan

    def window_open(self, channel_id: str, chat_id: str) -> bool:
        """Whether a free text or file reaches this chat: always, but on a WABA channel only within
        ``waba_window_hours`` of the customer's last message here."""
        channel = self.config.channel(channel_id)
        if channel is None or channel.transport != templates.WABA:
            return True
        with self.lock:
            last = self.last_incoming.get((channel_id, chat_id))
        return last is not None and self.now() - last < timedelta(hours=self.config.waba_window_hours)

    def chat_of_address(self, body: dict) -> str:
        """The chatId of the customer a send names by ``phone`` or ``username`` (Telegram, MAX): the same
        customer always has the same one, a number as Telegram's and MAX's ids are (reference §3.4)."""
        kind = "phone" if body.get("phone") else "username"
        key = (body["channelId"], kind, str(body[kind]).lower())
        with self.lock:
            if key not in self.addressed_chats:
                self.addressed_chats[key] = str(500_000_000 + len(self.addressed_chats) + 1)
            return self.addressed_chats[key]

    # ------------------------------------------------------------ customers

    def customer_message(self, spec: dict) -> dict:
        """A webhook delivery of a customer's message, built from a control request."""
        cfg = self.config
        channel_id = spec.get("channelId")
        if channel_id is None:
            channel = next((c for c in cfg.channels if c.transport in ("whatsapp", "wapi")), None) or cfg.channels[0]
            channel_id = channel.channelId
        elif cfg.channel(channel_id) is None:
            raise SandboxError(f"no channel {channel_id!r} in the sandbox")
        chat_id = spec.get("chatId")
        # A customer of a Telegram or MAX channel writes from Telegram or MAX, unless the spec says otherwise.
        chat_type = spec.get("chatType") or CHANNEL_CHAT_TYPES.get(cfg.channel(channel_id).transport, "whatsapp")
        source = spec.get("from", "new" if chat_id is None else "given")
        with self.lock:
            if chat_id is None and source == "known":
                # The channel's own customers: a Telegram customer's id is no WhatsApp number.
                known = [c for c, about in self.known_chats.items() if about["channelId"] == channel_id]
                if not known:
                    raise SandboxError("no known customer of this channel yet: let a new customer write first")
                chat_id = known[-1]
            elif chat_id is None:
                chat_id = ("7" if chat_type in ("whatsapp", "viber") else "3") + "".join(
                    str(secrets.randbelow(10)) for _ in range(10))
            known = self.known_chats.get(chat_id)
            name = spec.get("name") or (known["name"] if known and known["name"] != chat_id else None)
            if name is None:  # a new customer gets a name no other customer has (the demo's seeded ones included)
                used = {c["name"] for c in self.known_chats.values()}
                name = next((n for n in CUSTOMER_NAMES if n not in used), None) or f"Customer {len(used) + 1}"
            self.known_chats[chat_id] = {"channelId": channel_id, "name": name}
        extra = {k: v for k, v in spec.items() if k in ("isEdited", "isDeleted", "oldInfo", "quotedMessage",
                                                         "sentFromApp", "authorName", "authorId")}
        item = deliveries.incoming_message(
            channel_id=channel_id, chat_id=chat_id, text=spec.get("text"), content_uri=spec.get("contentUri"),
            type=spec.get("type"), name=name, chat_type=chat_type,
            message_id=spec.get("messageId"), at=self.now(), avatar_uri=spec.get("avatarUri"),
            is_echo=bool(spec.get("isEcho", False)), **extra)
        with self.lock:
            self.customer_messages.append(item)
            self.remember_message_id(item["messageId"])
            if not item.get("isEcho"):
                self.last_incoming[(channel_id, chat_id)] = self.now()
        return deliveries.delivery(messages=[item])

    def channel_state(self, channel_id: str, state: str) -> dict:
        """Change a channel's state; returns the ``channelsUpdates`` delivery to post."""
        with self.lock:
            channels = [c.to_json() for c in self.config.channels]
            match = next((c for c in channels if c["channelId"] == channel_id), None)
            if match is None:
                raise SandboxError(f"no channel {channel_id!r} in the sandbox")
            match["state"] = state
            self.update_config({"channels": channels})
        return deliveries.delivery(channels_updates=[
            deliveries.channel_update(channel_id=channel_id, state=state, at=self.now())])

    # ------------------------------------------------------------ reading

    def received(self, crm_message_id: str | None = None) -> dict:
        with self.lock:
            if crm_message_id is not None:
                return {"crmMessageId": crm_message_id, "accepted": self.crm_counts.get(crm_message_id, 0),
                        "messages": [m for m in self.accepted if m["crmMessageId"] == crm_message_id]}
            return {"total": self.accepted_total, "byCrmMessageId": dict(self.crm_counts),
                    "outcomes": dict(self.outcomes), "messages": list(self.accepted)[-1000:]}
