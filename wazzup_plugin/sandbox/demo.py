"""``helpdesk-stub demo``: the helpdesk and a local Wazzup24 sandbox, wired together, in one command.

It keeps everything in a data folder (default ``./demo-data``): the SQLite database, a ``.env`` with
the settings it made (API key, webhook secret, URLs), the demo agent's credentials and the logs of
the processes it runs. It drives the host only through the host's own CLI (``db upgrade``,
``users create``, ``tokens create``, ``serve``) and the plugin's (``wazzup24 sandbox``,
``wazzup24 set-webhook``), so it works for any host that installs this plugin with that CLI.

Each child runs in a process group of its own; Ctrl-C (or SIGTERM) stops every group, waiting a
bounded time before killing what is left.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import click
import requests

from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID
from wazzup_plugin.sandbox.media import store_url
from wazzup_plugin.settings import DEFAULT_MEDIA_HOSTS

AGENT = "demo"
STOP_SECONDS = 10
READY_SECONDS = 60
SEED = [  # (phone, name, what they write; "echo:" lines were typed on the company's phone)
    ("79161234567", "Ivan Petrov", ["Hello! Is my order #1042 ready?", "echo:Hi Ivan, it ships today.",
                                    "Great, thank you!"]),
    ("79261234568", "Maria Ivanova", ["Good afternoon, the parcel arrived damaged", "media:photo.png"]),
    ("79031234569", "Olga Smirnova", ["Здравствуйте! Можно поменять адрес доставки? 🙏", "media:invoice.pdf"]),
]
# A WhatsApp Business (WABA) channel beside the plain one: Pavel wrote, so his 24-hour window is open;
# Nina was only written to from the company's phone, so hers is closed and only a template goes out.
WABA_CHANNEL_ID = "5c7e9a41-2b0d-4e7f-9a55-0d3f1b6c8e21"
WABA_PLAIN_ID = "79865784458"
WABA_SEED = [
    ("79171234570", "Pavel Orlov", ["Hi, I wrote via your WhatsApp Business number. Is the blue model in stock?"]),
    ("79171234571", "Nina Belova", ["echo:Hello Nina, your order #1077 is ready for pickup."]),
]
# A Telegram channel (a personal account): Dmitry wrote there; agents can also write first to anyone by
# number or @username ("New chat").
TELEGRAM_CHANNEL_ID = "3f9d2c10-6b1e-4f0a-a7c4-51e2d8b0c7a1"
TELEGRAM_PLAIN_ID = "helpdesk_support"
TELEGRAM_SEED = [
    ("301234567", "Dmitry Sokolov", ["Привет! Пишу в Telegram: можно оплатить заказ #1090 по ссылке?"]),
]
CHATTER = ["Any news?", "Thanks!", "Can I pay by card?", "What are your opening hours?",
           "Спасибо, всё получила 👍", "Is delivery free?", "I'd like to change my order"]


class DemoError(click.ClickException):
    pass


# ---------------------------------------------------------------- small helpers


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(host: str, port: int, option: str) -> int:
    if port == 0:
        return free_port(host)
    with socket.socket() as s:
        # As servers bind: connections a previous run left in TIME_WAIT do not make the port busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise DemoError(f"port {port} on {host} is busy; pass {option} 0 for any free port") from None
    return port


def host_cli(prog: str) -> list[str]:
    """How to run the host's CLI again in a child process (its console script's entry point)."""
    for ep in entry_points(group="console_scripts"):
        if ep.name == prog:
            module, _, func = ep.value.partition(":")
            return [sys.executable, "-c", f"from {module} import {func} as main; main()"]
    return [sys.executable, sys.argv[0]]


def running_executable(prog: str) -> Path | None:
    """The host CLI's executable (its console script) that runs this demo, if there is one."""
    for path in (sys.argv[0], Path(sys.executable).parent / prog, shutil.which(prog)):
        if path and Path(path).name == prog and Path(path).is_file():
            return Path(os.path.abspath(path))
    return None


