"""Never-downgraded statuses: 500 sends whose statuses arrive early, late, reordered and repeated.

Real processes end to end: agents send through gunicorn, the sandbox (Wazzup) accepts and posts the
statuses back to the webhook — in order, before its 201, newest first, twice, or all in one delivery
depending on the phase — and then a second storm of every status, shuffled and duplicated, comes
from 8 parallel clients. Meanwhile a poller reads each chat with ``changed_since`` as the agent UI
does, and must never see a message's status go backwards.
"""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from wazzup_plugin.sandbox.deliveries import delivery, incoming_message, status_update

from fire_support import (CHANNEL_ID, FIRE_API_KEY, FIRE_WEBHOOK_SECRET, ParallelSender, create_agent_token, phone,
                          wait_until)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RANK = {"queued": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4}
CHATS, SENDS = 10, 500
PHASES = [  # sandbox behaviour for each quarter of the sends
    {},
    {"statuses_before_201": True},
    {"reorder_statuses": True, "duplicate_statuses": True},
    {"statuses_before_201": True, "reorder_statuses": True, "duplicate_statuses": True, "combine_deliveries": True},
]


class Poller(threading.Thread):
    """Reads every chat's changes as the UI does and records each status transition it sees."""

    def __init__(self, base: str, headers: dict, chat_ids: list[int]):
        super().__init__(daemon=True)
        self.base, self.headers, self.chat_ids = base, headers, chat_ids
        self.since = {c: 0 for c in chat_ids}
        self.seen: dict[int, str] = {}
        self.backwards: list[tuple[int, str, str]] = []
        self.observations = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.session = requests.Session()

    def poll_once(self) -> None:
        for chat in self.chat_ids:
            cursor = None
            for _ in range(100):
                params = {"changed_since": self.since[chat], "limit": 200, **({"cursor": cursor} if cursor else {})}
                r = self.session.get(f"{self.base}/api/chats/{chat}/messages", params=params, headers=self.headers,
                                     timeout=30)
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                page = r.json()
                for m in page["items"]:
                    if m["direction"] != "out":
                        continue
                    before = self.seen.get(m["id"])
                    if before is not None and RANK.get(m["status"], -1) < RANK.get(before, -1):
                        self.backwards.append((m["id"], before, m["status"]))
                    self.seen[m["id"]] = m["status"]
                    self.observations += 1
                cursor = page["next_cursor"]
                if not cursor:
                    self.since[chat] = max(self.since[chat], page["change_seq"])
                    break

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll_once()
            except requests.RequestException as exc:
                self.errors.append(repr(exc))
            self.stop.wait(0.05)


