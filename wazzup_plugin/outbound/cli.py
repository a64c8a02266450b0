"""``helpdesk-stub wazzup24 worker | test-connection | channels | set-webhook``."""

from __future__ import annotations

import signal
import threading

import click

from wazzup_plugin.client import WazzupError

EXIT_OK, EXIT_PROBLEM, EXIT_NOT_CONFIGURED = 0, 1, 2


def _ctx():
    from wazzup_plugin.outbound.context import outbound

    return outbound(click.get_current_context().obj.helpdesk())


# What ``--once`` assumes of its scheduler when not told: cron's smallest step is a minute.
ONCE_EVERY_SECONDS = 60.0
ONCE_ROUNDS = 10  # claims per --once run at most (100 rows each): a run never grows without bound


@click.command("worker", help="Send queued Wazzup24 messages and retry failed attempts (runs until stopped).")
@click.option("--once", is_flag=True, help="attempt what is due now, then exit (e.g. from cron)")
@click.option("--every-seconds", type=click.FloatRange(1, 86400), default=None,
              help=f"with --once: how often the scheduler runs it (default {ONCE_EVERY_SECONDS:.0f}, cron's every "
                   "minute); `wazzup24 status` calls the worker alive for 3 times this after a run")
@click.option("--poll", "poll_seconds", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="seconds between the idle worker's rounds (heartbeat, channels, retries coming due); "
                   "new work wakes it sooner: it checks for some every 0.05 s with one indexed read")
def worker_command(once, every_seconds, poll_seconds):
    from wazzup_plugin.outbound import worker

    if every_seconds is not None and not once:
        raise click.UsageError("--every-seconds goes with --once: a running worker records its own interval.")
    ctx = _ctx()
    if once:
        click.echo(f"attempted {_run_from_scheduler(ctx, every_seconds or ONCE_EVERY_SECONDS)} message(s)")
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.run(ctx, stop, poll_seconds=poll_seconds)


def _run_from_scheduler(ctx, every_seconds: float) -> int:
    """One ``--once`` run: the heartbeat (with the scheduler's interval, so that ``status`` does not call
    a cron-driven worker stale), then what is due: sends, media downloads, housekeeping, the agents
    Wazzup does not have as users yet. A chat's later messages become due only as its earlier ones
    settle (``outbox.claim_due_rows``), so claims repeat while the last one settled something, rather
    than leaving them for the next run. Returns how many send attempts were made."""
    from datetime import timedelta

    from wazzup_plugin import heartbeats
    from wazzup_plugin.media import download as media_download
    from wazzup_plugin.outbound import outbox, worker

    owner = worker.worker_id()
    heartbeats.beat(ctx.helpdesk.db, ctx.state.tables["heartbeats"], heartbeats.WORKER, ctx.clock(),
                    every=timedelta(seconds=every_seconds), detail=owner)
    attempted = 0
    for _ in range(ONCE_ROUNDS):
        outcomes = worker.run_once(ctx, owner, batch=100)
        attempted += len(outcomes)
        if all(outcome.kind in outbox.STILL_PENDING for outcome in outcomes):
            break
    # What the running worker does beside the sends: customers' media, then the housekeeping.
    for _ in range(ONCE_ROUNDS):
        if worker.download_due_media(ctx, owner) < media_download.BATCH:
            break
    worker.housekeeping(ctx)
    worker.sync_users(ctx)
    return attempted


@click.command("test-connection", help="Check the Wazzup24 connection: key, channels, webhook. "
                                       "Exit 0 ok, 1 a problem, 2 not configured.")
