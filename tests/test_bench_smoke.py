"""The benchmarks are run by hand (bench/), not in the suite; these checks keep them from rotting:
every module imports, the report renders, the load scripts are generated, and the bulk data the
browse benchmark writes is readable through the API (on every test database)."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

# bench/ is run from the repository root and is not an installed package.
REPO = str(Path(__file__).resolve().parent.parent)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

BENCH_MODULES = ["bench.harness", "bench.apps", "bench.databases", "bench.payloads", "bench.report", "bench.bulk",
                 "bench.common", "bench.ingest", "bench.send", "bench.browse", "bench.memory", "bench.profile",
                 "bench.all"]


@pytest.mark.parametrize("name", BENCH_MODULES)
def test_bench_module_imports(name):
    importlib.import_module(name)


def test_results_tables_render_numbers_ratios_and_verdicts():
    from bench.report import Row, Section, Target, document, ratio, table

    rows = [Row("b · probe", {"req/s": 2034.5, "p99 ms": 12.345, "requests": 10172}),
            Row("c · webhook", {"req/s": 1500.0, "p99 ms": None, "requests": 7500})]
    sec = Section("Webhook ingest", intro="fake numbers",
                  tables=[table(rows, ["req/s", "p99 ms", "requests"])],
                  targets=[Target("c ≥ 0.7 × b", ratio(1500.0, 2034.5), 0.7),
                           Target("p99 c/b ≤ 3", 4.2, 3.0, at_least=False),
                           Target("never measured", None, 1.0)],
                  notes=["a note"])
    text = document("Benchmark results", ["preamble"], [sec])
    assert "| b · probe | 2,034 | 12.3 | 10,172 |" in text
    assert "| c · webhook | 1,500 | – | 7,500 |" in text
    assert "| c ≥ 0.7 × b | 0.74× | ≥ 0.70× | met |" in text
    assert "| p99 c/b ≤ 3 | 4.20× | ≤ 3.00× | **missed** |" in text
    assert "not measured" in text and "- a note" in text


def test_wrk_script_numbers_each_delivery_and_reports_json():
    from bench.harness import lua_script
    from bench.payloads import webhook_body_lua

    body = webhook_body_lua(batch=100, chats=1000, run=12345)
    script = lua_script("POST", "/api/webhook", {"Content-Type": "application/json"}, body_lua=body)
    assert "function make_body(n)" in script and "BENCH_RESULT" in script
    assert "local BATCH = 100" in script and "local CHATS = 1000" in script
    # The Lua builds ids with the same formula Python uses to preload redeliveries.
    assert '"%08x-%04x-4000-8000-%012x"' in script


def test_bench_delivery_is_a_wazzup_shaped_json_object():
    from bench import payloads

    mid = payloads.message_id(0x1234, 1, 42)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4000-8000-[0-9a-f]{12}", mid)
    body = json.loads(payloads.delivery_body([payloads.message_item(mid, payloads.chat_id(42, 1000))]))
    item = body["messages"][0]
    assert item["messageId"] == mid and item["chatId"] == "79000000042" and item["isEcho"] is False


def test_wrk_percentile_helper_is_nearest_rank():
    from bench.harness import percentile

    assert percentile(list(range(1, 101)), 50) == 50
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([], 50) == 0.0


def test_bulk_generated_chats_and_messages_page_through_the_api(database_url, engine, client, auth, pm):
    from bench import bulk

    bulk.grow(database_url, pm, (1, 30), (1, 3000), 30, 1)
    page = client.simulate_get("/api/chats", params={"limit": 10}, headers=auth).json
    assert [c["id"] for c in page["items"]] == list(range(30, 20, -1))
    assert page["items"][0]["wazzup_chat_id"] == "79000000030"
    deeper = client.simulate_get("/api/chats", params={"limit": 10, "cursor": page["next_cursor"]}, headers=auth).json
    assert [c["id"] for c in deeper["items"]] == list(range(20, 10, -1))
    messages = client.simulate_get(f"/api/chats/{bulk.HOT_CHAT}/messages", params={"limit": 5}, headers=auth).json
    ids = [m["id"] for m in messages["items"]]
    assert len(ids) == 5 and ids == sorted(ids)
    assert all(bulk.message_chat(i, 30) == bulk.HOT_CHAT for i in ids)
    assert messages["items"][-1]["wazzup_message_id"].startswith("00000000-0000-4000-8000-")


@pytest.mark.parametrize("case", ["ingest-1", "ingest-100", "probe-1", "send-async"])
def test_profile_timing_mode_runs_a_case_in_process_without_the_profiler(case, capsys):
    from bench import profile

    assert profile.main([case, "--db", "sqlite", "--requests", "3", "--timing"]) == 0
    assert re.search(rf"^{case} on sqlite: 3 requests in-process, mean [\d.]+ ms, p50 [\d.]+ ms, our CPU [\d.]+ ms$",
                     capsys.readouterr().out, re.MULTILINE)


@pytest.mark.skipif(not os.environ.get("HELPDESK_TEST_DATABASE_URL"),
                    reason="PostgreSQL tests need HELPDESK_TEST_DATABASE_URL (CI sets it)")
def test_profile_timing_on_postgresql_reports_the_wal_each_request_wrote(capsys):
    from bench import profile

    assert profile.main(["probe-1", "--db", "postgres", "--requests", "3", "--timing"]) == 0
    # Not the CPU figures: other tests' server processes end meanwhile, and theirs leave the sum.
    found = re.search(r"^probe-1 on postgres: 3 requests in-process, .*, WAL ([\d,]+) bytes$",
                      capsys.readouterr().out, re.MULTILINE)
    assert found and int(found.group(1).replace(",", "")) >= 200  # a row, its key and a commit at the least


def _readable_pg_wal() -> bool:
    """Whether the test server runs here with its WAL readable (what ``--wal-records`` needs)."""
    from bench.databases import throwaway_database
    from host_stub.db import make_engine

    with throwaway_database("postgres", "walcheck") as url:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                data = conn.execute(sa.text("SHOW data_directory")).scalar_one()
        finally:
            engine.dispose()
    return os.access(os.path.join(data, "pg_wal"), os.R_OK)


@pytest.mark.skipif(not os.environ.get("HELPDESK_TEST_DATABASE_URL"),
                    reason="PostgreSQL tests need HELPDESK_TEST_DATABASE_URL (CI sets it)")
def test_profile_wal_records_break_the_wal_down_by_relation(capsys):
    from bench import profile

    if not _readable_pg_wal():
        pytest.skip("the PostgreSQL server's pg_wal is not readable from here")
    assert profile.main(["probe-1", "--db", "postgres", "--requests", "3", "--timing", "--wal-records"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^\| bench_probe_messages \| Heap/INSERT \| [\d.]+ \| [\d,]+ \|$", out, re.MULTILINE), out


def test_ingest_ratios_pair_each_round_with_the_baseline_measured_beside_it():
    from bench.harness import WrkResult, combine_runs
    from bench.ingest import paired_ratios

    def run(rps, p99, per_request=1):
        return WrkResult(requests=int(rps * 2), seconds=2.0, rps=rps, p50_ms=1.0, p99_ms=p99, mean_ms=1.0,
                         non2xx=0, socket_errors=0, per_request=per_request)

    # The machine slows down in the second round: both cases move, their ratio does not.
    runs = {"a": [run(1000, 2), run(500, 4)], "b": [run(800, 3), run(400, 6)], "c": [run(600, 6), run(300, 12)],
            "b100": [run(10, 30, 100), run(5, 60, 100)], "d": [run(4, 60, 100), run(2, 120, 100)]}
    ratios = paired_ratios(runs)
    assert ratios["c/b"] == [0.75, 0.75] and ratios["p99 c/b"] == [2.0, 2.0] and ratios["d/b100"] == [0.4, 0.4]
    combined = combine_runs(runs["c"])
    assert combined.requests == 1800 and combined.rps == 450.0 and combined.p99_ms == 9.0


def test_browse_pages_are_compared_round_by_round_with_the_health_run_beside_them():
    from bench.browse import over_health
    from bench.harness import WrkResult, alternating_rounds

    def run(p50):
        return WrkResult(requests=100, seconds=2.0, rps=50.0, p50_ms=p50, p99_ms=2 * p50, mean_ms=p50,
                         non2xx=0, socket_errors=0)

    # The machine halves its speed after the first round: each round's ratio stays the page's own.
    runs = {"health": [run(1.0), run(2.0), run(2.0)], "page": [run(2.5), run(5.0), run(5.0)]}
    assert over_health(runs, "page") == [2.5, 2.5, 2.5]
    orders = [order for _, order in alternating_rounds(["health", "page"], 3)]
    assert orders == [["health", "page"], ["page", "health"], ["health", "page"]]
