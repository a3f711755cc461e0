"""Many SSE clients at once, and each event's delay from publish to arrival.

For the fan-out lesson and ``bench/fanout.py``. A thousand httpx clients would
measure httpx, not the server, so each listener here is a bare asyncio protocol
that speaks HTTP/1.0 (the body then arrives unframed: no chunk sizes to strip)
and reads only what it must: each event's ``data:`` line. A producer publishes
:func:`stamp` texts — the event's number and the ``time.monotonic()`` at which
it was published, one clock for every process of a machine — so a listener
knows which events it got, in which order, and how late.

A listener counts as subscribed when the first body byte arrives: the servers
measured this way send a comment (``: subscribed``) once they are listening.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Delivery", "Listener", "listen", "measure", "percentile", "stamp"]


def stamp(number: int, size: int = 0) -> str:
    """What a producer publishes as event ``number``: "17 84512.003141", padded with ``size`` more bytes."""
    text = f"{number} {time.monotonic():.6f}"
    return text + " " + "x" * size if size else text


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank rule; nan when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


class Listener(asyncio.Protocol):
    """One SSE client: the numbers of the events it got, and each one's delay in seconds."""

    def __init__(self, frozen: bool = False) -> None:
        self.frozen = frozen
        self.numbers: list[int] = []
        self.delays: list[float] = []
        self.status = 0
        self.subscribed = asyncio.Event()
        self.closed = asyncio.Event()
        self.transport: asyncio.Transport | None = None
        self.last_at = 0.0  # when the last event arrived (time.monotonic)
        self._head = b""
        self._body = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.status:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, _, data = self._head.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
        if data:
            self.subscribed.set()
            if self.frozen and self.transport is not None:
                self.transport.pause_reading()  # from now on the kernel's buffers fill up
        self._body += data
        *events, self._body = self._body.replace(b"\r\n", b"\n").split(b"\n\n")
        for event in events:
            self._record(event, now)

    def _record(self, event: bytes, now: float) -> None:
        for line in event.split(b"\n"):
            if line.startswith(b"data:"):
                try:
                    number_text, sent_text = line[5:].split(maxsplit=2)[:2]  # a stamp, maybe padded after a space
                    number, sent = int(number_text), float(sent_text)
                except ValueError:  # not a stamp: not ours to count
                    return
                self.numbers.append(number)
                self.delays.append(now - sent)
                self.last_at = now
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self.subscribed.set()  # never wait for a client that is gone

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def listen(url: str, *, frozen: bool = False, timeout: float = 10.0) -> Listener:
    """Open one SSE connection to ``url`` (e.g. ``http://127.0.0.1:8000/events``); return once subscribed."""
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if frozen:  # a small receive buffer: Linux may otherwise let an unread socket hold megabytes
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (parts.hostname, parts.port))
    transport, listener = await loop.create_connection(lambda: Listener(frozen), sock=sock)
    request = f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n"
    transport.write(request.encode())
    await asyncio.wait_for(listener.subscribed.wait(), timeout)
    return listener


@dataclass
class Delivery:
    """What ``clients`` listeners received of ``published`` events in ``seconds``."""

    clients: int
    published: int
    seconds: float
    delays: list[float] = field(repr=False)
    complete: int  # listeners that got every event exactly once, in order

    @property
    def events_per_second(self) -> float:
        """Deliveries per second: one event reaching one client counts once."""
        return len(self.delays) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        """Delivery delay percentile in milliseconds."""
        return percentile(self.delays, q) * 1000

    def __str__(self) -> str:
        return (
            f"{self.clients} clients: {self.complete}/{self.clients} got all {self.published} events in order, "
            f"{self.events_per_second:,.0f} deliveries/s, delay p50 {self.p(50):.1f} ms, p99 {self.p(99):.1f} ms"
        )


async def open_listeners(urls: list[str], clients: int, *, batch: int = 100) -> list[Listener]:
    """``clients`` listeners spread round-robin over ``urls``, opened ``batch`` at a time."""
    listeners: list[Listener] = []
    for start in range(0, clients, batch):
        chunk = range(start, min(clients, start + batch))
        listeners += await asyncio.gather(*(listen(urls[i % len(urls)]) for i in chunk))
    return listeners


async def measure(
    urls: list[str],
    clients: int,
    publish: Callable[[str], Awaitable[object]],
    *,
    events: int,
    rate: float,
    settle: float = 2.0,
    progress: Callable[[int], None] | None = None,
) -> Delivery:
    """Connect ``clients`` listeners, publish ``events`` stamps at ``rate`` per second, wait for them to arrive."""
    listeners = await open_listeners(urls, clients)
    try:
        started = time.monotonic()
        for number in range(events):
            await publish(stamp(number))
            if progress is not None:
                progress(number + 1)
            await asyncio.sleep(max(0.0, started + (number + 1) / rate - time.monotonic()))
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and any(len(x.numbers) < events for x in listeners):
            await asyncio.sleep(0.02)
        seconds = max((x.last_at for x in listeners), default=started) - started
    finally:
        for listener in listeners:
            listener.close()
    expected = list(range(events))
    delays = [d for x in listeners for d in x.delays]
    return Delivery(clients, events, seconds, delays, sum(x.numbers == expected for x in listeners))
