"""Build a plugin manager: the contract, the host's built-ins, and installed plugins."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re

import pluggy

from host_stub import hookspecs
from host_stub.errors import StartupError
from host_stub.logging_setup import secrets_filter

log = logging.getLogger(__name__)

# The host's own behaviour registers through the same hooks as any plugin (dogfooding).
DEFAULT_PLUGINS = ("host_stub.builtin.notes",)


def get_plugin_manager(load_entrypoints: bool = True, extra_plugins=(), enabled=None) -> pluggy.PluginManager:
    """A fresh manager with the contract, the host's built-ins and the enabled installed plugins.

    ``enabled``: names of installed plugins to load; ``None`` reads ``HELPDESK_PLUGINS`` from the
    environment (unset, empty or ``all``: every installed plugin; ``none``: none of them).
    ``extra_plugins`` are registered as well (tests and embedding hosts).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if enabled is None:
        enabled = parse_enabled(os.environ.get("HELPDESK_PLUGINS"))
    if load_entrypoints:
        installed = {ep.name: ep for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT)}
        missing = sorted(set(enabled or ()) - set(installed))
        if missing:
            raise StartupError(
                f"HELPDESK_PLUGINS names {', '.join(missing)}, which is not installed "
                f"(installed: {', '.join(sorted(installed)) or 'none'})")
        for name, ep in sorted(installed.items()):
            if enabled is not None and name not in enabled:
                log.info("plugin %s is installed but not enabled (HELPDESK_PLUGINS)", name)
                continue
            _register(pm, ep.load(), name)
    for plugin in extra_plugins:
        _register(pm, plugin, getattr(plugin, "__name__", None))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise StartupError(f"plugin {pm.get_name(exc.plugin)!r} implements a hook the contract does not define "
                           f"(misspelled?): {exc}") from None
    secrets_filter().add_patterns(*log_masks(pm))
    return pm


def log_masks(pm: pluggy.PluginManager) -> list[re.Pattern]:
    """The plugins' ``register_log_masks`` patterns, compiled; a pattern that cannot mask stops startup.

    Taken as the plugins load, before any app or helpdesk exists: every process that loads them (the
    web workers, the background workers, the CLI) masks from its first log line on."""
    masks = []
    for impl in pm.hook.register_log_masks.get_hookimpls():
        for raw in impl.function() or ():
            try:
                pattern = re.compile(raw) if isinstance(raw, str) else raw
                ok = isinstance(pattern, re.Pattern) and pattern.groups >= 1 and not pattern.match("")
            except re.error:
                ok = False
            if not ok:
                raise StartupError(f"plugin {impl.plugin_name!r} declares the log mask {raw!r}: a log mask must be a "
                                   "regular expression whose group 1 is the text to keep, followed by what to "
                                   "mask, and that does not match an empty string")
            masks.append(pattern)
    return masks


def parse_enabled(raw: str | None) -> frozenset[str] | None:
    """``HELPDESK_PLUGINS``: None means every installed plugin; a set names the ones to load."""
    if raw is None or raw.strip().lower() in ("", "all", "*"):
        return None
    if raw.strip().lower() == "none":
        return frozenset()
    return frozenset(p.strip() for p in raw.split(",") if p.strip())


def _register(pm: pluggy.PluginManager, plugin, name: str | None) -> None:
    manifest = check_manifest(plugin, name)
    if pm.get_plugin(manifest["name"]) is not None:
        raise StartupError(f"plugin {manifest['name']!r} is registered twice")
    try:
        pm.register(plugin, name=manifest["name"])
    except pluggy.PluginValidationError as exc:
        raise StartupError(f"plugin {manifest['name']!r} does not fit the contract: {exc}") from None


def check_manifest(plugin, name: str | None = None) -> dict:
    """Refuse a plugin without a manifest or built for another contract version."""
    label = name or getattr(plugin, "__name__", repr(plugin))
    manifest = getattr(plugin, "HELPDESK_MANIFEST", None)
    if not isinstance(manifest, dict) or not {"name", "version", "contract"} <= manifest.keys():
        raise StartupError(
            f"plugin {label!r} has no HELPDESK_MANIFEST with name, version and contract; "
            "it was not written for this helpdesk")
    if str(manifest["contract"]) != hookspecs.CONTRACT_VERSION:
        raise StartupError(
            f"plugin {manifest['name']!r} {manifest['version']} was built for helpdesk contract "
            f"{manifest['contract']}, this helpdesk implements contract {hookspecs.CONTRACT_VERSION}; "
            "install a matching version of the plugin")
    return manifest


def plugin_manifests(pm: pluggy.PluginManager) -> list[dict]:
    """Manifests of the enabled plugins (the host's built-ins excluded)."""
    found = []
    for name, plugin in pm.list_name_plugin():
        if name in DEFAULT_PLUGINS:
            continue
        manifest = getattr(plugin, "HELPDESK_MANIFEST", None)
        if manifest:
            found.append(dict(manifest))
    return sorted(found, key=lambda m: m["name"])
