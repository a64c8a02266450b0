"""What the benchmark commands share: command-line options and the product's server settings."""

from __future__ import annotations

import argparse
import secrets

from bench.harness import DEFAULT_CONNECTIONS, DEFAULT_DURATION, DEFAULT_THREADS

PRODUCT_APP = "host_stub.wsgi:create_wsgi_app()"
WEBHOOK_SECRET = "bench-webhook-secret-" + "0123456789abcdef"
API_KEY = "bench-api-key-0123456789abcdef"


def parser(description: str, db: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    if db:
        p.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both",
                       help="database(s) to run on (PostgreSQL: a throwaway database on the shared server)")
    p.add_argument("--duration", type=float, default=DEFAULT_DURATION, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS, help="wrk connections")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="wrk threads")
    return p


def product_env(database_url: str, api_url: str = "http://127.0.0.1:9", **extra: str) -> dict[str, str]:
    """The product as an integrator would run it: its defaults, a webhook secret, the plugin on."""
    env = {
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_SECRET_KEY": secrets.token_hex(16),
        "HELPDESK_PLUGINS": "wazzup24",
        "WAZZUP24_API_KEY": API_KEY,
        "WAZZUP24_API_URL": api_url,
        "WAZZUP24_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    env.update(extra)
    return env


def build_app(url: str, **env_extra):
    """The product's WSGI app built in this process exactly as gunicorn builds it (for in-process timing)."""
    from host_stub.app import create_app
    from host_stub.config import Config

    from bench.databases import product_plugin_manager

    config = Config.from_env(product_env(url, **env_extra), dotenv_path=None)
    return create_app(config, product_plugin_manager())


def webhook_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_SECRET}"}


def print_section(section) -> None:
    print(section.markdown(), flush=True)


def run_section(doc: str, section, argv=None) -> int:
    """A benchmark module's command: options from :func:`parser`, the section printed as Markdown."""
    args = parser(doc.splitlines()[0]).parse_args(argv)
    print_section(section(args))
    return 0
