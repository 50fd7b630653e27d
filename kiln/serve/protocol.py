"""The OpenAI wire format: request checking, response and stream-chunk shapes, error bodies, and the
incremental text of a completion (stop strings, characters split across tokens).

No HTTP here: ``kiln.serve.app`` calls these with parsed JSON and sends what they return.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import ClassVar

MAX_STOP_STRINGS = 4  # as OpenAI's API
MAX_STOP_CHARS = 256  # per stop string: the text held back for a possible stop is at most this long
MAX_TEMPERATURE = 2.0
MAX_COMPLETION_LOGPROBS = 5  # /v1/completions' `logprobs` (OpenAI's limit)
MAX_TOP_LOGPROBS = 20  # /v1/chat/completions' `top_logprobs`
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class ApiError(Exception):
    """An error answered with OpenAI's error JSON: ``{"error": {"message", "type", "param", "code"}}``."""

    TYPES: ClassVar[dict[int, str]] = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
             413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


def _int(body: dict, name: str, default, lo: int, hi: int | None = None):
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool):
        raise _bad(name, f"'{name}' must be an integer, got {type(v).__name__}")
    if v < lo or (hi is not None and v > hi):
        raise _bad(name, f"'{name}' must be an integer >= {lo}{f' and <= {hi}' if hi is not None else ''}, got {v}")
    return v


def _number(body: dict, name: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise _bad(name, f"'{name}' must be a finite number, got {v!r:.40}")
    if v > hi or v < lo or (lo_open and v == lo):
        raise _bad(name, f"'{name}' must be in {'(' if lo_open else '['}{lo}, {hi}], got {v}")
    return float(v)


def _bool(body: dict, name: str, default: bool) -> bool:
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _bad(name, f"'{name}' must be true or false, got {v!r:.40}")
    return v


@dataclass
class Params:
    """A checked request: the prompt (text or token ids) and the generation settings."""

    prompt_text: str | None
    prompt_ids: list[int] | None
    max_tokens: int | None  # None: up to the model's context
    temperature: float
    top_p: float
    top_k: int
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool
    ignore_eos: bool
    stop_token_ids: list[int] = field(default_factory=list)
    logprobs: int | None = None  # None: off; n: each token's log-probability and its n likeliest alternatives


UNSUPPORTED = {  # field -> the values kiln serve accepts (others: a clear 400)
    "n": (None, 1), "best_of": (None, 1), "echo": (None, False), "suffix": (None, ""), "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None,), "tools": (None,), "tool_choice": (None, "none"), "response_format": (None,),
}


def _check_unsupported(body: dict) -> None:
    for name, ok in UNSUPPORTED.items():
        v = body.get(name)
        if name == "logit_bias" and v == {}:
            continue
        if name == "response_format" and isinstance(v, dict) and v.get("type") == "text":
            continue
        if not any(v is o or (v == o and type(v) is type(o)) for o in ok):
            raise ApiError(400, f"'{name}' = {v!r:.60} is not supported by kiln serve "
                                f"(supported: {', '.join(repr(o) for o in ok if o is not None) or 'null'})",
                           param=name, code="unsupported_value")


def common(body: dict, vocab_size: int, max_tokens_key: str = "max_tokens",
           default_max: int | None = DEFAULT_MAX_TOKENS) -> dict:
    """The settings shared by completions and chat completions."""
    _check_unsupported(body)
    stop = body.get("stop")
    if stop is None:
        stop = []
    elif isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("stop", "'stop' must be a string or a list of strings")
    if len(stop) > MAX_STOP_STRINGS or any(not s or len(s) > MAX_STOP_CHARS for s in stop):
        raise _bad("stop", f"'stop' takes at most {MAX_STOP_STRINGS} non-empty strings of at most {MAX_STOP_CHARS} "
                           "characters")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise _bad("stream_options", "'stream_options' must be an object")
    include_usage = _bool(opts or {}, "include_usage", False)
    stop_ids = body.get("stop_token_ids")
    stop_ids = [] if stop_ids is None else stop_ids
    if not isinstance(stop_ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) and
                                                 0 <= t < vocab_size for t in stop_ids):
        raise _bad("stop_token_ids", f"'stop_token_ids' must be a list of token ids in [0, {vocab_size})")
    max_tokens = body.get(max_tokens_key)
    if max_tokens is None and max_tokens_key != "max_tokens":
        max_tokens_key = "max_tokens"
    return {"max_tokens": _int(body, max_tokens_key, default_max, 1),
            "temperature": _number(body, "temperature", 1.0, 0.0, MAX_TEMPERATURE),
            "top_p": _number(body, "top_p", 1.0, 0.0, 1.0, lo_open=True),
            "top_k": _int(body, "top_k", 0, 0), "seed": _int(body, "seed", None, 0, 2**63 - 1),
            "stop": stop, "stream": _bool(body, "stream", False), "include_usage": include_usage,
            "ignore_eos": _bool(body, "ignore_eos", False), "stop_token_ids": stop_ids}


