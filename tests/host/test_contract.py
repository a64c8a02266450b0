"""The contract itself: documented hooks, startup validation, manifests, plugin selection, isolation."""

import ast
import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest

import wazzup_plugin
from host_stub import hookspecs
from host_stub.config import Config
from host_stub.errors import StartupError
from host_stub.plugins import check_manifest, get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


def _hook_names():
    return sorted(name for name, obj in vars(hookspecs).items()
                  if callable(obj) and hasattr(obj, f"{hookspecs.PROJECT}_spec"))


def test_the_contract_defines_a_small_set_of_hooks():
    assert 6 <= len(_hook_names()) <= 11, _hook_names()


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_is_documented(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc) > 80, f"hook {hook} needs a docstring saying when it is called and what to return"
    assert re.search(r"(?i)\b(return|called)\b", doc)


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_has_a_test(hook):
    pattern = re.compile(rf"^def test_hook_{hook}(_\w+)?\(", re.M)
    found = [p for p in (ROOT / "tests").rglob("test_*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert found, f"write a test named test_hook_{hook}_... for the {hook} hook"


def test_startup_fails_on_a_duplicate_chat_type(build_app, pm_with, make_plugin):
    from types import SimpleNamespace

    clash = make_plugin("clash", register_chat_types=lambda helpdesk: [SimpleNamespace(name="wazzup", label="x",
                                                                                         icon="/x.svg")])
    with pytest.raises(StartupError, match=r"chat type 'wazzup' is registered twice: by 'wazzup24' and by 'clash'"):
        build_app(pm_with(clash))


def test_startup_fails_on_a_duplicate_route(build_app, pm_with, make_plugin):
    from types import SimpleNamespace

    clash = make_plugin("clash", register_routes=lambda helpdesk: [
        SimpleNamespace(template="/api/chats", resource=object())])
    with pytest.raises(StartupError, match=r"route '/api/chats' is registered twice: by 'host' and by 'clash'"):
        build_app(pm_with(clash))


def test_startup_fails_on_a_misspelled_hook(make_plugin):
    typo = make_plugin("typo", register_chat_type=lambda helpdesk: [])
    with pytest.raises(StartupError, match=r"plugin 'typo' implements a hook the contract does not define.*"
                                           r"register_chat_type"):
        get_plugin_manager(load_entrypoints=False, extra_plugins=[typo])


def test_startup_fails_on_an_invalid_host_setting():
    with pytest.raises(StartupError, match="HELPDESK_MAX_BODY_BYTES must be a whole number, got 'lots'"):
        Config.from_env({"HELPDESK_MAX_BODY_BYTES": "lots"}, dotenv_path=None)
    with pytest.raises(StartupError, match="HELPDESK_LOG_LEVEL must be one of"):
        Config.from_env({"HELPDESK_LOG_LEVEL": "LOUD"}, dotenv_path=None)
    with pytest.raises(StartupError, match="HELPDESK_DATABASE_URL must be a database URL"):
        Config.from_env({"HELPDESK_DATABASE_URL": "helpdesk.db"}, dotenv_path=None)


@pytest.mark.parametrize("url, why", [
    ("postgresql+psycopg://agent:Pa55word-xyz@db.example:notaport/helpdesk", "is not a valid database URL"),
    ("agent:Pa55word-xyz@db.example/helpdesk", "must be a database URL"),
    ("postgres://agent:Pa55word-xyz@db.example/helpdesk", "starts with postgres://, .* write postgresql\\+psycopg://"),
])
def test_a_bad_database_url_is_refused_naming_the_setting_without_its_password(url, why):
    with pytest.raises(StartupError, match=f"HELPDESK_DATABASE_URL {why}") as refused:
        Config.from_env({"HELPDESK_DATABASE_URL": url}, dotenv_path=None)
    assert "Pa55word-xyz" not in str(refused.value)


def test_startup_fails_on_an_invalid_plugin_setting(build_app, pm_with):
    with pytest.raises(StartupError, match="WAZZUP24_RATE_LIMIT must be a whole number.*'abc'"):
        build_app(pm_with(), WAZZUP24_RATE_LIMIT="abc")


def test_a_plugin_without_a_manifest_is_refused():
    import types

    bare = types.ModuleType("bare")
    with pytest.raises(StartupError, match=r"plugin 'bare' has no HELPDESK_MANIFEST with name, version and contract"):
        get_plugin_manager(load_entrypoints=False, extra_plugins=[bare])


def test_a_plugin_built_for_another_contract_is_refused(make_plugin):
    future = make_plugin("future", contract="2")
    with pytest.raises(StartupError, match=r"plugin 'future' 0.0.1 was built for helpdesk contract 2, "
                                           r"this helpdesk implements contract 1"):
        get_plugin_manager(load_entrypoints=False, extra_plugins=[future])


def test_the_wazzup_plugin_carries_a_manifest_for_this_contract():
    import wazzup_plugin.hooks

    manifest = check_manifest(wazzup_plugin.hooks)
    assert manifest["name"] == "wazzup24"
    assert manifest["version"] == wazzup_plugin.__version__
    assert manifest["contract"] == hookspecs.CONTRACT_VERSION


def test_the_plugin_entry_point_is_discoverable():
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="helpdesk")}
    assert found["wazzup24"].value == "wazzup_plugin.hooks"
    assert found["wazzup24"].load().HELPDESK_MANIFEST["name"] == "wazzup24"


