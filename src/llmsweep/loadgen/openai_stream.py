"""One streaming request against an OpenAI-compatible server, timed chunk by chunk."""

from __future__ import annotations

import json
import time

import aiohttp


def request_body(api: str, model: str, prompt: str, max_tokens: int, ignore_eos: bool) -> dict:
    body: dict = {
        "model": model,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if ignore_eos:
        body["ignore_eos"] = True  # llama.cpp and vLLM honour it; others ignore it
    return body


def endpoint_path(api: str) -> str:
    return "/v1/chat/completions" if api == "chat" else "/v1/completions"


def _content(chunk: dict) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "delta" in choice:
        return (choice["delta"] or {}).get("content") or ""
    return choice.get("text") or ""


def _counts(usage: dict | None, timings: dict | None, chunks: int) -> dict:
    """Token counts from the server, with where each came from; chunk count as a last resort."""
    out: dict = {}
    if usage and usage.get("completion_tokens") is not None:
        out["output_tokens"], out["output_tokens_source"] = usage["completion_tokens"], "usage"
    elif timings and timings.get("predicted_n") is not None:
        out["output_tokens"], out["output_tokens_source"] = timings["predicted_n"], "timings"
    else:
        out["output_tokens"], out["output_tokens_source"] = chunks, "chunks"
    if usage and usage.get("prompt_tokens") is not None:
        out["input_tokens"], out["input_tokens_source"] = usage["prompt_tokens"], "usage"
    elif timings and timings.get("prompt_n") is not None:
        out["input_tokens"], out["input_tokens_source"] = timings["prompt_n"], "timings"
    else:
        out["input_tokens"], out["input_tokens_source"] = None, None
    return out


async def stream_request(
    session: aiohttp.ClientSession,
    base_url: str,
    api: str,
    body: dict,
    keep_text: bool = False,
) -> dict:
    """Send one streaming request; return its record (timings in seconds, never raises)."""
    rec: dict = {"start": time.time(), "ok": False, "error_kind": None, "error": None}
    t0 = time.perf_counter()
    chunk_times: list[float] = []
    text: list[str] = []
    usage = timings = None
    done = False
    try:
        async with session.post(base_url + endpoint_path(api), json=body) as resp:
            rec["status"] = resp.status
            if resp.status != 200:
                detail = (await resp.text())[:300]
                rec["error_kind"], rec["error"] = f"http_{resp.status}", detail
                return _finish(rec, t0, chunk_times, text, usage, timings, keep_text)
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    rec["error_kind"], rec["error"] = "server_error", str(chunk["error"])[:300]
                    return _finish(rec, t0, chunk_times, text, usage, timings, keep_text)
                piece = _content(chunk)
                if piece:
                    chunk_times.append(time.perf_counter())
                    text.append(piece)
                usage = chunk.get("usage") or usage
                timings = chunk.get("timings") or timings
    except TimeoutError:
        rec["error_kind"], rec["error"] = "timeout", "request timed out"
    except aiohttp.ClientConnectorError as exc:
        rec["error_kind"], rec["error"] = "connect", str(exc)[:300]
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        rec["error_kind"], rec["error"] = "disconnect", str(exc)[:300] or type(exc).__name__
    except aiohttp.ClientError as exc:
        rec["error_kind"], rec["error"] = "client_error", f"{type(exc).__name__}: {exc}"[:300]
    except ValueError as exc:
        rec["error_kind"], rec["error"] = "protocol", f"bad chunk: {exc}"[:300]
    else:
        if not done:
            rec["error_kind"], rec["error"] = "incomplete", "stream ended without [DONE]"
        elif not chunk_times:
            rec["error_kind"], rec["error"] = "empty", "no generated content"
        else:
            rec["ok"] = True
    return _finish(rec, t0, chunk_times, text, usage, timings, keep_text)


def _finish(rec, t0, chunk_times, text, usage, timings, keep_text) -> dict:
    end = time.perf_counter()
    rec["e2e_s"] = end - t0
    rec["ttft_s"] = chunk_times[0] - t0 if chunk_times else None
    rec["itl_s"] = [b - a for a, b in zip(chunk_times, chunk_times[1:], strict=False)]
    rec.update(_counts(usage, timings, len(chunk_times)))
    n_out = rec["output_tokens"]
    if rec["ttft_s"] is not None and n_out and n_out > 1:
        rec["tpot_s"] = (rec["e2e_s"] - rec["ttft_s"]) / (n_out - 1)
    else:
        rec["tpot_s"] = None
    rec["chunks"] = len(chunk_times)
    rec["server_timings"] = timings
    if keep_text:
        rec["text"] = "".join(text)
    return rec
