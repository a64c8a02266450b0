"""The ``helpdesk-stub wazzup24`` command group; each flow adds its own commands."""

from __future__ import annotations

import click


def wazzup24_group() -> click.Group:
    from wazzup_plugin import inbound, outbound, sandbox
    from wazzup_plugin.health import status_command

    @click.group(name="wazzup24", help="Wazzup24 channel: status, connection, webhook, quarantine, worker, sandbox.")
    def group():
        pass

    group.add_command(status_command)
    inbound.add_commands(group)
    outbound.add_commands(group)
    sandbox.add_commands(group)
    return group
