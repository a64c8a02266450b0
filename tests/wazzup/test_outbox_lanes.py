"""The outbox worker's lanes: a retry that may have reached Wazzup first (its dedupe window is its
deadline), then what agents send, then integrators' ``Prefer: respond-async`` sends.

An integrator's bulk send queues hundreds of messages for the worker; an agent's file or a maybe-sent
retry queued after them must not wait behind them all. Each test below but the async resend's (which
checks where it is stored) fails when the claim orders by due time alone.
"""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound import outbox, worker
from wazzup_plugin.state import get_state

ASYNC = {"Prefer": "respond-async"}
PUBLIC = "https://helpdesk.example.com"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def settings(settings):
    return {**settings, "WAZZUP24_PUBLIC_URL": PUBLIC}


@pytest.fixture
def wazzup(wazzup_api, wazzup_url, network_error, api_payload):
    """Wazzup accepting every call but the first of a message whose text is in ``times_out`` (a read
    timeout: it may have gone out) and those whose text is in ``refuses``. ``texts()``: what each
    call sent, in order."""

    class Fake:
        times_out, refuses, bodies = set(), set(), []

        def __call__(self, request):
            body = json.loads(request.body)
            self.bodies.append(body)
            if body.get("text") in self.refuses:
                return 400, {}, json.dumps(api_payload("error_bad_contact"))
            if body.get("text") in self.times_out:
                self.times_out.discard(body["text"])
                return network_error("read_timeout")
            return 201, {}, json.dumps({"messageId": f"wz-{body['crmMessageId']}"})

        def texts(self):
            return [b.get("text") or b.get("contentUri", "").rsplit("/", 1)[-1] for b in self.bodies]

    fake = Fake()
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=fake)
    return fake


@pytest.fixture
def bulk(send, make_wazzup_chat):
    """``bulk(n)``: an integrator's respond-async send to each of n chats of their own; their ids."""

    def queue(n):
        ids = []
        for i in range(n):
            result = send(make_wazzup_chat(f"790122{i:05d}", title=f"Customer {i}"), text=f"bulk {i}", headers=ASYNC)
            assert result.status_code == 202, result.text
            ids.append(result.json["id"])
        return ids

    return queue


def _lanes(helpdesk):
    o = get_state(helpdesk).tables["outbox"]
    with helpdesk.db.read() as conn:
        return dict(conn.execute(sa.select(o.c.message_id, o.c.lane).where(o.c.state == "pending")).all())


def _one_at_a_time(outbox_ctx):
    return [o.kind for o in worker.run_once(outbox_ctx, "w", batch=1)]


def test_a_retry_that_may_have_reached_wazzup_goes_before_the_bulk_queued_earlier(
        send, make_wazzup_chat, wazzup, bulk, outbox_ctx, clock, helpdesk):
    bulk(5)
    wazzup.times_out = {"Where is my order?"}
    answered = send(make_wazzup_chat("79033334455", title="Olga"), text="Where is my order?")
    assert (answered.status_code, answered.json["status"]) == (202, "queued")  # maybe sent: retried in 2 s
    assert _lanes(helpdesk)[answered.json["id"]] == outbox.LANE_MAYBE_SENT
    clock.advance(3)

    assert _one_at_a_time(outbox_ctx) == ["accepted"]
    # Its retry, inside Wazzup's dedupe window, not the bulk due since before it.
    assert wazzup.texts() == ["Where is my order?", "Where is my order?"]


def test_an_agents_file_goes_before_the_integrators_async_sends_queued_earlier(
        send, make_wazzup_chat, upload, wazzup, bulk, outbox_ctx, clock, helpdesk):
    bulk(5)
    chat = make_wazzup_chat("79033334455", title="Olga")
    uploaded = upload(chat, ("invoice.png", PNG, "image/png")).json
    clock.advance(1)
    sent = send(chat, {"file_id": uploaded["id"]})
    assert (sent.status_code, _lanes(helpdesk)[sent.json["id"]]) == (202, outbox.LANE_AGENTS)

    assert _one_at_a_time(outbox_ctx) == ["accepted"]
    assert wazzup.texts() == ["invoice.png"]
    worker.run_once(outbox_ctx, "w", batch=10)
    assert wazzup.texts() == ["invoice.png"] + [f"bulk {i}" for i in range(5)]  # then the bulk, in order


