"""At-least-once in, exactly-once stored: repeated deliveries fired in parallel at several workers."""

from __future__ import annotations

import pytest

from fire_support import FIRE_WEBHOOK_SECRET, ParallelSender, assert_exactly_once, inbound_workload

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_2000_messages_delivered_3_times_by_8_clients_are_stored_exactly_once(gunicorn, fire_database_url):
    # 2,000 distinct messages in 200 chats, 10 per delivery; each delivery sent 3 times, shuffled,
    # so copies of one delivery and the first messages of one chat race in different workers.
    workload = inbound_workload(chats=200, per_chat=10, per_delivery=10, repeat=3, seed=2000)
    server = gunicorn(fire_database_url, workers=4, WAZZUP24_WEBHOOK_SECRET=FIRE_WEBHOOK_SECRET)
    sender = ParallelSender(server.url + "/api/webhook", clients=8,
                            headers={"Authorization": f"Bearer {FIRE_WEBHOOK_SECRET}"})

    report = sender.send(workload.bodies)

    assert not report.failed, f"deliveries not accepted: {sorted(set(report.failed))}\n{server.tracebacks()}"
    assert not report.seen_5xx, (f"the webhook answered 5xx under concurrency: {report.seen_5xx[:10]}\n"
                                 f"{server.tracebacks()}")
    assert report.connection_errors == 0
    assert_exactly_once(fire_database_url, workload)
