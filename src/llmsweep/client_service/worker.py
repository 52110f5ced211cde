"""The client service's gunicorn worker: gunicorn's threaded worker (gthread), but a
request reaches a thread only once it has arrived whole.

gthread hands a connection to a thread as soon as its first bytes arrive, and the thread
then blocks reading the rest: a few half-sent requests hold every thread, and /health
waits. Here the worker's own loop reads each request (its headers and its body, up to
point_request.MAX_BODY_BYTES) without blocking, alongside every other connection, and a
thread gets the request whole. A request not whole within ARRIVAL_TIMEOUT_S is dropped;
requests still arriving hold at most ARRIVING_BUFFER_BYTES (then they wait, unread).

Each connection carries one request (no keep-alive), so every request arrives this way.
A thread that writes an answer to a client that stops reading gives up after
SEND_TIMEOUT_S. Written for gunicorn 27 (requirements.txt pins it; tests/test_client_
service.py runs it).
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import struct
import time
from collections import deque
from functools import partial

from gunicorn import http
from gunicorn.workers import gthread

from llmsweep.loadgen.point_request import MAX_BODY_BYTES

ARRIVAL_TIMEOUT_S = 30
ARRIVING_BUFFER_BYTES = 4 * MAX_BODY_BYTES
SEND_TIMEOUT_S = 30
READ_BYTES = 256 * 1024
HEADERS_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024  # gunicorn's own limits refuse far less (8 kB a line)
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)[ \t]*\r\n", re.IGNORECASE)
CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
EXPECT_CONTINUE = re.compile(rb"\r\nexpect:[ \t]*100-continue[ \t]*\r\n", re.IGNORECASE)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def arrived(data: bytes) -> bool:
    """Whether `data`, the start of an HTTP/1 request, holds the whole request, or as much
    as this worker waits for: its headers, then a body of the length they declare (a body
    beyond MAX_BODY_BYTES is left to the application, which refuses it unread; a chunked
    one to the thread, as gthread would)."""
    end = data.find(HEADERS_END)
    if end < 0:
        return len(data) > MAX_HEADER_BYTES  # too long for gunicorn: let it refuse
    headers = data[: end + 2]
    if CHUNKED.search(headers):
        return True
    length = CONTENT_LENGTH.search(headers)
    if length is None:
        return True
    declared = int(length.group(1)) if len(length.group(1)) < 20 else MAX_BODY_BYTES + 1
    return declared > MAX_BODY_BYTES or len(data) - (end + 4) >= declared


class _Arrival:
    def __init__(self, deadline: float):
        self.deadline = deadline
        self.data = bytearray()
        self.continued = False  # whether "100 Continue" was sent


def _wants_continue(data: bytes) -> bool:
    """Whether the client waits for "100 Continue" before it sends the body."""
    end = data.find(HEADERS_END)
    return end >= 0 and EXPECT_CONTINUE.search(data[: end + 2]) is not None


class ThreadWorker(gthread.ThreadWorker):
    """gthread, with every request read whole before a thread takes it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cfg.set("keepalive", 0)  # one request per connection: each arrives whole
        self.arriving: dict[gthread.TConn, _Arrival] = {}  # by arrival: oldest first
        self.held: deque[gthread.TConn] = deque()  # arriving, not read while over budget
        self.buffered = 0

    def enqueue_req(self, conn):
        """A new connection: read its request here before a thread takes it."""
        if conn.parser is not None:  # read whole already (see _take)
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        self.arriving[conn] = _Arrival(time.monotonic() + ARRIVAL_TIMEOUT_S)
        self._listen(conn)

    def _listen(self, conn) -> None:
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn, _sock) -> None:
        if self.buffered >= ARRIVING_BUFFER_BYTES:
            self.poller.unregister(conn.sock)
            self.held.append(conn)
            return
        try:
            data = conn.sock.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        arrival = self.arriving[conn]
        arrival.data += data
        self.buffered += len(data)
        if arrived(arrival.data):
            self._take(conn)
        elif not arrival.continued and _wants_continue(arrival.data):
            # Its body comes only after this (gunicorn says it again later: a client reads
            # any number of 1xx answers).
            arrival.continued = True
            with contextlib.suppress(OSError):
                conn.sock.send(CONTINUE)

    def _take(self, conn) -> None:
        """The request is whole: a thread takes it, its bytes ahead of the socket's."""
        self.poller.unregister(conn.sock)
        arrival = self.arriving.pop(conn)
        self.buffered -= len(arrival.data)
        conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(arrival.data))
        conn.data_ready = True
        # A blocking read or write never waits longer than this (a chunked body, a client
        # that stops reading the answer).
        timeout = struct.pack("ll", SEND_TIMEOUT_S, 0)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        super().enqueue_req(conn)
        self._resume()

    def _drop(self, conn) -> None:
        """Close a connection whose request will not arrive."""
        arrival = self.arriving.pop(conn)
        self.buffered -= len(arrival.data)
        if conn in self.held:
            self.held.remove(conn)
        else:
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()
        self._resume()

    def _resume(self) -> None:
        """Read the held connections again once the buffers have room."""
        while self.held and self.buffered < ARRIVING_BUFFER_BYTES:
            self._listen(self.held.popleft())

    def murder_pending(self):
        """gthread's, and the requests that did not arrive in time."""
        super().murder_pending()
        now = time.monotonic()
        late = [c for c, a in self.arriving.items() if a.deadline <= now]
        for conn in late:
            self._drop(conn)