def test_connection_command():
    from wazzup_plugin.outbound.connection import check_connection

    report = check_connection(_ctx(), use_cache=False)
    status = report["status"]
    click.echo(f"Wazzup24 connection: {status.upper()}")
    click.echo(f"  API URL:        {report['api_url']}")
    if report["reason"]:
        click.echo(f"  Reason:         {report['reason']}")
    key = {True: "valid", False: "REFUSED by Wazzup", None: "unknown"}[report["key_valid"]]
    click.echo(f"  API key:        {key if report['configured'] else 'not set (WAZZUP24_API_KEY)'}")
    if report["latency_ms"] is not None:
        click.echo(f"  Latency:        {report['latency_ms']:.0f} ms")
    for c in report["channels"]:
        click.echo(f"  Channel:        {c['channel_id']} {c['transport']} {c['plain_id'] or '-'} [{c['state']}]")
    if report["selected_channel"]:
        sc = report["selected_channel"]
        click.echo(f"  Sending via:    {sc['channel_id']} (from {sc['source']})")
    hook = report["webhook"]
    click.echo(f"  Our webhook:    {hook['our_url'] or 'not set (WAZZUP24_WEBHOOK_URL)'}"
               f"{'' if hook['protected'] else ' (UNPROTECTED: no secret)'}")
    if hook["registration"] is not None:
        click.echo(f"  At Wazzup:      {hook['registered_url'] or 'none'} ({hook['registration']})")
    for warning in report["warnings"]:
        click.echo(f"  ! {warning}")
    if status == "not_configured":
        raise SystemExit(EXIT_NOT_CONFIGURED)
    if status != "ok":
        raise SystemExit(EXIT_PROBLEM)


@click.command("channels", help="List the Wazzup24 account's channels and which one sends. Exit 0, or 1 when "
                                 "none can (or Wazzup cannot be asked), 2 not configured.")
def channels_command():
    from wazzup_plugin.outbound.channels import ChannelSelectionError, remember_channels, select_channel

    ctx = _ctx()
    if ctx.client is None:
        click.echo("WAZZUP24_API_KEY is not set.", err=True)
        raise SystemExit(EXIT_NOT_CONFIGURED)
    try:
        channels = ctx.client.channels()
    except WazzupError as exc:
        click.echo(f"Could not list channels: {exc.message}", err=True)
        raise SystemExit(EXIT_PROBLEM) from None
    remember_channels(ctx, channels)
    try:
        selected = select_channel(None, ctx.settings.channel_id, lambda: channels).channel_id
    except ChannelSelectionError as exc:
        selected, note = None, str(exc)
    else:
        note = None
    if not channels:
        click.echo("The account has no channels.")
    for c in channels:
        mark = "*" if str(c.get("channelId")) == selected else " "
        click.echo(f"{mark} {c.get('channelId')}  {c.get('transport') or '-':<10} {c.get('plainId') or '-':<16} "
                   f"{c.get('state')}")
    if selected:
        click.echo("* = the channel new chats send through")
    if note:  # no channel new chats can send through: a script listing channels should notice
        click.echo(note, err=True)
        raise SystemExit(EXIT_PROBLEM)


@click.command("set-webhook", help="Register this helpdesk's webhook (WAZZUP24_WEBHOOK_URL plus the secret) at Wazzup.")
@click.option("--url", help="the public URL of /api/webhook (default: WAZZUP24_WEBHOOK_URL)")
@click.option("--yes", is_flag=True, help="answer yes: replace a URL that is not ours (not with --rotate: its new "
                                         "secret is made by that run, so no helpdesk can run with it yet)")
@click.option("--rotate", is_flag=True, help="replace the secret: make a new one, print the .env lines (the new "
                                             "secret, the old one as WAZZUP24_WEBHOOK_SECRET_PREVIOUS), register it")
