"""Logging: configured once (level, text or JSON, optional file), secrets masked in every line."""

import io
import json
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest

from host_stub.config import Config
from host_stub.logging_setup import SecretsFilter, configure_logging

API_KEY = "wz-live-key-5f1e2d3c4b5a6978"
SECRET = "hook-secret-0123456789abcdef"


@pytest.fixture
def configured(isolated_logging):
    """Logging configured from settings holding an API key and a webhook secret; returns the stream."""
    def configure(**fields):
        stream = io.StringIO()
        config = Config(env={"WAZZUP24_API_KEY": API_KEY, "WAZZUP24_WEBHOOK_SECRET": SECRET}, **fields)
        configure_logging(config, stream=stream)
        return stream

    return configure


def test_text_lines_carry_level_logger_message_and_context(configured):
    stream = configured()
    logging.getLogger("wazzup_plugin.outbound").info("sent message %s", 42, extra={"context": {"chat_id": 7}})
    line = stream.getvalue().strip()
    assert " INFO wazzup_plugin.outbound: sent message 42 chat_id=7" in line


def test_json_lines_are_one_object_per_record(configured):
    stream = configured(log_format="json")
    logging.getLogger("host_stub.test").warning("hello", extra={"context": {"message_id": 3}})
    entry = json.loads(stream.getvalue())
    assert (entry["level"], entry["logger"], entry["message"], entry["message_id"]) == (
        "WARNING", "host_stub.test", "hello", 3)


def test_level_is_honoured(configured):
    stream = configured(log_level="WARNING")
    logging.getLogger("host_stub.test").info("quiet")
    logging.getLogger("host_stub.test").warning("loud")
    assert "quiet" not in stream.getvalue() and "loud" in stream.getvalue()


def test_log_file_is_written(configured, tmp_path):
    path = tmp_path / "helpdesk.log"
    configured(log_file=str(path))
    logging.getLogger("host_stub.test").warning("to the file with %s", API_KEY)
    logging.getLogger().handlers[-1].flush()
    text = path.read_text()
    assert "to the file with ***" in text and API_KEY not in text


def test_a_log_file_moved_away_by_logrotate_is_reopened_at_the_next_line(configured, tmp_path):
    path = tmp_path / "helpdesk.log"
    configured(log_file=str(path))
    log = logging.getLogger("host_stub.test")
    log.warning("before the rotation")
    path.rename(tmp_path / "helpdesk.log.1")
    log.warning("after the rotation")
    logging.getLogger().handlers[-1].flush()
    assert "before the rotation" in (tmp_path / "helpdesk.log.1").read_text()
    assert "after the rotation" in path.read_text()


def test_configuring_again_closes_the_replaced_log_file(configured, tmp_path):
    configured(log_file=str(tmp_path / "first.log"))
    first = logging.getLogger().handlers[-1]
    configured(log_file=str(tmp_path / "second.log"))
    assert first.stream is None  # closed: a forked worker does not keep its master's file open


def test_configuring_again_replaces_the_handler(configured):
    configured()
    configured()
    assert [h.get_name() for h in logging.getLogger().handlers].count("helpdesk") == 1


@pytest.mark.parametrize("emit", [
    lambda log: log.info("calling Wazzup with key %s", API_KEY),
    lambda log: log.info(f"webhook secret is {SECRET}"),
    lambda log: log.info("request", extra={"context": {"api_key": API_KEY}}),
    lambda log: log.info("headers: Authorization: Bearer hdt_abcdefghijklmnop1234"),
    lambda log: log.info("GET /api/webhook?token=hdt_abcdefghijkl&x=1"),
    lambda log: log.info("settings api_key=unlisted-key-123456"),
])
def test_secrets_never_reach_a_log_line(configured, emit):
    stream = configured(log_format="json")
    emit(logging.getLogger("wazzup_plugin.test"))
    line = stream.getvalue()
    for secret in (API_KEY, SECRET, "hdt_abcdefghijk", "unlisted-key-123456"):
        assert secret not in line
    assert "***" in line


def test_secrets_in_exceptions_are_masked_too(configured):
    stream = configured()
    try:
        raise RuntimeError(f"Wazzup refused key {API_KEY}")
    except RuntimeError:
        logging.getLogger("wazzup_plugin.test").exception("send failed")
    assert API_KEY not in stream.getvalue() and "Wazzup refused key ***" in stream.getvalue()


def test_short_values_are_not_treated_as_secrets():
    masking = SecretsFilter(["abc", "", "long-enough-secret"])
    assert masking.mask("abc and long-enough-secret") == "abc and ***"