def test_an_agents_message_behind_a_chats_bulk_message_brings_it_into_the_agents_lane(
        send, wazzup, bulk, outbox_ctx, clock, helpdesk):
    first, *others = bulk(4)
    chat = _chat_of(helpdesk, others[-1])
    clock.advance(1)
    behind = send(chat, text="Sorry, one more thing")  # queued behind that chat's bulk message
    assert behind.status_code == 202
    lanes = _lanes(helpdesk)
    assert (lanes[others[-1]], lanes[behind.json["id"]], lanes[first]) == (outbox.LANE_AGENTS,) * 2 + (outbox.LANE_BULK,)

    worker.run_once(outbox_ctx, "w", batch=2)
    # The chat's own order holds: its bulk message, then the agent's.
    assert wazzup.texts() == ["bulk 3", "Sorry, one more thing"]


def test_an_async_resend_waits_in_the_bulk_lane(client, auth, send, make_wazzup_chat, wazzup, bulk, helpdesk):
    chat = make_wazzup_chat("79033334455", title="Olga")
    wazzup.refuses = {"to check"}
    failed = send(chat, text="to check")
    assert (failed.status_code, failed.json["code"]) == (422, "wazzup_bad_contact")
    resent = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed.json['message_id']}/resend",
                                  headers={**auth, **ASYNC})
    assert (resent.status_code, _lanes(helpdesk)[resent.json["id"]]) == (202, outbox.LANE_BULK)


def test_a_claim_takes_chats_in_lane_order_then_by_due_time(make_wazzup_chat, outbox_ctx, clock, helpdesk):
    """Rows stored straight into the lanes: the claim's chats are the first ones in (lane, due, id)."""
    chats = [make_wazzup_chat(f"790133{i:05d}") for i in range(6)]
    lanes = [outbox.LANE_BULK, outbox.LANE_AGENTS, outbox.LANE_BULK, outbox.LANE_MAYBE_SENT, outbox.LANE_AGENTS,
             outbox.LANE_BULK]
    ids = []
    with helpdesk.db.write() as tx:
        for chat, lane in zip(chats, lanes):
            ids.append(outbox.enqueue(tx, outbox_ctx, chat_id=chat, now=clock(), lease_owner=None, text="m",
                                      lane=lane))
    claimed = outbox.claim_due_rows(outbox_ctx, "w", limit=4)
    assert [row.message_id for row in claimed] == [ids[3], ids[1], ids[4], ids[0]]


@pytest.mark.parametrize("heads", [outbox.LANE_AGENTS, outbox.LANE_MAYBE_SENT], ids=["agents' rows", "retries"])
def test_a_chats_bulk_messages_behind_its_first_never_go_before_another_chats_agent_message_or_retry(
        make_wazzup_chat, outbox_ctx, clock, helpdesk, heads):
    """Chat A: an agent's message (or a maybe-sent retry), then 15 bulk messages; chat C: the same kind
    of message, due a second later. A claim of 10 takes both heads before any bulk message."""
    o = get_state(helpdesk).tables["outbox"]
    a, c = make_wazzup_chat("79040000001"), make_wazzup_chat("79040000002")
    with helpdesk.db.write() as tx:
        head = outbox.enqueue(tx, outbox_ctx, chat_id=a, now=clock(), lease_owner=None, text="A first")
        behind = [outbox.enqueue(tx, outbox_ctx, chat_id=a, now=clock(), lease_owner=None, text=f"A bulk {i}",
                                 lane=outbox.LANE_BULK) for i in range(15)]
        other = outbox.enqueue(tx, outbox_ctx, chat_id=c, now=clock() + timedelta(seconds=1), lease_owner=None,
                               text="C first")
        if heads == outbox.LANE_MAYBE_SENT:
            tx.conn.execute(sa.update(o).where(o.c.message_id.in_([head, other])).values(
                lane=outbox.LANE_MAYBE_SENT, maybe_sent=True, attempts=1, first_attempt_at=clock()))
    clock.advance(2)

    claimed = outbox.claim_due(outbox_ctx, "w", limit=10)
    assert claimed == [head, other] + behind[:8]  # in the order the worker attempts them


def _chat_of(helpdesk, message_id):
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(m.c.chat_id).where(m.c.id == message_id)).scalar_one()
