"""One streaming request's record against what the server sent, byte for byte: the text,
the chunks and their times, the token counts and their sources, the error kinds. The
server here writes a scripted body in pieces, each arriving in a read of its own, so that
lines and UTF-8 characters are cut wherever a test says."""

import asyncio
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import LoopbackServer
from llmsweep.loadgen import protocols
from llmsweep.loadgen.protocols import Ollama, OpenAI
from llmsweep.loadgen.request import stream_request
from llmsweep.loadgen.session import new_session
from strategies import json_values

GAP_S = 0.001  # between pieces: long enough for the client to read each on its own


class ScriptedServer(LoopbackServer):
    """Answers each request with the pieces its body names (bytes as latin-1 text),
    written one by one in chunked transfer encoding, `gaps` seconds apart (GAP_S where
    the body gives none)."""

    async def _connection(self, reader, writer) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                body = json.loads(await reader.readexactly(length))
                pieces = [p.encode("latin-1") for p in body["pieces"]]
                gaps = body.get("gaps") or [GAP_S] * len(pieces)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for piece, gap in zip(pieces, gaps, strict=True):
                    await asyncio.sleep(gap)
                    if piece:
                        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def send(protocol, api: str, scripts: list[dict], keep_text: bool = True) -> list[dict]:
    """The records of one request per script ({"pieces": [bytes], "gaps": [s]}), in turn."""

    async def scenario():
        async with ScriptedServer() as server, new_session(30) as http:
            records = []
            for script in scripts:
                body = {**script, "pieces": [p.decode("latin-1") for p in script["pieces"]]}
                records.append(
                    await stream_request(http, server.url, protocol, api, body, keep_text)
                )
            return records

    return asyncio.run(scenario())