def test_gunicorn_access_log_masks_query_secrets_and_drops_credentials(monkeypatch, isolated_logging):
    from gunicorn.config import Config as GunicornConfig

    from host_stub.gunicorn_logging import MaskingLogger

    monkeypatch.setenv("WAZZUP24_WEBHOOK_SECRET", SECRET)
    logger = MaskingLogger(GunicornConfig())
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": f"/api/webhook?token={SECRET}", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/api/webhook", "QUERY_STRING": f"token={SECRET}", "REMOTE_ADDR": "127.0.0.1"}
    request = SimpleNamespace(headers=[("AUTHORIZATION", "Bearer hdt_abcdefghijklmnop"), ("COOKIE", "s=1")])
    response = SimpleNamespace(status="200 OK", sent=2, headers=[])
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=5))
    rendered = json.dumps(atoms, default=str)
    assert SECRET not in rendered and "hdt_abcdefghijklmnop" not in rendered
    assert atoms["r"] == "POST /api/webhook?token=*** HTTP/1.1"
    assert atoms["q"] == "token=***"
    assert "{authorization}i" not in atoms and "{cookie}i" not in atoms


def test_a_line_break_in_logged_text_cannot_forge_a_second_line(configured):
    stream = configured()
    forged = "x\n2026-11-27 15:40:00,000 ERROR host_stub.auth: agent admin logged in\r"
    logging.getLogger("wazzup_plugin.test").info("notice from %s", forged, extra={"context": {"source": forged}})
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "x\\n2026-11-27 15:40:00,000 ERROR host_stub.auth: agent admin logged in\\r" in text


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_lone_surrogate_in_logged_text_is_written_escaped(isolated_logging, log_format):
    # Handed to our handler only: the test runner's own log capture would choke on the surrogate.
    stream = io.StringIO()
    handler = configure_logging(Config(env={}, log_format=log_format), stream=stream)
    record = logging.LogRecord("wazzup_plugin.test", logging.WARNING, __file__, 1, "odd %s", ("a\ud800b",), None)
    record.context = {"name": "c\udfffd"}
    handler.handle(record)
    text = stream.getvalue()
    assert "odd a\\ud800b" in text and "c\\udfffd" in text
    text.encode("utf-8")


def test_a_traceback_keeps_its_lines_in_text_logs(configured):
    stream = configured()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("wazzup_plugin.test").exception("failed")
    assert "\nTraceback (most recent call last):\n" in stream.getvalue()


@pytest.mark.parametrize("query", ["tok%65n=" + "".join(f"%{ord(c):02x}" for c in SECRET),
                                   "x=1&T%4FKEN=abc-def-ghi-jkl", "token=" + SECRET.replace("-", "%2D")])
def test_gunicorn_access_log_masks_percent_encoded_secrets(monkeypatch, query, isolated_logging):
    from gunicorn.config import Config as GunicornConfig

    from host_stub.gunicorn_logging import MaskingLogger

    monkeypatch.setenv("WAZZUP24_WEBHOOK_SECRET", SECRET)
    logger = MaskingLogger(GunicornConfig())
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": f"/api/webhook?{query}", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/api/webhook", "QUERY_STRING": query, "REMOTE_ADDR": "127.0.0.1"}
    response = SimpleNamespace(status="200 OK", sent=2, headers=[])
    atoms = logger.atoms(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=5))
    rendered = json.dumps(atoms, default=str)
    assert query.split("&")[-1].split("=", 1)[1] not in rendered
    assert "=***" in atoms["q"] and "=***" in atoms["r"]


@pytest.mark.parametrize("path, query", [
    ("/api/chats", "q={token}"),                       # pasted into the search box
    ("/api/chats", "cursor=x&note=my+token+is+{token}"),  # any parameter, any position
    ("/api/chats/{token}", ""),                        # typed into the path
])
def test_gunicorn_access_log_masks_api_tokens_typed_outside_the_authorization_header(
        monkeypatch, isolated_logging, path, query):
    from gunicorn.config import Config as GunicornConfig

    from host_stub.auth import new_token
    from host_stub.gunicorn_logging import MaskingLogger

    token = new_token()
    path, query = path.format(token=token), query.format(token=token)
    logger = MaskingLogger(GunicornConfig())
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path + (f"?{query}" if query else ""),
               "SERVER_PROTOCOL": "HTTP/1.1", "PATH_INFO": path, "QUERY_STRING": query, "REMOTE_ADDR": "127.0.0.1"}
    request = SimpleNamespace(headers=[])
    response = SimpleNamespace(status="401 Unauthorized", sent=2, headers=[])
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=5))
    rendered = json.dumps(atoms, default=str)
    assert token not in rendered and token[4:20] not in rendered
    assert "***" in atoms["r"]


def test_an_api_token_in_any_log_line_is_masked_keeping_its_prefix(configured):
    from host_stub.auth import new_token

    stream = configured()
    token = new_token()
    logging.getLogger("host_stub.test").warning("agent pasted %s into a message", token)
    logging.getLogger("host_stub.test").warning("cut off: %s", token[:24])
    assert token[4:20] not in stream.getvalue()
    assert "agent pasted hdt_*** into a message" in stream.getvalue() and "cut off: hdt_***" in stream.getvalue()