def set_webhook_command(url, yes, rotate):
    from wazzup_plugin.outbound import webhook_setup as ws

    ctx = _ctx()
    settings = ctx.settings
    if ctx.client is None:
        click.echo("WAZZUP24_API_KEY is not set.", err=True)
        raise SystemExit(EXIT_NOT_CONFIGURED)
    url = url or settings.webhook_url
    if not url:
        click.echo("No webhook URL: set WAZZUP24_WEBHOOK_URL (e.g. https://helpdesk.example.com/api/webhook) "
                   "or pass --url.", err=True)
        raise SystemExit(EXIT_NOT_CONFIGURED)
    if not url.lower().startswith(("https://", "http://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="--url")
    if rotate and yes:
        # Wazzup test-posts to the URL it is given: the new secret must reach .env and a restart
        # first, and this run is what makes it, so no one can have answered that question already.
        raise click.UsageError("--rotate and --yes cannot go together: --rotate makes the new secret, and the "
                               "helpdesk must be restarted with it before Wazzup is told. Run --rotate alone.")
    secret = settings.webhook_secret
    if rotate:
        secret = _rotated_secret(settings.webhook_secret, yes)
    elif not secret:
        secret = ws.new_secret()
        click.echo("No WAZZUP24_WEBHOOK_SECRET was set; made one. Add this line to .env and restart the helpdesk,\n"
                   "or it will not check the secret:\n")
        click.echo(f"WAZZUP24_WEBHOOK_SECRET={secret}\n")
    ours = ws.with_secret(url, secret)
    if len(ours) > ws.MAX_URL:
        click.echo(f"The URL with its secret is {len(ours)} characters; Wazzup accepts at most {ws.MAX_URL}.", err=True)
        raise SystemExit(EXIT_PROBLEM)
    try:
        registered = ctx.client.get_webhooks().get("webhooksUri") or None
    except WazzupError as exc:
        click.echo(f"Could not read the current webhook: {exc.message}", err=True)
        raise SystemExit(EXIT_PROBLEM) from None
    if ws.compare(registered, ours) == "other" and not yes:
        click.echo(f"Wazzup currently delivers to {ws.mask_url(registered)}, which is not this helpdesk. "
                   "The account has only one webhook URL.")
        if not click.confirm("Replace it with this helpdesk's URL?", default=False):
            click.echo("Left unchanged.")
            raise SystemExit(EXIT_PROBLEM)
    try:
        result = ws.register(ctx.client, url, secret)
    except WazzupError as exc:
        click.echo(f"Could not register the webhook: {exc.message}", err=True)
        raise SystemExit(EXIT_PROBLEM) from None
    click.echo(f"Webhook: {result.url_masked}")
    click.echo(result.message)
    if not result.ok:
        if rotate:
            click.echo("The new secret is not registered; the helpdesk still accepts the old one. Once it runs "
                       "with both new lines, run `helpdesk-stub wazzup24 set-webhook` to register the new one.")
        raise SystemExit(EXIT_PROBLEM)
    if rotate:
        click.echo("Wazzup now delivers with the new secret. A delivery already under way may still carry the old one "
                   "(accepted, and logged once a minute). When `helpdesk-stub wazzup24 status` shows no recent use "
                   "of the previous secret, remove WAZZUP24_WEBHOOK_SECRET_PREVIOUS from .env and restart.")


def _rotated_secret(old: str | None, yes: bool) -> str:
    """A new secret, once the operator has put it in .env beside the old one and restarted: Wazzup
    test-posts to the new URL when it is registered, and only a helpdesk that knows the new secret
    answers 200 (else Wazzup refuses the new URL)."""
    from wazzup_plugin.outbound.webhook_setup import new_secret
    from wazzup_plugin.settings import PREVIOUS_SECRET

    if not old:
        click.echo("WAZZUP24_WEBHOOK_SECRET is not set: there is no secret to rotate. Run "
                   "`helpdesk-stub wazzup24 set-webhook` to make one.", err=True)
        raise SystemExit(EXIT_NOT_CONFIGURED)
    secret = new_secret()
    click.echo("Rotating the webhook secret without losing deliveries:\n"
               "1. Put these two lines in .env (replacing the WAZZUP24_WEBHOOK_SECRET line):\n")
    click.echo(f"WAZZUP24_WEBHOOK_SECRET={secret}")
    click.echo(f"{PREVIOUS_SECRET}={old}\n")
    click.echo("2. Restart the helpdesk: it then accepts both secrets.\n"
               "3. Register the new secret at Wazzup (this command does it next).\n"
               f"4. Once no delivery uses the old secret any more, remove {PREVIOUS_SECRET} and restart.\n")
    if not yes and not click.confirm("Does the helpdesk run with both lines (step 2 done)?", default=False):
        click.echo("Not registered yet. After step 2, run `helpdesk-stub wazzup24 set-webhook` (it registers "
                   "WAZZUP24_WEBHOOK_SECRET).")
        raise SystemExit(EXIT_PROBLEM)
    return secret


def add_commands(group) -> None:
    for command in (worker_command, test_connection_command, channels_command, set_webhook_command):
        group.add_command(command)