def cut(body: bytes, at: list[int]) -> list[bytes]:
    """`body` in pieces, cut at each position of `at`."""
    edges = [0, *sorted(set(at)), len(body)]
    return [body[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def sse(chunk, eol: str = "\n", ascii_only: bool = True) -> bytes:
    return f"data: {json.dumps(chunk, ensure_ascii=ascii_only)}{eol}{eol}".encode()


def openai_chunk(api: str, piece: str | None) -> dict:
    """A chunk carrying `piece` (None: a chat chunk naming only the role)."""
    if api == "chat":
        delta = {"role": "assistant"} if piece is None else {"content": piece}
        return {"id": "c1", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    return {"id": "c1", "choices": [{"index": 0, "text": piece, "finish_reason": None}]}


def assert_timings_follow(rec: dict) -> None:
    """TTFT, ITL gaps and TPOT as DESIGN.md derives them from the chunks' times."""
    n = rec["chunks"]
    assert len(rec["itl_s"]) == max(n - 1, 0)
    assert all(gap >= 0 for gap in rec["itl_s"])
    if n:
        assert 0 < rec["ttft_s"] <= rec["ttft_s"] + sum(rec["itl_s"]) <= rec["e2e_s"]
    else:
        assert rec["ttft_s"] is None
    if n and rec["output_tokens"] > 1:
        expected = (rec["e2e_s"] - rec["ttft_s"]) / (rec["output_tokens"] - 1)
        assert math.isclose(rec["tpot_s"], expected)
    else:
        assert rec["tpot_s"] is None


texts = st.text(max_size=5)  # any Unicode: quotes, backslashes, newlines, emoji


@st.composite
def openai_streams(draw):
    """An OpenAI stream as a server may send it, what it says, and its bytes cut anywhere."""
    api = draw(st.sampled_from(["chat", "completions"]))
    pieces = draw(st.lists(texts, max_size=6))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    ascii_only = draw(st.booleans())
    usage, timings = draw(st.booleans()), draw(st.booleans())
    chunks = [openai_chunk(api, None)] if api == "chat" and draw(st.booleans()) else []
    chunks += [openai_chunk(api, p) for p in pieces]
    # The counts in a chunk of their own, or in the last one with text (llama.cpp).
    final = {"usage": {"prompt_tokens": 11, "completion_tokens": len(pieces) + 7}} if usage else {}
    final |= {"timings": {"predicted_n": 5, "prompt_n": 3}} if timings else {}
    if final and (draw(st.booleans()) or not chunks):
        chunks.append({"id": "c1", "choices": [], **final})
    else:
        chunks[-1:] = [{**chunks[-1], **final}] if chunks else []
    body = b"".join(sse(c, eol, ascii_only) for c in chunks) + b"data: [DONE]"
    body += eol.encode() * draw(st.integers(0, 2))
    at = draw(st.lists(st.integers(0, len(body)), max_size=8))
    said = {"text": "".join(pieces), "chunks": sum(1 for p in pieces if p)}
    return api, cut(body, at), said | final


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(openai_streams())
def test_an_openai_stream_cut_anywhere_gives_what_the_server_sent(stream):
    api, pieces, said = stream
    (rec,) = send(OpenAI, api, [{"pieces": pieces}])
    assert rec["text"] == said["text"]
    assert rec["chunks"] == said["chunks"]
    if said["chunks"]:
        assert (rec["ok"], rec["error_kind"]) == (True, None)
    else:
        assert (rec["ok"], rec["error_kind"]) == (False, "empty")
    if "usage" in said:
        completion_tokens = said["usage"]["completion_tokens"]
        assert (rec["output_tokens"], rec["output_tokens_source"]) == (completion_tokens, "usage")
        assert (rec["input_tokens"], rec["input_tokens_source"]) == (11, "usage")
    elif "timings" in said:
        assert (rec["output_tokens"], rec["output_tokens_source"]) == (5, "timings")
        assert (rec["input_tokens"], rec["input_tokens_source"]) == (3, "timings")
    else:
        assert (rec["output_tokens"], rec["output_tokens_source"]) == (said["chunks"], "chunks")
        assert (rec["input_tokens"], rec["input_tokens_source"]) == (None, None)
    assert rec["server_timings"] == said.get("timings")
    assert_timings_follow(rec)


@st.composite
def ollama_streams(draw):
    """An Ollama stream (one JSON object a line), what it says, and its bytes cut anywhere."""
    api = draw(st.sampled_from(["chat", "generate"]))
    pieces = draw(st.lists(texts, max_size=6))
    last = draw(texts)  # the final line's own text: Ollama's is empty, a stand-in's may not be

    def line(piece: str, **more) -> bytes:
        text = {"message": {"role": "assistant", "content": piece}}
        text = text if api == "chat" else {"response": piece}
        return json.dumps({"model": "m", **text, **more}, ensure_ascii=False).encode() + b"\n"

    final = {"done": True, "eval_count": 40, "prompt_eval_count": 9}
    final |= {"total_duration": 2_000_000_000, "eval_duration": 500_000_000}
    body = b"".join(line(p, done=False) for p in pieces) + line(last, **final)
    body = body[: -draw(st.integers(0, 1)) or None]  # the last newline, or none
    at = draw(st.lists(st.integers(0, len(body)), max_size=8))
    everything = [*pieces, last]
    said = {"text": "".join(everything), "chunks": sum(1 for p in everything if p)}
    return "chat" if api == "chat" else "completions", cut(body, at), said


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(ollama_streams())
def test_an_ollama_stream_cut_anywhere_gives_what_the_server_sent(stream):
    api, pieces, said = stream
    (rec,) = send(Ollama, api, [{"pieces": pieces}])
    assert rec["text"] == said["text"]
    assert rec["chunks"] == said["chunks"]
    assert rec["error_kind"] == (None if said["chunks"] else "empty")
    assert (rec["output_tokens"], rec["output_tokens_source"]) == (40, "eval_count")
    assert (rec["input_tokens"], rec["input_tokens_source"]) == (9, "prompt_eval_count")
    assert rec["server_timings"] == {"total_s": 2.0, "eval_s": 0.5}
    assert_timings_follow(rec)


def test_a_chunk_is_timed_when_its_line_is_complete_and_lines_read_together_share_a_time():
    a, b, c = (sse(openai_chunk("completions", t)) for t in ("a", "b", "c"))
    pieces = [a + b[:9], b[9:] + c, b"data: [DONE]\n\n"]
    (rec,) = send(OpenAI, "completions", [{"pieces": pieces, "gaps": [0.0, 0.1, 0.0]}])
    assert rec["ok"] and rec["text"] == "abc" and rec["chunks"] == 3
    assert rec["ttft_s"] < 0.1 <= rec["itl_s"][0]  # "b" was complete only 0.1 s later
    assert rec["itl_s"][1] == 0.0  # "c" came in the same read


def test_without_keep_text_the_record_has_no_text_and_the_same_figures():
    pieces = [sse(openai_chunk("completions", t)) for t in ("a", "", "b")] + [b"data: [DONE]"]
    kept, bare = (send(OpenAI, "completions", [{"pieces": pieces}], k)[0] for k in (True, False))
    assert kept["text"] == "ab" and "text" not in bare
    for key in ("ok", "error_kind", "chunks", "output_tokens", "output_tokens_source"):
        assert kept[key] == bare[key]
    assert bare["chunks"] == 2


def test_errors_inside_the_stream_have_their_kinds_and_the_chunks_before_them():
    content = sse(openai_chunk("completions", "é"))
    cases = {
        "server_error": sse({"error": {"message": "out of memory", "code": 500}}),
        "protocol": b"data: {not json}\n\n",
        "incomplete": b"",  # the stream ends without its end marker
    }
    scripts = [{"pieces": [content, content[:3], content[3:] + bad]} for bad in cases.values()]
    records = send(OpenAI, "completions", scripts)
    for kind, rec in zip(cases, records, strict=True):
        assert (rec["ok"], rec["error_kind"], rec["chunks"]) == (False, kind, 2), rec
        assert rec["text"] == "éé"
    assert "out of memory" in records[0]["error"]
    ollama = [
        {"pieces": [b'{"response":"a","done":false}\n{"error":"model not found"}\n']},
        {"pieces": [b'{"response":"a","done":false}\n', b'{"respo']},
    ]
    server_error, incomplete = send(Ollama, "completions", ollama)
    assert (server_error["error_kind"], server_error["chunks"]) == ("server_error", 1)
    assert "model not found" in server_error["error"]
    assert (incomplete["error_kind"], incomplete["text"]) == ("protocol", "a")


def test_a_chunk_that_is_json_but_no_object_or_not_utf8_is_a_protocol_error():
    lines = [b"data: 42", b'data: "error"', b"data: [1, 2]", b'data: {"choices": "x"}']
    lines += [b'data: {"choices": [{"text": "\xff"}]}', b'data: {"choices": [{"delta": 3}]}']
    scripts = [{"pieces": [line + b"\n\ndata: [DONE]\n\n"]} for line in lines]
    for line, rec in zip(lines, send(OpenAI, "chat", scripts), strict=True):
        assert (rec["ok"], rec["error_kind"]) == (False, "protocol"), line
    ollama = [{"pieces": [line + b"\n"]} for line in (b"7", b"[]", b'{"message": "hi"}')]
    for rec in send(Ollama, "chat", ollama):
        assert (rec["ok"], rec["error_kind"]) == (False, "protocol")


def test_what_json_takes_beyond_strict_json_is_read_as_before():
    """NaN: Python's json reads it, so the record has it."""
    pieces = [
        sse(openai_chunk("completions", "a")),
        b'data: {"choices": [], "usage": {"completion_tokens": 18446744073709551615},'
        b' "timings": {"predicted_per_second": NaN, "predicted_n": 1}}\n\n',
        b"data: [DONE]\n\n",
    ]
    (rec,) = send(OpenAI, "completions", [{"pieces": pieces}])
    assert rec["ok"]
    assert (rec["output_tokens"], rec["output_tokens_source"]) == (2**64 - 1, "usage")
    assert type(rec["output_tokens"]) is int
    assert math.isnan(rec["server_timings"]["predicted_per_second"])


def equal(a, b) -> bool:
    """Equal JSON values, NaN equal to NaN, and of the same types (1 is not 1.0 nor True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(map(equal, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    return a == b


def json_texts():
    """JSON as servers write it, and text near it: any value, any float, big integers,
    NaN, escapes, duplicate keys, raw Unicode, and bytes that are not UTF-8."""
    values = json_values() | st.floats() | st.integers(-(2**70), 2**70)
    written = st.builds(
        lambda v, ascii_only: json.dumps(v, ensure_ascii=ascii_only).encode(), values, st.booleans()
    )
    near = st.text(alphabet='{}[]",:0123456789.eE+-tuirlfasnNIy \\/\t\n\rébù\U0001f600\ud800')
    odd = st.sampled_from(
        [b'{"a": 1, "a": 2}', b'"\\ud800"', b'"\\udc00\\ud800"', b"1e400", b"-0", b"-0.0",
         b"1E-400", b"Infinity", b"-Infinity", b"NaN", b'"\x01"', b'"\xff"', b"\xef\xbb\xbf{}",
         b"[" * 2000 + b"]" * 2000, b"18446744073709551615", b"-9223372036854775809"]
    )  # fmt: skip
    return written | near.map(lambda t: t.encode("utf-8", "surrogatepass")) | odd | st.binary()


@settings(max_examples=400, deadline=None)
@given(json_texts())
def test_chunk_json_is_read_as_pythons_json_reads_it(data):
    try:
        expected = json.loads(data.decode())
    except (ValueError, RecursionError) as exc:
        expected = type(exc)
    try:
        got = protocols.loads(data)
    except (ValueError, RecursionError) as exc:
        got = type(exc)
    if isinstance(expected, type):
        assert got is expected
    else:
        # json reads the chunks orjson refuses: those keep their big integers
        either = equal(got, expected) or equal(got, past_64_bits_as_float(expected))
        assert either, (data, got, expected)


def past_64_bits_as_float(value):
    """`value` with every integer beyond 64 bits a float: orjson's one difference (counts
    and timings never come near)."""
    if isinstance(value, list):
        return [past_64_bits_as_float(v) for v in value]
    if isinstance(value, dict):
        return {k: past_64_bits_as_float(v) for k, v in value.items()}
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    return value