def completion_params(body: dict, vocab_size: int) -> Params:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    text = ids = None
    if isinstance(prompt, str):
        if not prompt:
            raise _bad("prompt", "'prompt' is empty")
        text = prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        if not all(0 <= t < vocab_size for t in prompt):
            raise _bad("prompt", f"token ids in 'prompt' must be in [0, {vocab_size})")
        ids = list(prompt)
    elif isinstance(prompt, list) and len(prompt) > 1:
        raise _bad("prompt", "kiln serve takes one prompt per request (send several requests instead)")
    else:
        raise _bad("prompt", "'prompt' must be a non-empty string or a list of token ids")
    return Params(prompt_text=text, prompt_ids=ids, logprobs=_int(body, "logprobs", None, 0, MAX_COMPLETION_LOGPROBS),
                  **common(body, vocab_size))


ROLES = ("system", "user", "assistant", "tool", "developer")


def chat_messages(body: dict) -> list[dict]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise _bad("messages", "'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise _bad(f"messages[{i}]", f"messages[{i}] must be an object with a role in {', '.join(ROLES)}")
        content = m.get("content")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise _bad(f"messages[{i}].content", "only text content parts are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _bad(f"messages[{i}].content", f"messages[{i}].content must be a string")
        out.append({"role": m["role"], "content": content})
    return out


def chat_params(body: dict, vocab_size: int, prompt_text: str) -> Params:
    top = _int(body, "top_logprobs", None, 0, MAX_TOP_LOGPROBS)
    if not _bool(body, "logprobs", False):
        if top is not None:
            raise _bad("top_logprobs", "'top_logprobs' needs 'logprobs': true")
        logprobs = None
    else:
        logprobs = top or 0
    return Params(prompt_text=prompt_text, prompt_ids=None, logprobs=logprobs,
                  **common(body, vocab_size, max_tokens_key="max_completion_tokens", default_max=None))


def logprobs_object(kind: str, entries: list[tuple[int, float, list]], token_text, top: int) -> dict:
    """OpenAI's ``logprobs`` of a choice from ``entries`` [(token id, logprob, [(id, logprob)...])]
    (the scheduler's), ``token_text(id)`` giving a token's text."""
    if kind == "chat":
        def one(t, lp):
            text = token_text(t)
            return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))}
        return {"content": [{**one(t, lp), "top_logprobs": [one(a, alp) for a, alp in alts]}
                            for t, lp, alts in entries]}
    tokens = [token_text(t) for t, _, _ in entries]
    offsets, at = [], 0
    for text in tokens:
        offsets.append(at)
        at += len(text)
    return {"tokens": tokens, "token_logprobs": [lp for _, lp, _ in entries],
            "top_logprobs": [{token_text(a): alp for a, alp in alts} for _, _, alts in entries] if top else None,
            "text_offset": offsets}


# -- responses ---------------------------------------------------------------------------------


def new_id(kind: str) -> str:
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def response(kind: str, rid: str, model: str, text: str, finish: str, used: dict, logprobs: dict | None = None
             ) -> dict:
    if kind == "chat":
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": logprobs,
                  "finish_reason": finish}
        obj = "chat.completion"
    else:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice],
            "usage": used}


def chunk(kind: str, rid: str, model: str, text: str | None, finish: str | None, first: bool = False,
          logprobs: dict | None = None) -> dict:
    """One streamed piece: ``text`` None for the final chunk that carries only ``finish``."""
    if kind == "chat":
        delta: dict = {"role": "assistant"} if first else {}
        if text is not None:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice]}


def usage_chunk(kind: str, rid: str, model: str, used: dict) -> dict:
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [], "usage": used}


class TextStream:
    """A completion's text as its tokens arrive: ``push(ids)`` returns the new text that is safe to
    send. Held back: a character whose bytes are not all there yet (the tokenizer shows it as
    U+FFFD) and a tail that might be the start of a stop string. Once a stop string appears,
    ``stopped`` is set and the text ends just before it."""

    def __init__(self, decode, stops: list[str]):
        self.decode = decode
        self.stops = stops
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False
        self.longest = max((len(s) for s in stops), default=0)

    def push(self, ids: list[int]) -> str:
        if self.stopped:
            return ""
        self.ids.extend(ids)
        text = self.decode(self.ids)
        # a stop string can only begin in the text not yet sent (earlier text was checked and sent)
        start = max(len(self.sent) - self.longest, 0) if text.startswith(self.sent) else 0
        hits = [i for i in (text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            return self._advance(text[:min(hits)], final=True)
        keep = len(text.rstrip("\ufffd"))
        held = 0
        for s in self.stops:  # the longest tail of the text that begins some stop string
            for n in range(min(len(s) - 1, keep), held, -1):
                if text.endswith(s[:n], 0, keep):
                    held = n
                    break
        return self._advance(text[:keep - held])

    def finish(self) -> str:
        """Whatever was held back, once the sequence has ended without a stop string."""
        if self.stopped:
            return ""
        return self._advance(self.decode(self.ids), final=True)

    def _advance(self, text: str, final: bool = False) -> str:
        if not text.startswith(self.sent) and not final:  # an earlier piece changed (rare): wait
            return ""
        delta = text[len(self.sent):]
        self.sent = text
        return delta
