"""The plugin's settings: refused at startup when they cannot work, a warning when they work badly."""

import logging
from types import SimpleNamespace

import pytest

from host_stub.app import create_app
from wazzup_plugin.outbound.ratelimit import most_in_any_span
from wazzup_plugin.settings import SettingsError, WazzupSettings


def test_a_webhook_secret_shorter_than_16_characters_is_refused():
    with pytest.raises(SettingsError, match="WAZZUP24_WEBHOOK_SECRET must be at least 16 characters"):
        WazzupSettings.from_env({"WAZZUP24_WEBHOOK_SECRET": "fifteen-chars-x"})
    assert WazzupSettings.from_env({"WAZZUP24_WEBHOOK_SECRET": "sixteen-chars-xx"}).webhook_secret


def test_a_rate_limit_over_wazzups_500_is_refused():
    with pytest.raises(SettingsError, match="must not exceed Wazzup's limit of 500"):
        WazzupSettings.from_env({"WAZZUP24_RATE_LIMIT": "501"})


@pytest.mark.parametrize("name, value", [
    ("WAZZUP24_WEBHOOK_URL", "htps://helpdesk.example/api/webhook?token=Sup3rSecretTokenValue123"),
    ("WAZZUP24_API_URL", "ftp://user:Sup3rSecretTokenValue123@api.example/v3"),
    ("WAZZUP24_PUBLIC_URL", "https://user:Sup3rSecretTokenValue123@helpdesk.example"),
])
def test_a_mistyped_url_setting_is_refused_without_showing_its_credentials(name, value):
    with pytest.raises(SettingsError, match=name) as refused:
        WazzupSettings.from_env({name: value})
    assert "Sup3rSecretTokenValue123" not in str(refused.value)
    assert "***" in str(refused.value)


@pytest.mark.parametrize("limit, window, most", [(450, 5.0, 495), (500, 5.0, 550), (450, 1.0, 2295), (50, 1.0, 255)])
def test_the_most_calls_in_any_five_seconds_counts_the_slots_a_span_overlaps(limit, window, most):
    assert most_in_any_span(limit, window) == most


@pytest.mark.parametrize("rate, warned", [
    ({}, False),
    ({"WAZZUP24_RATE_LIMIT": "500"}, True),  # 550 in the worst 5 seconds
    ({"WAZZUP24_RATE_LIMIT": "450", "WAZZUP24_RATE_WINDOW": "1"}, True),
    ({"WAZZUP24_RATE_LIMIT": "90", "WAZZUP24_RATE_WINDOW": "1"}, False),  # 459
])
def test_startup_warns_when_the_rate_settings_let_more_through_than_wazzup_allows(settings, pm, engine, http, clock,
                                                                                   database_url, caplog, rate, warned):
    from host_stub.config import Config

    config = Config(database_url=database_url, env={**settings, **rate})
    with caplog.at_level(logging.WARNING):
        create_app(config, pm, engine=engine, http=http, clock=clock)
    assert any("Wazzup will answer 429" in r.getMessage() for r in caplog.records) is warned


@pytest.mark.parametrize("env, request_timeout, fits", [
    ({}, 60, True),                                      # 5 + 20 + 3 + 5 = 33 s
    ({"WAZZUP24_READ_TIMEOUT": "40"}, 60, True),         # 53 s under the host's 60
    ({"WAZZUP24_READ_TIMEOUT": "55"}, 60, False),
    ({"WAZZUP24_READ_TIMEOUT": "40"}, 30, False),        # the audit's case
    ({"WAZZUP24_READ_TIMEOUT": "40"}, 120, True),
])
def test_a_send_attempt_that_cannot_end_before_the_hosts_request_timeout_is_refused_naming_the_setting(
        env, request_timeout, fits):
    """connect + read + the rate limiter's wait + the database must fit under the host's request timeout
    (gunicorn's --timeout), else gunicorn kills the request in the middle of a send."""
    if fits:
        assert WazzupSettings.from_env(env, request_timeout).read_timeout == float(env.get("WAZZUP24_READ_TIMEOUT", 20))
    else:
        with pytest.raises(SettingsError, match=r"WAZZUP24_READ_TIMEOUT=\d+ .*\(\d+ s: HELPDESK_REQUEST_TIMEOUT on "
                                                r"the reference host\): .*Lower WAZZUP24_READ_TIMEOUT to at most \d+"):
            WazzupSettings.from_env(env, request_timeout)


