"""Work a request does once its answer has gone out, and the ``Prefer: respond-async`` preference.

The answer's body becomes a WSGI iterable whose ``close()`` runs the work: PEP 3333 requires every
server to call it after the last byte is written (gunicorn's workers do so before taking the next
request), so the client reads a complete answer (it carries its Content-Length) while the same
worker carries on. The work must be safe to lose: a process killed in between never runs it, so
whatever it does has to be picked up by someone else too (for a send, the outbox worker takes the
message when the request's lease runs out).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def prefers_async(req) -> bool:
    """Whether the request asked to be answered before its work is done (RFC 7240 ``respond-async``).

    Preference names are case-insensitive; several may share one header or come in several."""
    for header in req.get_header("Prefer", default="").split(","):
        name = header.split(";", 1)[0].split("=", 1)[0].strip().lower()
        if name == "respond-async":
            return True
    return False


class _BodyThenWork:
    def __init__(self, body: bytes, work):
        self._body, self._work = body, work

    def __iter__(self):
        yield self._body

    def close(self) -> None:
        work, self._work = self._work, None  # once, whoever calls close() again
        if work is None:
            return
        try:
            work()
        except Exception:  # the answer is out: nobody is left to tell but the log
            log.exception("Wazzup24 work after the answer failed")


def answer_then(resp, work) -> None:
    """Send ``resp``'s body as it stands now, then run ``work()`` in this worker."""
    body = resp.render_body() or b""
    resp.media = None
    resp.content_length = len(body)
    resp.stream = _BodyThenWork(body, work)
