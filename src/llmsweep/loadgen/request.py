"""One streaming request, timed chunk by chunk, turned into a request record."""

from __future__ import annotations

import time

import aiohttp

from llmsweep.loadgen.protocols import StreamError
from llmsweep.loadgen.session import Attempt
from llmsweep.loadgen.stalls import NOT_STALLED, Wait

# A bound on the dead pooled connections one request tries, should the pool refill with
# dead ones as fast as they are discarded. The pool holds at most one connection per
# request that was in flight at once; against llama-server at 64 clients a request met
# up to 8.
DEAD_CONNECTIONS_AT_MOST = 1000
# How a connection that the server closed fails: a write to it, or reading its end. Not
# ClientConnectorError (a subclass of ClientOSError): no connect is made on a pooled one.
CONNECTION_LOST = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ClientConnectionResetError,
)


async def stream_request(
    session: aiohttp.ClientSession,
    base_url: str,
    protocol,
    api: str,
    body: dict,
    keep_text: bool = False,
    wait: Wait | None = None,
) -> dict:
    """Send one streaming request; return its record (timings in seconds, never raises but
    when cancelled). `wait` hears of everything the server sends for it (stalls)."""
    rec: dict = {"start": time.time(), "ok": False, "error_kind": None, "error": None}
    t0 = time.perf_counter()
    chunk_times: list[float] = []
    text: list[str] = []
    final: dict = {}
    done = False
    try:
        resp = await _post(session, base_url + protocol.path(api), body)
        if wait is not None:
            wait.heard()
        async with resp:
            rec["status"] = resp.status
            if resp.status != 200:
                detail = (await resp.text())[:300]
                rec["error_kind"], rec["error"] = f"http_{resp.status}", detail
                return _finish(rec, t0, chunk_times, text, final, protocol, keep_text, wait)
            # Read whatever has arrived and split lines here: much cheaper than asking the
            # stream for one line at a time, and tokens that arrived together share a time.
            # The loop runs once a read and once a line: its names are bound once here.
            read, parse, clock = resp.content.readany, protocol.parse, time.perf_counter
            heard = wait.heard if wait is not None else None
            arrived, kept = chunk_times.append, text.append if keep_text else None
            pending = b""
            while data := await read():
                now = clock()
                if heard is not None:
                    heard()
                lines = (pending + data if pending else data).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    line = line.strip()
                    if not line:
                        continue
                    piece, done = parse(line, final)
                    if piece:
                        arrived(now)
                        if kept is not None:
                            kept(piece)
                    if done:
                        break
                if done:
                    break
            if not done and pending.strip():
                piece, done = parse(pending.strip(), final)
                if piece:
                    arrived(clock())
                    if kept is not None:
                        kept(piece)
    except TimeoutError:
        rec["error_kind"], rec["error"] = "timeout", "request timed out"
    except aiohttp.ClientConnectorError as exc:
        rec["error_kind"], rec["error"] = "connect", str(exc)[:300]
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        rec["error_kind"], rec["error"] = "disconnect", str(exc)[:300] or type(exc).__name__
    except aiohttp.ClientError as exc:
        rec["error_kind"], rec["error"] = "client_error", f"{type(exc).__name__}: {exc}"[:300]
    except StreamError as exc:
        rec["error_kind"], rec["error"] = "server_error", str(exc)[:300]
    except ValueError as exc:
        rec["error_kind"], rec["error"] = "protocol", f"bad chunk: {exc}"[:300]
    else:
        if not done:
            rec["error_kind"], rec["error"] = "incomplete", "stream ended before its end marker"
        elif not chunk_times:
            rec["error_kind"], rec["error"] = "empty", "no generated content"
        else:
            rec["ok"] = True
    return _finish(rec, t0, chunk_times, text, final, protocol, keep_text, wait)


async def _post(session: aiohttp.ClientSession, url: str, body: dict):
    """POST and wait for the response's head. A kept-alive connection that the server
    closed meanwhile (llama-server closes each after a streamed response; others after an
    idle timeout) fails before anything was sent back: the request is sent again, as long
    as each try fails on a pooled connection. aiohttp discards a connection that failed,
    so the tries end once the pool's dead connections are spent, at the latest on a fresh
    connection, whose failure is the request's. A connect error (the server is down) or a
    timeout (the server has the request) is never tried again.

    Sending again is safe: a server that closed a connection reads nothing more from it
    (the write fails, or is answered by a reset: ServerDisconnectedError). Only a server
    that read the request from a pooled connection and then dropped the connection
    without a word could have begun it and be sent it twice: one that was killed or
    crashed, where the next try finds nothing listening and fails (error kind connect).

    The record's start, TTFT and E2E include the failed tries: each fails at once (a
    write to a closed socket, or its end read), adding microseconds, and then the fresh
    connection's TCP handshake, which a connection per request (llama_cpp) always costs."""
    dead = 0
    while True:
        attempt = Attempt()
        try:
            return await session.post(url, json=body, trace_request_ctx=attempt)
        except CONNECTION_LOST:
            if not attempt.pooled or dead == DEAD_CONNECTIONS_AT_MOST:
                raise
            dead += 1


def _finish(rec, t0, chunk_times, text, final, protocol, keep_text, wait) -> dict:
    """Derive the timings of DESIGN.md: TTFT, ITL gaps, E2E, TPOT; and the stall fields."""
    rec["e2e_s"] = time.perf_counter() - t0
    rec.update(wait.end() if wait is not None else NOT_STALLED)
    rec["ttft_s"] = chunk_times[0] - t0 if chunk_times else None
    rec["itl_s"] = [b - a for a, b in zip(chunk_times, chunk_times[1:], strict=False)]
    rec.update(protocol.counts(final, len(chunk_times)))
    n_out = rec["output_tokens"]
    if rec["ttft_s"] is not None and n_out and n_out > 1:
        rec["tpot_s"] = (rec["e2e_s"] - rec["ttft_s"]) / (n_out - 1)
    else:
        rec["tpot_s"] = None
    rec["chunks"] = len(chunk_times)
    if keep_text:
        rec["text"] = "".join(text)
    return rec
