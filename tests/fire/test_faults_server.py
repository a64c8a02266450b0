"""Faults on the receiving side: a gunicorn worker killed, the database stopped, during load."""

from __future__ import annotations

import json
import random
import threading

import pytest
import requests

from fire_support import ParallelSender, assert_exactly_once, inbound_workload, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_worker_killed_during_load_loses_and_duplicates_nothing(gunicorn, fire_database_url):
    workload = inbound_workload(chats=60, per_chat=10, per_delivery=5, repeat=3, seed=31)
    server = gunicorn(fire_database_url, workers=3)
    sender = ParallelSender(server.url + "/api/webhook", clients=8)
    kills: list[int] = []
    done = threading.Event()

    def killer():
        # Kill a worker whenever the previous one has been replaced, up to 5 times, while the load runs.
        while len(kills) < 5 and not done.is_set():
            wait_until(lambda: len(server.worker_pids()) == server.workers or done.is_set(), 30,
                       what="gunicorn to replace the killed worker")
            if done.wait(0.3):
                break
            kills.append(server.kill_worker())

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        report = sender.send(workload.bodies)
    finally:
        done.set()
        thread.join(timeout=60)

    assert kills, "the load ended before a worker could be killed"
    assert not report.failed, (f"deliveries never accepted after redelivery: {sorted(set(report.failed))}\n"
                               f"{server.tracebacks()}")
    # Wazzup redelivers what was not answered 200; the final state is the same whatever died when.
    assert_exactly_once(fire_database_url, workload)
    assert server.proc.poll() is None, "the gunicorn master died"


def test_database_restart_during_load_answers_5xx_then_recovers_without_loss(gunicorn, pg_cluster):
    url = pg_cluster.create_database("fire_restart")
    workload = inbound_workload(chats=40, per_chat=10, per_delivery=5, repeat=1, seed=57)
    server = gunicorn(url, workers=2)
    webhook = server.url + "/api/webhook"
    # Half the deliveries arrive before the outage; then every delivery (again, for that half) during
    # and after it, so each message's last delivery meets the outage or the recovery.
    first = workload.deliveries[: len(workload.deliveries) // 2]
    second = list(workload.deliveries)
    random.Random(5).shuffle(second)

    before = ParallelSender(webhook, clients=8).send(first)
    assert not before.failed and not before.seen_5xx, f"before the outage: {sorted(set(before.failed))}"

    pg_cluster.stop("fast")
    try:
        probe = requests.post(webhook, data=json.dumps(workload.deliveries[0]),
                              headers={"Content-Type": "application/json"}, timeout=30)
        assert 500 <= probe.status_code < 600, f"the webhook answered {probe.status_code} with the database down"
        assert probe.json().get("code"), "a 5xx must still use the JSON error shape"

        # Deliveries keep coming while the database is down; Wazzup redelivers until it gets 200.
        during = ParallelSender(webhook, clients=8, attempts=60, backoff=0.1)
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(report=during.send(second)), daemon=True)
        thread.start()
        wait_until(lambda: len(result) or _five_xx_seen(during, result), 60, what="5xx answers while down")
    finally:
        pg_cluster.start()
    thread.join(timeout=300)
    report = result["report"]

    assert not report.failed, (f"deliveries never accepted after the restart: {sorted(set(report.failed))}\n"
                               f"{server.tracebacks()}")
    assert report.retried_5xx > 0, "no delivery saw the outage: the test did not test it"
    assert requests.get(server.url + "/api/health", timeout=10).status_code == 200
    assert_exactly_once(url, workload)


def _five_xx_seen(sender: ParallelSender, result: dict) -> bool:
    report = getattr(sender, "last_report", None)
    return bool(report and report.retried_5xx >= 8)
