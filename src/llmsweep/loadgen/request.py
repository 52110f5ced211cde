"""One streaming request, timed chunk by chunk, turned into a request record."""

from __future__ import annotations

import time

import aiohttp

from llmsweep.loadgen.protocols import StreamError
from llmsweep.loadgen.stalls import NOT_STALLED, Wait

RETRIES_ON_DEAD_CONNECTION = 3


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
            pending = b""
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                if wait is not None:
                    wait.heard()
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    piece, done = protocol.parse(line.strip(), final)
                    if piece:
                        chunk_times.append(now)
                        text.append(piece)
                    if done:
                        break
                if done:
                    break
            if not done and pending.strip():
                piece, done = protocol.parse(pending.strip(), final)
                if piece:
                    chunk_times.append(time.perf_counter())
                    text.append(piece)
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
    """POST; a pooled connection the server closed in the meantime fails before anything
    was sent back, so the request is retried (a few times: several may be dead)."""
    for _ in range(RETRIES_ON_DEAD_CONNECTION):
        try:
            return await session.post(url, json=body)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            continue
    return await session.post(url, json=body)


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