def test_installed_plugins_load_by_default(monkeypatch):
    monkeypatch.delenv("HELPDESK_PLUGINS", raising=False)
    assert get_plugin_manager().get_plugin("wazzup24") is not None


@pytest.mark.parametrize("value, loaded", [("wazzup24", True), (" wazzup24 , ", True), ("all", True),
                                           ("none", False)])
def test_helpdesk_plugins_chooses_the_installed_plugins_to_load(monkeypatch, value, loaded):
    monkeypatch.setenv("HELPDESK_PLUGINS", value)
    pm = get_plugin_manager()
    assert (pm.get_plugin("wazzup24") is not None) is loaded
    assert pm.get_plugin("host_stub.builtin.notes") is not None  # the host's own types stay


def test_helpdesk_plugins_naming_a_missing_plugin_stops_startup(monkeypatch):
    monkeypatch.setenv("HELPDESK_PLUGINS", "wazzup24,telegram")
    with pytest.raises(StartupError, match=r"HELPDESK_PLUGINS names telegram, which is not installed "
                                           r"\(installed: .*wazzup24"):
        get_plugin_manager()


def _plugin_modules():
    package = Path(wazzup_plugin.__file__).parent
    return sorted(package.rglob("*.py"))


@pytest.mark.parametrize("path", _plugin_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_plugin_imports_nothing_from_the_host(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            imported.append(str(node.args[0].value))
    offending = [name for name in imported if name == "host_stub" or name.startswith("host_stub.")]
    assert not offending, f"{path.name} imports {offending}: reach the host through hook arguments"


def test_the_plugin_describes_what_it_expects_of_a_host_as_protocols():
    from typing import Protocol

    from wazzup_plugin import host

    protocols = {name for name, obj in vars(host).items()
                 if isinstance(obj, type) and issubclass(obj, Protocol) and obj is not Protocol}
    assert {"Helpdesk", "Database", "WriteTx", "Tables", "Config"} <= protocols


def test_the_host_facade_has_everything_the_plugin_protocols_name(helpdesk):
    from wazzup_plugin import host

    with helpdesk.db.write() as tx:
        for protocol, instance in [(host.Helpdesk, helpdesk), (host.Database, helpdesk.db),
                                   (host.Tables, helpdesk.tables), (host.Config, helpdesk.config),
                                   (host.WriteTx, tx)]:
            named = [*protocol.__annotations__, *(n for n in vars(protocol) if not n.startswith("_"))]
            missing = [name for name in named if not hasattr(instance, name)]
            assert not missing, f"{protocol.__name__}: the host lacks {missing}"


def _facade_doc() -> str:
    doc = hookspecs.__doc__
    return doc[doc.index("The ``helpdesk`` argument is a facade"):doc.index("\nHost tables.")]


def _members(protocol) -> set[str]:
    return {*protocol.__annotations__, *(n for n in vars(protocol) if not n.startswith("_"))}


def test_hookspecs_documents_exactly_the_facade_the_plugin_protocols_name():
    """hookspecs.py (the contract) and wazzup_plugin/host.py (the plugin's side) name the same members."""
    from wazzup_plugin import host

    doc = _facade_doc()
    top = {name for line in doc.splitlines() if line.startswith("``")
           for name in re.findall(r"``(\w+)(?:\([^`]*\))?``", line)}
    assert top == _members(host.Helpdesk)
    for prefix, protocol in [("config", host.Config), ("db", host.Database), ("tx", host.WriteTx),
                             ("tables", host.Tables)]:
        assert set(re.findall(rf"``{prefix}\.(\w+)", doc)) == _members(protocol), prefix


def test_hookspecs_lists_the_host_columns_the_plugin_checks_at_startup():
    """One source of truth: the "Host tables" list is ``wazzup_plugin.host.columns_doc()``, which renders the
    table ``startup`` checks (``HOST_COLUMNS``); paste its output into hookspecs.py when it changes."""
    import textwrap

    from wazzup_plugin.host import HOST_COLUMNS, RULES, columns_doc

    doc = hookspecs.__doc__
    assert textwrap.indent(columns_doc(), "    ") + "\n" in doc, columns_doc()
    listed = re.findall(r"^    (\w+):$", doc, re.M)
    assert listed == list(HOST_COLUMNS)  # one list, of exactly these tables
    for rule in RULES:
        assert f"``{rule}``:" in doc  # every marker the list uses is explained