def typed(prog: str, exe: Path | None, start: Path, home: Path) -> str:
    """How a user in folder ``start`` types the host CLI: its name when the shell finds this one by it,
    else its path, relative when both are under ``home`` (where the demo was started)."""
    found = shutil.which(prog)
    if exe is None or (found and os.path.samefile(found, exe)):
        return prog
    if exe.is_relative_to(home) and start.is_relative_to(home):
        relative = os.path.relpath(exe, start)
        return shlex.quote(relative if os.sep in relative else f".{os.sep}{relative}")
    return shlex.quote(str(exe))


def read_env_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None} if path.is_file() else {}


def write_env_file(path: Path, values: dict[str, str]) -> None:
    lines = ["# Written by `helpdesk-stub demo`: settings of the demo helpdesk and its sandbox.",
             "# Run helpdesk-stub commands from this folder to act on the demo."]
    lines += [f"{k}={v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def wait_until_up(url: str, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the {what} stopped while starting; see {log}:\n{tail(log)}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise DemoError(f"the {what} did not answer on {url} within {READY_SECONDS} s; see {log}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------- the demo


class Demo:
    def __init__(self, data_dir: Path, host: str, port: int, sandbox_port: int, prog: str, out=click.echo):
        self.data = data_dir.resolve()
        self.home = Path.cwd()
        self.prog = prog
        self.host = host
        self.port = port
        self.sandbox_port = sandbox_port
        self.cli = host_cli(prog)
        self.echo = out
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logs = self.data / "logs"
        self.stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.sandbox_port}"

    # ------------------------------------------------------------ settings

    def prepare(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        # The database holds the agents' password hashes and the customers' messages, the logs their
        # traffic: the folder is the user's alone, as .env and demo.json are (an older one is fixed).
        for folder in (self.data, self.logs):
            folder.chmod(0o700)
        self.db_file = self.data / "helpdesk.sqlite3"
        fresh = not self.db_file.exists()
        old = {} if fresh else read_env_file(self.data / ".env")
        secret = old.get("WAZZUP24_WEBHOOK_SECRET") or secrets.token_urlsafe(24)
        self.settings = {
            "HELPDESK_DATABASE_URL": f"sqlite:///{self.db_file}",
            "HELPDESK_SECRET_KEY": old.get("HELPDESK_SECRET_KEY") or secrets.token_urlsafe(32),
            "HELPDESK_SQLITE_SYNCHRONOUS": "NORMAL",
            "WAZZUP24_API_URL": self.sandbox_url,
            "WAZZUP24_API_KEY": old.get("WAZZUP24_API_KEY") or "sandbox-" + secrets.token_hex(16),
            "WAZZUP24_WEBHOOK_SECRET": secret,
            "WAZZUP24_WEBHOOK_URL": f"{self.url}/api/webhook?token={secret}",
            "WAZZUP24_SANDBOX_URL": self.sandbox_url,
            # The plain WhatsApp channel for a chat that names none (two active ones would leave it open); in
            # .env too, so the CLI run from this folder (test-connection, simulate-incoming) agrees with the
            # running helpdesk.
            "WAZZUP24_CHANNEL_ID": DEFAULT_CHANNEL_ID,
            # The customers' media comes from the sandbox's store: the helpdesk downloads and keeps it.
            "WAZZUP24_MEDIA_HOSTS": f"{DEFAULT_MEDIA_HOSTS},{self.host}",
        }
        write_env_file(self.data / ".env", self.settings)
        creds_file = self.data / "demo.json"
        self.creds = {} if fresh or not creds_file.is_file() else json.loads(creds_file.read_text("utf-8"))
        # The children see exactly these settings: none of the caller's HELPDESK_/WAZZUP24_ values
        # (a real API key in the caller's .env must never meet the demo).
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
        self.env.update(self.settings)

    def save_creds(self) -> None:
        path = self.data / "demo.json"
        path.write_text(json.dumps(self.creds, indent=2), encoding="utf-8")
        path.chmod(0o600)

    # ------------------------------------------------------------ processes

    def run(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.cli, *args], input=stdin, capture_output=True, text=True, env=self.env,
                              cwd=self.data, timeout=timeout)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen([*self.cli, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=self.env, cwd=self.data, start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        return proc

    def shutdown(self) -> None:
        """Stop every child's process group: TERM, a bounded wait, then KILL."""
        self.stop.set()
        for _, proc in reversed(self.procs):
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(timeout=5)
            self._signal(proc, signal.SIGKILL)    # stragglers of the group (workers of a killed master)

    @staticmethod
    def _signal(proc: subprocess.Popen, sig) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    # ------------------------------------------------------------ steps

    def start_sandbox(self) -> None:
        proc = self.start("sandbox", "wazzup24", "sandbox", "--host", self.host, "--port", str(self.sandbox_port),
                          "--api-key", self.settings["WAZZUP24_API_KEY"], "--status-delays", "1,3,6",
                          "--fetch-content",  # files agents upload are downloaded from the helpdesk, as Wazzup does
                          "--channels", f"whatsapp:active:{DEFAULT_CHANNEL_ID},"
                                        f"wapi:active:{WABA_CHANNEL_ID}:{WABA_PLAIN_ID},"
                                        f"tgapi:active:{TELEGRAM_CHANNEL_ID}:{TELEGRAM_PLAIN_ID}")
        wait_until_up(f"{self.sandbox_url}/_sandbox/health", proc, "sandbox", self.logs / "sandbox.log")

    def migrate_and_create_agent(self) -> None:
        done = self.run("db", "upgrade")
        if done.returncode != 0:
            raise DemoError(f"migrations failed:\n{done.stderr.strip()}")
        if not self.creds.get("password"):
            self.creds = {"agent": AGENT, "password": secrets.token_urlsafe(9)}
            made = self.run("users", "create", AGENT, "--display-name", "Demo Agent", "--password-stdin",
                            stdin=self.creds["password"] + "\n")
            if made.returncode != 0:
                raise DemoError(f"could not create the demo agent (delete {self.data} to start over):\n"
                                f"{made.stderr.strip()}")
            self.creds.pop("token", None)
        if not self.creds.get("token"):
            made = self.run("tokens", "create", AGENT, "--label", "demo")
            if made.returncode != 0:
                raise DemoError(f"could not create an API token:\n{made.stderr.strip()}")
            self.creds["token"] = made.stdout.strip().splitlines()[-1]
        self.save_creds()

    def start_helpdesk(self) -> None:
        proc = self.start("helpdesk", "serve", "--host", self.host, "--port", str(self.port), "--workers", "2",
                          "--no-migrate")
        wait_until_up(f"{self.url}/api/health", proc, "helpdesk", self.logs / "helpdesk.log")

    def register_webhook(self) -> None:
        done = self.run("wazzup24", "set-webhook", "--yes")
        if done.returncode != 0:
            raise DemoError("could not register the webhook at the sandbox:\n"
                            f"{(done.stdout + done.stderr).strip()}")

    def write(self, **spec) -> dict:
        resp = requests.post(f"{self.sandbox_url}/_sandbox/customer-messages", json=spec, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def seed(self) -> None:
        if self.creds.get("seeded"):
            return
        seeds = ([(DEFAULT_CHANNEL_ID, "whatsapp", seed) for seed in SEED]
                 + [(WABA_CHANNEL_ID, "whatsapp", seed) for seed in WABA_SEED]
                 + [(TELEGRAM_CHANNEL_ID, "telegram", seed) for seed in TELEGRAM_SEED])
        for channel_id, chat_type, (chat_id, name, lines) in seeds:
            for line in lines:
                spec = {"chatId": chat_id, "name": name, "channelId": channel_id, "chatType": chat_type}
                if line.startswith("echo:"):
                    spec.update(text=line[5:], isEcho=True, authorName="Demo Agent")
                elif line.startswith("media:"):
                    spec.update(contentUri=store_url(self.sandbox_url, line[6:]))
                else:
                    spec.update(text=line)
                result = self.write(**spec)
                if result["delivery"]["state"] != "delivered":
                    raise DemoError(f"the helpdesk did not take a seeded message: {result['delivery']}")
        self.reply_through_the_api()
        self.creds["seeded"] = True
        self.save_creds()

    def reply_through_the_api(self) -> None:
        """One answer sent the product's way (outbox → sandbox → ticks), so a newcomer sees it work."""
        auth = {"Authorization": f"Bearer {self.creds['token']}"}
        try:
            chats = requests.get(f"{self.url}/api/chats", headers=auth, timeout=10).json().get("items", [])
            maria = next((c for c in chats if c.get("phone") == SEED[1][0] or c.get("wazzup_chat_id") == SEED[1][0]),
                         None)
            if maria is not None:
                requests.post(f"{self.url}/api/chats/{maria['id']}/wazzup24/send", headers=auth, timeout=10,
                              json={"text": "So sorry, Maria! A replacement is on its way today."})
        except (requests.RequestException, ValueError):
            pass  # the seeded chats are there; the reply is a bonus

    def chatter(self) -> None:
        """Now and then a customer writes (``--chatty``)."""
        rng = random.Random()
        while not self.stop.wait(rng.uniform(15, 40)):
            try:
                if rng.random() < 0.25:
                    self.write(text=rng.choice(CHATTER), channelId=DEFAULT_CHANNEL_ID)
                else:
                    phone, name, _ = rng.choice(SEED)
                    self.write(text=rng.choice(CHATTER), chatId=phone, name=name, channelId=DEFAULT_CHANNEL_ID)
            except requests.RequestException:
                pass

    def banner(self) -> None:
        out = self.echo
        out("")
        out("The Wazzup24 helpdesk demo is running.")
        out(f"  Open:       {self.url}/")
        out(f"  Sign in:    {self.creds['agent']} / {self.creds['password']}")
        out(f"  API token:  {self.creds['token']}")
        out(f"              curl -H 'Authorization: Bearer {self.creds['token']}' {self.url}/api/chats")
        exe = running_executable(self.prog)
        here = typed(self.prog, exe, self.home, self.home)
        data = os.path.relpath(self.data, self.home) if self.data.is_relative_to(self.home) else str(self.data)
        out(f"  Sandbox:    {self.sandbox_url}  (a local Wazzup24); make a customer write:")
        out(f"              {here} wazzup24 sandbox-ctl --url {self.sandbox_url} write 'Hello!'")
        out("  CLI:        commands that read the demo's settings run from its data folder, e.g.")
        out(f"              cd {shlex.quote(data)} && {typed(self.prog, exe, self.data, self.home)} wazzup24 "
            "test-connection")
        out(f"  Data:       {self.data}  (delete it to start over; logs in {self.logs})")
        out("Press Ctrl-C to stop.")

    def supervise(self) -> int:
        """Until Ctrl-C, SIGTERM or a child's death; returns the exit code."""
        while not self.stop.wait(0.5):
            for name, proc in self.procs:
                if proc.poll() is not None:
                    self.echo(f"the {name} stopped (exit {proc.returncode}); see {self.logs / (name + '.log')}:\n"
                              f"{tail(self.logs / (name + '.log'))}", err=True)
                    return 1
        return 0


@click.command("demo", help="Run the helpdesk with a local Wazzup24 sandbox, seeded with chats: "
                            "the whole product on 127.0.0.1, in one command. Ctrl-C stops it.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-data"),
              show_default=True, help="database, settings, credentials and logs")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="the helpdesk's port (0: any free port)")
@click.option("--sandbox-port", type=click.IntRange(0, 65535), default=8100, show_default=True,
              help="the sandbox's port (0: any free port)")
@click.option("--chatty", is_flag=True, help="keep a customer writing now and then")
@click.pass_context
def demo_command(ctx, data_dir, host, port, sandbox_port, chatty):
    port = check_port(host, port, "--port")
    sandbox_port = check_port(host, sandbox_port, "--sandbox-port")
    demo = Demo(data_dir, host, port, sandbox_port, ctx.find_root().info_name or "helpdesk-stub")
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()
        demo.stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        demo.prepare()
        click.echo(f"Starting the sandbox on {demo.sandbox_url} and the helpdesk on {demo.url} ...", err=True)
        steps = (demo.start_sandbox, demo.migrate_and_create_agent, demo.start_helpdesk, demo.register_webhook,
                 demo.seed)
        for step in steps:
            if stopping.is_set():
                break
            step()
        if not stopping.is_set():
            demo.banner()
            if chatty:
                threading.Thread(target=demo.chatter, name="demo-chatter", daemon=True).start()
            code = demo.supervise()
    finally:
        click.echo("Stopping ...", err=True)
        demo.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        click.echo("Stopped.", err=True)
    if code:
        raise click.exceptions.Exit(code)