def test_startup_refuses_a_read_timeout_longer_than_the_hosts_request_timeout_attribute(
        settings, pm, engine, http, clock, database_url):
    """The plugin reads the contract's ``config.request_timeout_seconds``, not the reference host's variable."""
    from host_stub.config import Config
    from host_stub.errors import StartupError

    config = Config(database_url=database_url, env={**settings, "WAZZUP24_READ_TIMEOUT": "40"},
                    request_timeout_seconds=30)
    with pytest.raises(StartupError, match="WAZZUP24_READ_TIMEOUT=40"):
        create_app(config, pm, engine=engine, http=http, clock=clock)


@pytest.mark.parametrize("config, seconds", [
    (SimpleNamespace(env={}), 60.0),                                   # a host without the attribute
    (SimpleNamespace(env={}, request_timeout_seconds=None), 60.0),
    (SimpleNamespace(env={}, request_timeout_seconds=45), 45.0),
])
def test_the_request_timeout_comes_from_the_contract_attribute_with_60_seconds_when_a_host_lacks_it(config, seconds):
    from wazzup_plugin.host import request_timeout_seconds

    assert request_timeout_seconds(config) == seconds


def test_the_settings_check_counts_the_rate_limiters_real_wait(helpdesk):
    from wazzup_plugin.outbound.context import outbound
    from wazzup_plugin.settings import RATE_LIMIT_MAX_WAIT

    assert outbound(helpdesk).limiter.max_wait <= RATE_LIMIT_MAX_WAIT


LIVE_URL = "https://helpdesk.example.com/api/webhook"


def test_startup_refuses_a_live_webhook_without_a_secret_naming_the_settings_and_the_fix(
        settings, pm, engine, http, clock, database_url):
    from host_stub.config import Config
    from host_stub.errors import StartupError

    config = Config(database_url=database_url, env={**settings, "WAZZUP24_WEBHOOK_URL": LIVE_URL})
    with pytest.raises(StartupError) as refused:
        create_app(config, pm, engine=engine, http=http, clock=clock)
    message = str(refused.value)
    for named in ("WAZZUP24_API_KEY", "WAZZUP24_WEBHOOK_URL", "WAZZUP24_WEBHOOK_SECRET",
                  "helpdesk-stub wazzup24 set-webhook", "WAZZUP24_WEBHOOK_INSECURE=1", "not recommended"):
        assert named in message


@pytest.mark.parametrize("extra, warned", [
    ({"WAZZUP24_WEBHOOK_URL": LIVE_URL, "WAZZUP24_WEBHOOK_SECRET": "0123456789abcdef0123"}, False),
    ({"WAZZUP24_WEBHOOK_URL": LIVE_URL, "WAZZUP24_WEBHOOK_INSECURE": "1"}, True),  # the operator's explicit choice
    ({}, True),                                                    # no webhook URL: not live yet
])
def test_startup_accepts_a_protected_webhook_an_explicit_opt_out_or_no_webhook_url(
        settings, pm, engine, http, clock, database_url, caplog, extra, warned):
    from host_stub.config import Config

    config = Config(database_url=database_url, env={**settings, **extra})
    with caplog.at_level(logging.WARNING):
        create_app(config, pm, engine=engine, http=http, clock=clock)
    warnings = [r.getMessage() for r in caplog.records if "WAZZUP24_WEBHOOK_SECRET is not set" in r.getMessage()]
    assert bool(warnings) is warned
    if "WAZZUP24_WEBHOOK_INSECURE" in extra:
        assert "WAZZUP24_WEBHOOK_INSECURE=1: not recommended" in warnings[0]


def test_the_insecure_opt_out_takes_one_or_zero():
    assert WazzupSettings.from_env({"WAZZUP24_WEBHOOK_INSECURE": "1"}).webhook_insecure is True
    assert WazzupSettings.from_env({"WAZZUP24_WEBHOOK_INSECURE": "0"}).webhook_insecure is False
    assert WazzupSettings.from_env({}).webhook_insecure is False
    with pytest.raises(SettingsError, match="WAZZUP24_WEBHOOK_INSECURE must be 1 or 0"):
        WazzupSettings.from_env({"WAZZUP24_WEBHOOK_INSECURE": "maybe"})


def test_agents_are_made_wazzup_users_unless_the_setting_says_0():
    assert WazzupSettings.from_env({}).sync_users is True
    assert WazzupSettings.from_env({"WAZZUP24_SYNC_USERS": "0"}).sync_users is False
    assert WazzupSettings.from_env({"WAZZUP24_SYNC_USERS": " 1 "}).sync_users is True
    with pytest.raises(SettingsError, match="WAZZUP24_SYNC_USERS must be 1 or 0"):
        WazzupSettings.from_env({"WAZZUP24_SYNC_USERS": "maybe"})


