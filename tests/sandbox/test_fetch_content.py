"""fetch_content: the sandbox downloads a send's contentUri at once, as Wazzup does (local URLs only)."""

import pytest

FILE = "http://127.0.0.1:8000/wazzup24/files/token/photo.png"


@pytest.fixture
def fetching(sandbox):
    sandbox.update_config({"fetch_content": True})
    return sandbox


def fetches(mock, url=FILE):
    return [c for c in mock.calls if c.request.url == url]


def test_a_local_content_uri_is_downloaded_once_before_the_send_is_accepted(v3, fetching, wazzup_api):
    wazzup_api.get(FILE, body=b"\x89PNG", status=200, content_type="image/png")
    result = v3.send(text=None, contentUri=FILE)
    assert result.status_code == 201, result.text
    assert len(fetches(wazzup_api)) == 1
    assert fetching.received()["outcomes"]["content_fetched"] == 1


@pytest.mark.parametrize("status, headers", [(404, {}), (500, {}), (302, {"Location": "http://127.0.0.1:8000/x.png"}),
                                             (301, {"Location": "https://elsewhere.example/x.png"})])
def test_a_download_that_fails_or_redirects_is_refused_like_wazzup(v3, fetching, wazzup_api, status, headers):
    wazzup_api.get(FILE, status=status, headers=headers)
    wazzup_api.get("http://127.0.0.1:8000/x.png", body=b"never fetched")
    result = v3.send(text=None, contentUri=FILE)
    assert (result.status_code, result.json["error"]) == (400, "MESSAGE_DOWNLOAD_CONTENT_ERROR")
    assert len(wazzup_api.calls) == 1   # the redirect is not followed


def test_a_download_that_cannot_connect_is_refused(v3, fetching, wazzup_api):
    result = v3.send(text=None, contentUri=FILE)   # nothing answers (responses refuses the connection)
    assert (result.status_code, result.json["error"]) == (400, "MESSAGE_DOWNLOAD_CONTENT_ERROR")


def test_content_over_10_mb_is_refused_like_wazzup(v3, fetching, wazzup_api):
    wazzup_api.get(FILE, body=b"0" * (10 * 1000 * 1000 + 1), status=200)
    result = v3.send(text=None, contentUri=FILE)
    assert (result.status_code, result.json["error"]) == (400, "MESSAGES_CONTENT_SIZE_EXCEEDED")


def test_a_url_off_this_machine_is_never_fetched(v3, fetching, wazzup_api):
    result = v3.send(text=None, contentUri="https://files.example.com/photo.png")
    assert result.status_code == 201
    assert len(wazzup_api.calls) == 0


def test_without_fetch_content_nothing_is_fetched(v3, sandbox, wazzup_api):
    assert sandbox.config.fetch_content is False
    assert v3.send(text=None, contentUri=FILE).status_code == 201
    assert len(wazzup_api.calls) == 0


def test_the_sandbox_command_has_a_fetch_content_flag():
    from click.testing import CliRunner

    from wazzup_plugin.sandbox.cli import sandbox_command

    assert "--fetch-content" in CliRunner().invoke(sandbox_command, ["--help"]).output
