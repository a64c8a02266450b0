"""A local emulator of the Wazzup24 API v3, for development, demos and tests.

``create_sandbox_app`` (app.py) builds it; ``helpdesk-stub wazzup24 sandbox`` serves it;
``helpdesk-stub wazzup24 sandbox-ctl`` drives a running one; ``helpdesk-stub demo`` runs it
beside the helpdesk.
"""


def add_commands(group) -> None:
    """CLI commands of the sandbox (sandbox, sandbox-ctl) in the ``wazzup24`` group."""
    from wazzup_plugin.sandbox.cli import sandbox_command, sandbox_ctl

    group.add_command(sandbox_command)
    group.add_command(sandbox_ctl)


def add_top_level_commands(cli) -> None:
    """Commands at the top of the host's CLI (``helpdesk-stub demo``)."""
    from wazzup_plugin.sandbox.demo import demo_command

    cli.add_command(demo_command)