@pytest.mark.parametrize("value", ["0", "-1", "many", "2.5"])
def test_an_async_backlog_that_is_not_a_positive_whole_number_is_refused_naming_the_setting(value):
    from wazzup_plugin.settings import SettingsError, WazzupSettings

    with pytest.raises(SettingsError, match="WAZZUP24_ASYNC_BACKLOG"):
        WazzupSettings.from_env({"WAZZUP24_ASYNC_BACKLOG": value})
    assert WazzupSettings.from_env({}).async_backlog == 500


KEY = "c8cf90444023482f909520d454368d27"


@pytest.mark.parametrize("key", [KEY[:16] + "\u200b" + KEY[16:], KEY[:-1] + "\u0441", "Bearer " + KEY])
def test_an_api_key_with_an_invisible_character_or_a_space_is_refused_without_showing_it(key):
    """A zero-width space pasted with the key cannot go in the Authorization header: every call to Wazzup
    failed inside the HTTP library, each send ended `unknown` (maybe sent) though nothing went out,
    test-connection crashed with a traceback, and the outbox worker died at its first channel refresh."""
    with pytest.raises(SettingsError, match=r"WAZZUP24_API_KEY must be the key exactly as Wazzup shows it .*"
                                            r"character \d+ is U\+[0-9A-F]{4}") as refused:
        WazzupSettings.from_env({"WAZZUP24_API_KEY": key})
    assert KEY[:8] not in str(refused.value)


def test_an_api_key_keeps_working_with_blanks_around_it():
    assert WazzupSettings.from_env({"WAZZUP24_API_KEY": f" {KEY}\n"}).api_key == KEY
    assert WazzupSettings.from_env({"WAZZUP24_API_KEY": "  "}).api_key is None


@pytest.mark.parametrize("value", ["e0629e11-0f67-4567-92a9-2237e91ec1b9  # only with several channels", "x" * 65])
def test_a_channel_id_with_a_comment_after_it_or_too_long_for_the_outbox_is_refused(value):
    """Such a value went to Wazzup with every message to a chat without a channel of its own; on
    PostgreSQL one over 64 characters did not fit the outbox's column: the send answered 500 and the
    worker retried a message queued for it every minute, for ever, holding its chat back."""
    with pytest.raises(SettingsError, match="WAZZUP24_CHANNEL_ID must be one channel id"):
        WazzupSettings.from_env({"WAZZUP24_CHANNEL_ID": value})
    assert WazzupSettings.from_env({"WAZZUP24_CHANNEL_ID": " e0629e11-0f67-4567-92a9-2237e91ec1b9 "}).channel_id == \
        "e0629e11-0f67-4567-92a9-2237e91ec1b9"


@pytest.mark.parametrize("name", ["WAZZUP24_CONNECT_TIMEOUT", "WAZZUP24_READ_TIMEOUT", "WAZZUP24_RATE_WINDOW",
                                  "WAZZUP24_CONNECTION_CACHE_SECONDS"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_a_seconds_setting_that_is_no_finite_number_is_refused(name, value):
    # float() reads these, and NaN passes every bound a comparison sets: every send would then break.
    with pytest.raises(SettingsError, match=f"{name} must be a finite number of seconds, got '{value}'"):
        WazzupSettings.from_env({name: value})


@pytest.mark.parametrize("name", ["WAZZUP24_MEDIA_RETENTION_DAYS", "WAZZUP24_FILE_RETENTION_DAYS",
                                  "WAZZUP24_UNSENT_FILE_HOURS"])
def test_a_retention_reaching_back_before_the_year_1_is_refused_naming_the_setting(name):
    """Accepted, it failed the worker's housekeeping at every run (its cutoff is no date): a traceback
    every 5 minutes, and nothing purged (an unsent-upload age so long skipped the sent files' retention too)."""
    with pytest.raises(SettingsError, match=f"{name} must be at most"):
        WazzupSettings.from_env({name: "99999999999"})


def test_a_century_of_retention_is_taken_and_the_housekeeping_runs_with_it(outbox_ctx, plugin_settings, caplog):
    """Guards against refusing too much: the longest retention accepted still works."""
    from wazzup_plugin.outbound import worker

    longest = WazzupSettings.from_env({"WAZZUP24_MEDIA_RETENTION_DAYS": "36500",
                                       "WAZZUP24_FILE_RETENTION_DAYS": "36500", "WAZZUP24_UNSENT_FILE_HOURS": "876000"})
    plugin_settings(media_retention_days=longest.media_retention_days,
                    file_retention_days=longest.file_retention_days, unsent_file_hours=longest.unsent_file_hours)
    worker.housekeeping(outbox_ctx)
    assert "housekeeping failed" not in caplog.text
