"""Packaging: one distribution from pyproject.toml, with the plugin entry point and the CLI."""

import configparser
import importlib.metadata
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_one_distribution_declares_both_packages_the_entry_point_and_the_cli():
    project = _pyproject()["project"]
    assert project["requires-python"] == ">=3.11"
    assert project["entry-points"]["helpdesk"] == {"wazzup24": "wazzup_plugin.hooks"}
    assert project["scripts"] == {"helpdesk-stub": "host_stub.cli:main"}
    includes = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    assert set(includes) == {"host_stub*", "wazzup_plugin*"}


def test_the_test_extra_holds_what_the_suite_imports():
    test_extra = " ".join(_pyproject()["project"]["optional-dependencies"]["test"])
    for requirement in ("pytest", "pytest-xdist", "responses", "hypothesis", "schemathesis", "playwright",
                        "psycopg", "openapi-spec-validator", "pyflakes"):
        assert requirement in test_extra


def test_the_code_has_no_unused_imports_or_names_and_no_undefined_ones():
    """pyflakes over every package and the tests: what it reports is a bug or dead code."""
    import io

    from pyflakes.api import checkRecursive
    from pyflakes.reporter import Reporter

    out = io.StringIO()
    found = checkRecursive([str(ROOT / d) for d in ("host_stub", "wazzup_plugin", "bench", "tests")],
                           Reporter(out, out))
    assert found == 0, out.getvalue()


def test_setup_cfg_holds_tool_settings_only():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    assert not {"metadata", "options"} & set(parser.sections())
    assert "tool:pytest" in parser.sections()


def test_the_installed_distribution_exposes_the_console_script_and_plugin():
    distribution = importlib.metadata.distribution("helpdesk-wazzup24")
    points = {(ep.group, ep.name): ep.value for ep in distribution.entry_points}
    assert points[("console_scripts", "helpdesk-stub")] == "host_stub.cli:main"
    assert points[("helpdesk", "wazzup24")] == "wazzup_plugin.hooks"


def test_migrations_and_static_files_ship_in_the_package():
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert "migrations/versions/*.py" in package_data["host_stub"]
    assert "migrations/versions/*.py" in package_data["wazzup_plugin"]
    assert any(p.startswith("static") for p in package_data["host_stub"])
