"""Fixtures of the host's tests: running ``helpdesk-stub`` commands."""

import os

import pytest
from click.testing import CliRunner

from host_stub.cli import build_cli


@pytest.fixture
def cli_env(tmp_path, monkeypatch, isolated_logging):
    """Run commands in an empty directory (no stray .env) against a fresh SQLite file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "environ", dict(os.environ))  # main() copies .env values into os.environ
    for name in [n for n in os.environ if n.startswith(("HELPDESK_", "WAZZUP24_"))]:
        monkeypatch.delenv(name)
    return {"HELPDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}


@pytest.fixture
def run(cli_env, pm_with):
    def invoke(*args, input=None, env=None):
        return CliRunner().invoke(build_cli(pm_with()), list(args), input=input, env={**cli_env, **(env or {})})

    return invoke
