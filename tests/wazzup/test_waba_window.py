"""WhatsApp Business 24-hour window: computed from the customer's latest message on the injected clock,
shown in the chat info, and enforced by the send route before anything is stored."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound import outbox
from wazzup_plugin.outbound.window import chat_window
from wazzup_plugin.state import get_state

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"


@pytest.fixture
def window_of(helpdesk):
    def read(chat_id):
        with helpdesk.db.read() as conn:
            return chat_window(conn, helpdesk, get_state(helpdesk), chat_id, helpdesk.clock())

    return read


@pytest.fixture
def stored(helpdesk):
    """How many messages and outbox rows the database holds."""
    def count():
        o = get_state(helpdesk).tables["outbox"]
        with helpdesk.db.read() as conn:
            return (conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar(),
                    conn.execute(sa.select(sa.func.count()).select_from(o)).scalar())

    return count


def test_a_waba_chat_is_open_for_24_hours_after_the_customer_last_wrote(make_waba_chat, window_of, clock):
    wrote = clock.now - timedelta(hours=23, minutes=59)
    window = window_of(make_waba_chat(customer_wrote=wrote))
    assert (window.applies, window.open) == (True, True)
    assert window.closes_at == wrote + timedelta(hours=24)
    assert window.to_json()["closes_at"] == (wrote + timedelta(hours=24)).isoformat()


def test_the_window_closes_when_the_injected_clock_passes_24_hours(make_waba_chat, window_of, clock):
    chat = make_waba_chat(customer_wrote=clock.now)
    clock.advance(hours=24)
    window = window_of(chat)
    assert (window.applies, window.open, window.closes_at) == (True, False, clock.now)


def test_the_latest_incoming_message_counts_not_our_own(make_waba_chat, make_message, window_of, clock):
    chat = make_waba_chat(customer_wrote=clock.now - timedelta(hours=30))
    make_message(chat, "customer again", at=clock.now - timedelta(hours=2))
    make_message(chat, "our answer", direction="out", at=clock.now - timedelta(minutes=1))
    assert window_of(chat).closes_at == clock.now + timedelta(hours=22)


def test_our_messages_alone_do_not_open_the_window(make_waba_chat, make_message, window_of, clock):
    chat = make_waba_chat()
    make_message(chat, "we wrote first", direction="out")
    window = window_of(chat)
    assert (window.applies, window.open, window.closes_at, window.last_incoming_at) == (True, False, None, None)


def test_plain_whatsapp_and_chats_of_unknown_transport_have_no_window(make_wazzup_chat, window_of):
    assert window_of(make_wazzup_chat()).to_json() == {"applies": False, "open": True, "closes_at": None,
                                                       "last_incoming_at": None}
    assert window_of(make_wazzup_chat(wazzup_chat_id="79011112299", channel_id=None)).applies is False


def test_a_telegram_chat_on_a_waba_channel_id_has_no_window(make_waba_chat, window_of):
    assert window_of(make_waba_chat(chat_type="telegram", wazzup_chat_id="123456")).applies is False


def test_chat_info_shows_the_window(client, auth, make_waba_chat, clock):
    wrote = clock.now - timedelta(hours=1)
    chat = make_waba_chat(customer_wrote=wrote)
    info = client.simulate_get(f"/api/chats/{chat}/wazzup24/info", headers=auth).json
    assert info["window"] == {"applies": True, "open": True, "closes_at": (wrote + timedelta(hours=24)).isoformat(),
                              "last_incoming_at": wrote.isoformat()}


@pytest.mark.parametrize("body", [{"text": "are you there?"}, {"content_uri": "https://files.example.com/a.pdf"}])
def test_a_free_send_to_a_closed_window_is_409_and_stores_nothing(send, make_waba_chat, clock, stored, wazzup_api,
                                                                   body):
    chat = make_waba_chat(customer_wrote=clock.now - timedelta(hours=25))
    before = stored()
    result = send(chat, body)
    assert result.status_code == 409
    assert result.json["code"] == "wazzup_window_closed"
    assert "last wrote at 2026-11-25 11:00 UTC" in result.json["message"]
    assert "only a template" in result.json["message"]
    assert result.json["window"]["open"] is False
    assert stored() == before
    assert len(wazzup_api.calls) == 0


def test_a_free_send_to_a_customer_who_never_wrote_says_so(send, make_waba_chat):
    result = send(make_waba_chat())
    assert (result.status_code, result.json["code"]) == (409, "wazzup_window_closed")
    assert "has not written" in result.json["message"]


def test_a_free_send_inside_the_window_goes_out_as_text(send, make_waba_chat, clock, wazzup_api, wazzup_url,
                                                        sent_bodies, window_of):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    chat = make_waba_chat(customer_wrote=clock.now - timedelta(hours=23))
    assert window_of(chat).open is True
    assert send(chat, {"text": "yes, in stock"}).status_code == 201
    assert sent_bodies()[0]["text"] == "yes, in stock"


def test_resending_a_failed_text_is_refused_once_the_window_closed(client, auth, send, make_waba_chat, clock,
                                                                    wazzup_api, wazzup_url, stored):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"status": 400, "error": "BAD_CONTACT"}, status=400)
    chat = make_waba_chat(customer_wrote=clock.now - timedelta(hours=23))
    failed = send(chat, {"text": "in stock"}).json["message_id"]
    clock.advance(hours=2)
    before = stored()
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed}/resend", headers=auth)
    assert (result.status_code, result.json["code"]) == (409, "wazzup_window_closed")
    assert stored() == before


def test_the_workers_retry_of_a_queued_message_is_not_blocked_by_a_closed_window(
        send, make_waba_chat, clock, wazzup_api, wazzup_url, network_error, outbox_ctx, sent_bodies, window_of):
    chat = make_waba_chat(customer_wrote=clock.now - timedelta(hours=23, minutes=59))
    wazzup_api.post(f"{wazzup_url}/v3/message", body=network_error("refused"))
    queued = send(chat, {"text": "sure"})
    assert queued.status_code == 202
    clock.advance(minutes=5)  # the window closed meanwhile: Wazzup decides now, not us
    assert window_of(chat).open is False
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    [message_id] = outbox.claim_due(outbox_ctx, "worker-1")
    assert outbox.attempt(outbox_ctx, message_id, "worker-1").kind == "accepted"
    assert sent_bodies()[-1]["text"] == "sure"


def test_the_outbox_worker_learns_a_new_chats_channel_so_its_closed_window_is_enforced(
        make_wazzup_chat, window_of, send, outbox_ctx, wazzup_api, wazzup_url, stored):
    """A new install: no one has opened the connection report, so no channel's messenger is stored.
    The worker asks Wazzup's channel list when it starts; from then on the window holds."""
    import threading

    from tests.conftest import WABA_CHANNEL_ID
    from wazzup_plugin.outbound import worker

    chat = make_wazzup_chat(wazzup_chat_id="79011112255", channel_id=WABA_CHANNEL_ID)  # the customer never wrote
    assert window_of(chat).applies is False                       # its messenger is not known yet
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=[
        {"channelId": WABA_CHANNEL_ID, "transport": "wapi", "plainId": "79865784458", "state": "active"}])
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(outbox_ctx, stop), kwargs={"poll_seconds": 0.01})
    thread.start()
    try:
        for _ in range(500):  # bounded: 5 s
            if window_of(chat).applies:
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(10)
    assert window_of(chat).to_json()["applies"] is True and window_of(chat).open is False
    before = stored()
    refused = send(chat, text="Hello after a while")
    assert (refused.status_code, refused.json["code"]) == (409, "wazzup_window_closed")
    assert stored() == before
