"""Serving the sandbox over HTTP: one process, a thread per connection (state is in memory).

Built on the standard library's wsgiref so it can do what a production server would not: hand the
app its socket (to drop a connection after accepting a call), and stop listening during a ``refuse``
downtime window so that clients see a real "connection refused".
"""

from __future__ import annotations

import logging
import socketserver
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from wazzup_plugin.sandbox.app import SandboxApp

log = logging.getLogger(__name__)


class _Handler(WSGIRequestHandler):
    def get_environ(self):
        environ = super().get_environ()
        environ["sandbox.socket"] = self.connection
        return environ

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        log.debug("sandbox %s - %s", self.address_string(), format % args)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class SandboxServer:
    def __init__(self, app: SandboxApp, host: str = "127.0.0.1", port: int = 8100):
        self.app = app
        self.host = host
        self._httpd = self._bind(port)
        self.port = self._httpd.server_address[1]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _bind(self, port: int) -> _ThreadingServer:
        httpd = _ThreadingServer((self.host, port), _Handler)
        httpd.set_app(self.app)
        return httpd

    def start(self) -> "SandboxServer":
        self._thread = threading.Thread(target=self.serve, name="sandbox-server", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.app.sandbox.sender.stop(timeout)

    def serve(self) -> None:
        """Serve until ``stop()``; close the listener while a ``refuse`` downtime lasts."""
        sandbox = self.app.sandbox
        while not self._stop.is_set():
            worker = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                      name="sandbox-accept", daemon=True)
            worker.start()
            while not self._stop.is_set() and sandbox.faults.down(sandbox.now()) != "refuse":
                self._stop.wait(0.05)
            self._httpd.shutdown()
            self._httpd.server_close()
            worker.join(5)
            if self._stop.is_set():
                return
            log.info("sandbox: refusing connections until the downtime window ends")
            while not self._stop.is_set() and sandbox.faults.down(sandbox.now()) == "refuse":
                self._stop.wait(0.05)
            self._httpd = self._rebind()
            log.info("sandbox: listening again on %s", self.url)

    def _rebind(self) -> _ThreadingServer:
        for _ in range(100):  # the port may linger for a moment; bounded
            try:
                return self._bind(self.port)
            except OSError:
                time.sleep(0.05)
        return self._bind(self.port)