def test_500_sends_with_early_reordered_and_repeated_statuses_all_end_read_and_never_go_back(
        gunicorn, sandbox, fire_database_url):
    wazzup = sandbox(status_delays=(0.05, 0.1, 0.15))
    # Sends block a worker until Wazzup answers, and statuses posted before the 201 need another one free.
    server = gunicorn(fire_database_url, workers=4, WAZZUP24_API_URL=wazzup.url, WAZZUP24_API_KEY=FIRE_API_KEY,
                      WAZZUP24_WEBHOOK_SECRET=FIRE_WEBHOOK_SECRET)
    hook = f"{server.url}/api/webhook?token={FIRE_WEBHOOK_SECRET}"
    registered = requests.patch(wazzup.url + "/v3/webhooks", headers={"Authorization": f"Bearer {FIRE_API_KEY}"},
                                json={"webhooksUri": hook, "subscriptions": {"messagesAndStatuses": True}}, timeout=30)
    assert registered.status_code == 200, registered.text
    auth = {"Authorization": f"Bearer {create_agent_token(fire_database_url)}"}

    first = delivery(messages=[incoming_message(channel_id=CHANNEL_ID, chat_id=phone(c), text="hello",
                                                message_id=str(uuid.uuid4())) for c in range(CHATS)])
    assert requests.post(hook, json=first, timeout=30).status_code == 200
    chats = requests.get(server.url + "/api/chats", params={"type": "wazzup", "limit": 200}, headers=auth,
                         timeout=30).json()["items"]
    chat_ids = sorted(c["id"] for c in chats)
    assert len(chat_ids) == CHATS

    poller = Poller(server.url, auth, chat_ids)
    poller.start()
    sent: dict[int, str] = {}  # host message id -> Wazzup message id
    session = threading.local()

    def send(n: int):
        s = getattr(session, "s", None) or requests.Session()
        session.s = s
        r = s.post(f"{server.url}/api/chats/{chat_ids[n % CHATS]}/wazzup24/send", json={"text": f"reply {n}"},
                   headers=auth, timeout=60)
        assert r.status_code == 201, f"send {n}: {r.status_code} {r.text[:300]}"
        return r.json()

    try:
        per_phase = SENDS // len(PHASES)
        for p, behaviour in enumerate(PHASES):
            changed = requests.patch(wazzup.url + "/_sandbox/config", json=behaviour | _reset(behaviour), timeout=10)
            assert changed.status_code == 200, changed.text
            with ThreadPoolExecutor(3) as pool:
                for message in pool.map(send, range(p * per_phase, (p + 1) * per_phase)):
                    assert message["wazzup_message_id"], message
                    sent[message["id"]] = message["wazzup_message_id"]

        # The storm: every status of every message twice more, shuffled, 25 to a delivery, 8 clients.
        items = [status_update(message_id=w, status=s) for w in sent.values() for s in ("sent", "delivered", "read")]
        items = items * 2
        random.Random(500).shuffle(items)
        storm = [delivery(statuses=items[i:i + 25]) for i in range(0, len(items), 25)]
        report = ParallelSender(hook, clients=8).send(storm)
        assert not report.failed and not report.seen_5xx, f"{report.seen_5xx[:5]} {server.tracebacks()}"

        wait_until(lambda: _all_read(server.url, auth, chat_ids, sent), 180, 0.5, "every message to be read")
        poller.poll_once()
    finally:
        poller.stop.set()
        poller.join(timeout=60)

    messages = _out_messages(server.url, auth, chat_ids)
    assert sorted(messages) == sorted(sent), "sent messages missing or duplicated"
    not_read = {i: m["status"] for i, m in messages.items() if m["status"] != "read"}
    assert not not_read, f"{len(not_read)} messages did not end read: {list(not_read.items())[:5]}"
    missing = [i for i, m in messages.items() if not (m["sent_at"] and m["delivered_at"] and m["read_at"])]
    assert not missing, f"{len(missing)} read messages lack a status timestamp, e.g. {messages[missing[0]]}"
    assert poller.observations >= SENDS, "the poller saw too little to prove anything"
    assert not poller.backwards, f"statuses went backwards: {poller.backwards[:10]}"
    assert not poller.errors, poller.errors[:5]
    received = requests.get(wazzup.url + "/_sandbox/received", timeout=10).json()
    assert received["total"] == SENDS and set(received["byCrmMessageId"].values()) == {1}


def _reset(behaviour: dict) -> dict:
    """Every phase option not named in this phase goes back to its default."""
    keys = {k for phase in PHASES for k in phase}
    return {k: False for k in keys if k not in behaviour}


def _out_messages(base: str, auth: dict, chat_ids: list[int]) -> dict[int, dict]:
    out = {}
    for chat in chat_ids:
        cursor = None
        for _ in range(100):
            params = {"after": 0, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = requests.get(f"{base}/api/chats/{chat}/messages", params=params, headers=auth, timeout=30).json()
            out.update({m["id"]: m for m in page["items"] if m["direction"] == "out"})
            cursor = page["next_cursor"]
            if not cursor:
                break
    return out


def _all_read(base: str, auth: dict, chat_ids: list[int], sent: dict) -> bool:
    messages = _out_messages(base, auth, chat_ids)
    return all(messages.get(i, {}).get("status") == "read" for i in sent)
