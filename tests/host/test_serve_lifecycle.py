"""How ``helpdesk-stub serve`` stops: the request timeout it gives gunicorn, the SIGKILLs it logs.

The whole of serve against a slow Wazzup, and serve itself SIGKILLed, are in
``tests/fire/test_faults_serve.py``.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from host_stub.cli import _supervise, build_cli


@pytest.fixture
def restore_signals():
    """``_supervise`` installs SIGTERM and SIGINT handlers in this process: put pytest's back."""
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGINT, handlers[0])
    signal.signal(signal.SIGTERM, handlers[1])


def test_serve_logs_every_sigkill_it_sends_naming_the_process_and_how_long_it_waited(caplog, restore_signals):
    """A child that ignores SIGTERM past the deadline is killed, and the log says which and when:
    a restart that cut a send off leaves a trace."""
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                                 "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline() == "ready\n"  # SIGTERM is ignored from here on
        dying = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        started = time.monotonic()
        with pytest.raises(SystemExit):
            _supervise([stubborn, dying], stop_seconds=1)
        took = time.monotonic() - started
    finally:
        stubborn.kill()
        stubborn.stdout.close()
    assert stubborn.wait(timeout=10) == -signal.SIGKILL and took < 10
    [line] = [r.getMessage() for r in caplog.records if "SIGKILL" in r.getMessage()]
    assert f"(pid {stubborn.pid}) did not stop within 1 s of SIGTERM: sending SIGKILL" in line


def test_serve_gives_gunicorn_and_its_own_stop_the_request_timeout(pm_with, monkeypatch, tmp_path, isolated_logging):
    """HELPDESK_REQUEST_TIMEOUT is gunicorn's --timeout and --graceful-timeout (a send longer than
    gunicorn's default 30 s, or than the old 10 s drain, was killed), and serve waits a little
    longer before it kills anything."""
    import host_stub.cli as cli_module

    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("HELPDESK_", "WAZZUP24_"))]:
        monkeypatch.delenv(name)
    started, supervised = [], {}

    class FakeProcess:
        def __init__(self, argv, **kwargs):
            started.append(argv)

    monkeypatch.setattr(cli_module.subprocess, "Popen", FakeProcess)
    monkeypatch.setattr(cli_module, "_supervise", lambda procs, **kwargs: supervised.update(kwargs))
    database = {"HELPDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}"}
    for env, seconds in (({}, 60), ({"HELPDESK_REQUEST_TIMEOUT": "45"}, 45)):
        started.clear()
        result = CliRunner().invoke(build_cli(pm_with()), ["serve", "--no-workers"], env={**database, **env})
        assert result.exit_code == 0, result.output
        argv = started[0]
        assert argv[argv.index("--timeout") + 1] == argv[argv.index("--graceful-timeout") + 1] == str(seconds)
        assert supervised["stop_seconds"] > seconds


@pytest.mark.parametrize("value", ["9", "soon"])
def test_a_request_timeout_too_short_or_not_a_number_is_a_startup_error(value):
    from host_stub.config import Config
    from host_stub.errors import StartupError

    with pytest.raises(StartupError, match="HELPDESK_REQUEST_TIMEOUT must be"):
        Config.from_env({"HELPDESK_REQUEST_TIMEOUT": value}, dotenv_path=None)
