"""The streaming APIs the load generator speaks: one class per API family.

Each says where to send a request, what body to send, and how to read one line of the
stream: the generated text it carries, and the server's token counts and timings.
"""

from __future__ import annotations

import json

import orjson

from llmsweep.engines import engine_module

# What a chunk of an unexpected shape (a number, a list, text for an object) fails with.
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError)


class StreamError(Exception):
    """The server reported an error inside the stream."""


def messages(history: list[dict] | None, prompt: str) -> list[dict]:
    """A chat request's messages: a conversation's earlier messages, then the prompt."""
    return [*(history or []), {"role": "user", "content": prompt}]


def joined(history: list[dict] | None, prompt: str) -> str:
    """A conversation as one prompt text, for the completions APIs: each answer follows its
    user message as it was generated (a completion continues its prompt text), and a blank
    line comes before each later user message. A turn's text is then the last turn's text
    and answer, then the new message: the prefix a server's cache holds."""
    text = ""
    for message in [*(history or []), {"role": "user", "content": prompt}]:
        if message["role"] == "user" and text:
            text += "\n\n"
        text += message["content"]
    return text


def loads(data: bytes):
    """One chunk's JSON as Python's json reads it, read by orjson (several times faster).
    What orjson refuses goes to json, which takes a little more than strict JSON (NaN,
    lone surrogates) and raises json's own errors. One difference is left: orjson reads an
    integer past 64 bits as a float; no token count or timing comes near."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data.decode())


class OpenAI:
    """OpenAI-compatible `/v1/chat/completions` and `/v1/completions` (SSE, `data:` lines)."""

    name = "openai"

    @staticmethod
    def path(api: str) -> str:
        return "/v1/chat/completions" if api == "chat" else "/v1/completions"

    @staticmethod
    def body(
        api: str,
        model: str,
        prompt: str,
        max_tokens: int,
        ignore_eos: bool,
        history: list[dict] | None = None,
    ) -> dict:
        """The request's body; with `history` (a conversation's earlier messages, each
        {role: user or assistant, content}), the prompt comes after them."""
        body: dict = {
            "model": model,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if api == "chat":
            body["messages"] = messages(history, prompt)
        else:
            body["prompt"] = joined(history, prompt)
        if ignore_eos:
            body["ignore_eos"] = True  # llama.cpp and vLLM honour it; others ignore it
        return body

    @staticmethod
    def parse(line: bytes, final: dict) -> tuple[str, bool]:
        """(generated text of this line, whether the stream is done); fills `final`."""
        if not line.startswith(b"data:"):
            return "", False
        data = line[5:].strip()
        if data == b"[DONE]":
            return "", True
        chunk = loads(data)
        try:
            if "error" in chunk:
                raise StreamError(str(chunk["error"]))
            if chunk.get("usage"):
                final["usage"] = chunk["usage"]
            if chunk.get("timings"):
                final["timings"] = chunk["timings"]
            choices = chunk.get("choices")
            if not choices:
                return "", False
            choice = choices[0]
            if "delta" in choice:
                return (choice["delta"] or {}).get("content") or "", False
            return choice.get("text") or "", False
        except SHAPE_ERRORS as exc:
            raise ValueError(f"unexpected shape ({type(exc).__name__}: {exc})") from exc

    @staticmethod
    def counts(final: dict, chunks: int) -> dict:
        """Token counts from the server, with their source; the chunk count as a last resort."""
        usage, timings = final.get("usage") or {}, final.get("timings") or {}
        out: dict = {"server_timings": final.get("timings")}
        if usage.get("completion_tokens") is not None:
            out["output_tokens"], out["output_tokens_source"] = usage["completion_tokens"], "usage"
        elif timings.get("predicted_n") is not None:
            out["output_tokens"], out["output_tokens_source"] = timings["predicted_n"], "timings"
        else:
            out["output_tokens"], out["output_tokens_source"] = chunks, "chunks"
        if usage.get("prompt_tokens") is not None:
            out["input_tokens"], out["input_tokens_source"] = usage["prompt_tokens"], "usage"
        elif timings.get("prompt_n") is not None:
            # llama.cpp's prompt_n counts the tokens it evaluated, cache_n those it reused.
            n = timings["prompt_n"] + (timings.get("cache_n") or 0)
            out["input_tokens"], out["input_tokens_source"] = n, "timings"
        else:
            out["input_tokens"], out["input_tokens_source"] = None, None
        # Prompt tokens the server took from its cache: vLLM (with
        # --enable-prompt-tokens-details), SGLang (--enable-cache-report) and llama.cpp say
        # so in usage, llama.cpp also in its timings.
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is not None:
            out["cached_tokens"], out["cached_tokens_source"] = cached, "usage"
        elif timings.get("cache_n") is not None:
            out["cached_tokens"], out["cached_tokens_source"] = timings["cache_n"], "timings"
        else:
            out["cached_tokens"], out["cached_tokens_source"] = None, None
        return out


class Ollama:
    """Ollama's native `/api/chat` and `/api/generate` (one JSON object per line)."""

    name = "ollama"
    DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")

    @staticmethod
    def path(api: str) -> str:
        return "/api/chat" if api == "chat" else "/api/generate"

    @staticmethod
    def body(
        api: str,
        model: str,
        prompt: str,
        max_tokens: int,
        ignore_eos: bool,
        history: list[dict] | None = None,
    ) -> dict:
        """As OpenAI.body."""
        # Ollama has no ignore_eos: num_predict caps the output, the model may stop earlier.
        body: dict = {"model": model, "stream": True, "options": {"num_predict": max_tokens}}
        if api == "chat":
            body["messages"] = messages(history, prompt)
        else:
            body["prompt"] = joined(history, prompt)
        return body

    @staticmethod
    def parse(line: bytes, final: dict) -> tuple[str, bool]:
        line = line.strip()
        if not line:
            return "", False
        chunk = loads(line)
        try:
            if "error" in chunk:
                raise StreamError(str(chunk["error"]))
            piece = (chunk.get("message") or {}).get("content") or chunk.get("response") or ""
            if chunk.get("done"):
                final.update(chunk)
                return piece, True
            return piece, False
        except SHAPE_ERRORS as exc:
            raise ValueError(f"unexpected shape ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def counts(cls, final: dict, chunks: int) -> dict:
        timings = {
            k.replace("_duration", "_s"): final[k] / 1e9 for k in cls.DURATIONS if k in final
        }
        out: dict = {"server_timings": timings or None}
        if final.get("eval_count") is not None:
            out["output_tokens"], out["output_tokens_source"] = final["eval_count"], "eval_count"
        else:
            out["output_tokens"], out["output_tokens_source"] = chunks, "chunks"
        if final.get("prompt_eval_count") is not None:
            out["input_tokens"] = final["prompt_eval_count"]
            out["input_tokens_source"] = "prompt_eval_count"
        else:
            out["input_tokens"], out["input_tokens_source"] = None, None
        # Ollama does not say how much of the prompt it took from its cache.
        out["cached_tokens"], out["cached_tokens_source"] = None, None
        return out


PROTOCOLS = {"openai": OpenAI, "ollama": Ollama}


def for_engine(engine: str):
    """The API family the engine's module names (Ollama's native one, or OpenAI's)."""
    return PROTOCOLS[engine_module(engine).PROTOCOL]
