"""A streamed HTTP body read against a deadline for the whole body, not for each socket read.

``requests``' read timeout bounds each socket read, not the answer: a server trickling a byte at a
time would keep a read going for as long as it likes (a send past its outbox lease, a media download
past its claim, when another worker takes the row up). So the body is read one socket read at a time
(``read1``), each allowed no more than the time left, and the deadline is checked in between. Used by
the Wazzup client (small answers: the first read usually has all of it) and the media download.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Union

LAST_READ = 0.01  # seconds: a read past the deadline only takes what has come already


class Overdue(Exception):
    """The deadline passed before the whole body came."""


def chunks_within(response, deadline: Union[float, Callable[[], float]], clock: Callable[[], float],
                  read_timeout: float, amt: int | None = None) -> Iterator[bytes]:
    """The body of a streamed ``requests`` response, a socket read at a time (at most ``amt`` bytes
    each when given), decoded; raises :class:`Overdue` once ``deadline`` (on ``clock``) has passed.
    ``deadline`` may be a callable, asked again before each read (a deadline that moves with progress).
    The first read is always made: what came with the headers is there already. Errors are
    urllib3's (``urllib3.exceptions.HTTPError``) and ``OSError``, not requests'."""
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    first = True
    while True:
        left = (deadline() if callable(deadline) else deadline) - clock()
        if left <= 0 and not first:
            raise Overdue()
        first = False
        if sock is not None:  # urllib3 sets the socket's timeout again for the next request
            sock.settimeout(min(max(left, LAST_READ), read_timeout))
        chunk = raw.read1(amt, decode_content=True)
        if chunk:
            yield chunk
        if not chunk or raw.closed:
            return
