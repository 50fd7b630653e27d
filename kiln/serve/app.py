"""The HTTP side of ``kiln serve``: an OpenAI-compatible API on Starlette, served by uvicorn.

Why these: Starlette is the small, maintained ASGI toolkit that FastAPI itself is built on (routing,
streaming responses, client-disconnect detection) without a schema layer kiln does not need;
uvicorn is the reference ASGI server. Both are pure Python over h11 and anyio, so the server installs
from the registry with no compiler.

Threads: the event loop answers HTTP; one engine thread runs ``kiln.runtime.scheduler.Scheduler``
(all model compute). A request submits its sequence to the scheduler and waits on an asyncio queue
that the engine fills through ``loop.call_soon_threadsafe``. A client that disconnects cancels its
sequence (its cache blocks are freed at the next iteration).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
import threading
import time

import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from kiln.errors import KilnError
from kiln.runtime.sampling import Sampling, check_sampling
from kiln.runtime.scheduler import (
    DEFAULT_CHUNK_TOKENS,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE,
    Closed,
    QueueFull,
    Scheduler,
)
from kiln.serve import protocol
from kiln.serve.chat import ChatTemplate
from kiln.serve.metrics import CONTENT_TYPE_LATEST, Metrics
from kiln.serve.protocol import ApiError

MAX_BODY_BYTES = 1 << 20  # a request body beyond this is refused (413): a full-context prompt is ~10 KB
DISCONNECT_POLL_S = 0.25  # how often a non-streaming request checks that its client is still there
RETRY_AFTER_S = 1


class Server:
    """One served artifact: its runtime, scheduler, engine thread, metrics and Starlette app
    (``.app``). Start the engine with the app's lifespan (uvicorn does) or ``start()``/``stop()``."""

    def __init__(self, runtime, model_name: str, max_batch: int = DEFAULT_MAX_BATCH,
                 max_queue: int = DEFAULT_MAX_QUEUE, chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                 api_key: str | None = None, chat_template: str | None = None):
        self.rt = runtime
        self.model_name = model_name
        self.metrics = Metrics(lambda: self.scheduler)
        self.scheduler = Scheduler(runtime, max_batch, max_queue, chunk_tokens, metrics=self.metrics)
        if api_key is not None and not api_key:
            raise KilnError("the API key is empty")
        self.api_key = api_key
        self.chat = None
        self.chat_note = None  # why chat is off, when the model's own template is unusable
        if chat_template is not None:  # given by the operator: an unusable one is an error
            self.chat = ChatTemplate(chat_template, runtime.artifact)
        elif (own := ChatTemplate.from_artifact(runtime.artifact)) is not None:
            try:
                self.chat = ChatTemplate(own, runtime.artifact)
            except KilnError as e:  # the model's own: serve completions anyway, and say why chat is off
                self.chat_note = f"the model's chat template is unusable ({e})"
        self.thread: threading.Thread | None = None
        self.engine_error: str | None = None
        self.started = time.time()
        self.app = Starlette(
            routes=[Route("/health", self.health), Route("/v1/models", self.models),
                    Route("/v1/completions", self.completions, methods=["POST"]),
                    Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                    Route("/metrics", self.metrics_page)],
            exception_handlers={ApiError: self._api_error, HTTPException: _http_error, Exception: _internal_error,
                                ClientDisconnect: _client_gone},
            lifespan=self._lifespan)

    # -- the engine --------------------------------------------------------------------
    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._engine, name="kiln-engine", daemon=True)
            self.thread.start()

    def _engine(self) -> None:
        try:
            self.scheduler.run()
        except BaseException as e:  # reported by /health, and to every request it held
            self.engine_error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            self.scheduler.abort(f"the engine stopped ({self.engine_error})")
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Take no new requests, cancel what is left, and wait for the engine to finish its iteration."""
        self.scheduler.close()
        self.scheduler.cancel_all()
        if self.thread is not None:
            self.thread.join(timeout)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        self.start()
        yield
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    # -- endpoints -------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        if self.engine_error or (self.thread is not None and not self.thread.is_alive()):
            return JSONResponse({"status": "error", "error": self.engine_error or "the engine stopped"}, 503)
        return JSONResponse({"status": "ok", **self.scheduler.stats()})

    async def models(self, request: Request) -> Response:
        self._auth(request)
        return JSONResponse({"object": "list", "data": [
            {"id": self.model_name, "object": "model", "created": int(self.started), "owned_by": "kiln",
             "max_model_len": self.rt.max_positions}]})

    async def metrics_page(self, request: Request) -> Response:
        self._auth(request)
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def completions(self, request: Request) -> Response:
        body = await self._body(request)
        params = protocol.completion_params(body, self.rt.vocab_size)
        return await self._generate(request, "completion", params)

    async def chat_completions(self, request: Request) -> Response:
        body = await self._body(request)
        messages = protocol.chat_messages(body)
        if self.chat is None:
            why = self.chat_note or "its tokenizer_config.json carries none"
            raise ApiError(400, f"the model {self.model_name!r} has no chat template ({why}); use "
                                "/v1/completions, or start kiln serve with --chat-template FILE",
                           param="messages", code="no_chat_template")
        try:  # in a worker thread: a slow template does not hold up the event loop
            text = await run_in_threadpool(self.chat.render, messages)
        except KilnError as e:
            raise ApiError(400, str(e), param="messages") from None
        return await self._generate(request, "chat", protocol.chat_params(body, self.rt.vocab_size, text),
                                    special_tokens=False)

    # -- helpers -------------------------------------------------------------------------
    def _auth(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        ok = hmac.compare_digest(token.strip().encode(), self.api_key.encode()) and scheme.lower() == "bearer"
        if not ok:
            raise ApiError(401, "missing or incorrect API key (send 'Authorization: Bearer KEY')",
                           code="invalid_api_key")

    async def _body(self, request: Request) -> dict:
        self._auth(request)
        size = request.headers.get("content-length", "")
        if size.isdigit() and int(size) > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is {int(size)} bytes; the limit is {MAX_BODY_BYTES}")
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > MAX_BODY_BYTES:
                raise ApiError(413, f"the request body exceeds {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise ApiError(400, f"the request body is not valid JSON ({str(e).splitlines()[0][:200]})") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.model_name:
            raise ApiError(404, f"the model {str(model)[:100]!r} does not exist; this server serves "
                                f"{self.model_name!r}", param="model", code="model_not_found")
        return body

    def _submit(self, params: protocol.Params, on_event, special_tokens: bool = True):
        rt = self.rt
        try:
            ids = params.prompt_ids if params.prompt_ids is not None else rt.encode(params.prompt_text,
                                                                                   special_tokens)
            if params.max_tokens is None:  # (chat) as much as the context leaves
                params.max_tokens = max(rt.max_positions - len(ids), 1)
            temperature = check_sampling(params.temperature, params.top_p, params.top_k, params.max_tokens)
            gen = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
            stops = set(params.stop_token_ids) | (set() if params.ignore_eos else set(rt.eos_ids))
            seq = self.scheduler.submit(ids, params.max_tokens, Sampling(temperature, params.top_k, params.top_p, gen),
                                        stops, on_event, logprobs=params.logprobs)
        except QueueFull as e:
            raise ApiError(429, f"{e}; retry later", code="queue_full",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except Closed as e:
            raise ApiError(503, str(e), code="shutting_down") from None
        except KilnError as e:
            raise ApiError(400, str(e), code="context_length_exceeded" if "exceeds" in str(e) or
                           "needs" in str(e) else None) from None
        return ids, seq

    async def _api_error(self, request: Request, e: Exception) -> Response:
        if e.status != 500:  # refused before any work (a 500 is a failure, counted by outcome)
            self.metrics.reject(e.status)
        return _error_response(e)

    async def _generate(self, request: Request, kind: str, params: protocol.Params,
                        special_tokens: bool = True) -> Response:
        if self.engine_error:
            raise ApiError(503, f"the engine stopped ({self.engine_error})")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def on_event(ev):  # on the engine thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(events.put_nowait, ev)

        ids, seq = self._submit(params, on_event, special_tokens)
        rid = protocol.new_id(kind)
        text = protocol.TextStream(self.rt.decode, params.stop)
        if params.stream:
            return _EventStream(self._stream(kind, rid, params, len(ids), seq, events, text),
                                lambda: self.scheduler.cancel(seq), media_type="text/event-stream",
                                headers={"Cache-Control": "no-cache"})
        parts: list[str] = []
        entries: list = []  # (token, logprob, alternatives) when logprobs were asked for
        made, finish = 0, None
        checked = time.monotonic()
        try:
            while finish is None:
                try:
                    ev = await asyncio.wait_for(events.get(), DISCONNECT_POLL_S)
                except asyncio.TimeoutError:
                    ev = None
                if time.monotonic() - checked >= DISCONNECT_POLL_S:  # also while tokens keep coming
                    checked = time.monotonic()
                    if await request.is_disconnected():
                        return Response(status_code=499)  # nobody reads it; the finally cancels the work
                if ev is None:
                    continue
                new, got, delta, finish = self._read(ev, seq, text)
                made += len(new)
                entries += got
                parts.append(delta)
        finally:
            if finish is None:
                self.scheduler.cancel(seq)
        lp = self._logprobs(kind, entries, params) if params.logprobs is not None else None
        return JSONResponse(protocol.response(kind, rid, self.model_name, "".join(parts), finish,
                                              protocol.usage(len(ids), made), lp))

    def _read(self, ev, seq, text: protocol.TextStream) -> tuple[list[int], list, str, str | None]:
        """One engine event of a request: (its new tokens, their logprob entries, the text now safe
        to send, the finish reason or None). A stop string in the text ends the sequence; an error
        event raises ApiError (500)."""
        if ev[0] == "tokens":
            delta = text.push(ev[1])
            if text.stopped:
                self.scheduler.cancel(seq, "stop")
            return ev[1], _entries(ev), delta, "stop" if text.stopped else None
        if ev[0] == "done":
            return [], [], text.finish(), ev[1]
        raise ApiError(500, f"generation failed: {ev[1]}", code="generation_failed")

    def _logprobs(self, kind: str, entries: list, params: protocol.Params) -> dict:
        return protocol.logprobs_object(kind, entries, lambda t: self.rt.decode([t]), params.logprobs)

    async def _stream(self, kind, rid, params, prompt_tokens, seq, events, text):
        model, finish, made = self.model_name, None, 0

        def sse(obj) -> str:
            return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

        try:
            if kind == "chat":
                yield sse(protocol.chunk(kind, rid, model, "", None, first=True))
            while finish is None:
                try:
                    new, entries, delta, finish = self._read(await events.get(), seq, text)
                except ApiError as err:
                    yield sse(err.body())
                    finish = "error"
                    return
                made += len(new)
                lp = self._logprobs(kind, entries, params) if new and params.logprobs is not None else None
                if delta or lp is not None:
                    yield sse(protocol.chunk(kind, rid, model, delta, None, logprobs=lp))
            yield sse(protocol.chunk(kind, rid, model, None, finish))
            if params.include_usage:
                yield sse(protocol.usage_chunk(kind, rid, model, protocol.usage(prompt_tokens, made)))
            yield "data: [DONE]\n\n"
        finally:
            if finish is None:  # the client went away (the stream was cancelled) or sending failed
                self.scheduler.cancel(seq)


def _entries(ev) -> list:
    """[(token, logprob, alternatives)] of a tokens event that carries logprobs, else []."""
    return [(t, lp, alts) for t, (lp, alts) in zip(ev[1], ev[2])] if ev[2] is not None else []


class _EventStream(StreamingResponse):
    """A streamed response that calls ``on_close`` however it ends, also when the client goes away
    before the first event (the body's generator then never starts, so its own cleanup never runs).
    Cancelling a finished sequence does nothing."""

    def __init__(self, content, on_close, **kw):
        super().__init__(content, **kw)
        self.on_close = on_close

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def _error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status, headers=e.headers)


async def _client_gone(request: Request, e: Exception) -> Response:
    return Response(status_code=499)  # the client left while sending its body: nobody reads an answer


async def _http_error(request: Request, e: Exception) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
    return _error_response(ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", code=code))


async def _internal_error(request: Request, e: Exception) -> Response:
    return _error_response(ApiError(500, f"internal error ({type(e).__name__}); see the server's log"))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line KilnError (port in use, unknown host, no permission)."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise KilnError(f"the port must be in [0, 65535], got {port!r}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise KilnError(f"cannot resolve host {host!r}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise KilnError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_server(server: Server, log_level: str = "info", shutdown_timeout: float = 30.0):
    import uvicorn

    config = uvicorn.Config(server.app, log_level=log_level, timeout_graceful_shutdown=shutdown_timeout,
                            access_log=log_level in ("debug", "info"), lifespan="on")
    return uvicorn.Server(config)


class ServerThread:
    """A server on a loopback port in a background thread (tests, benchmarks): ``with
    ServerThread(server) as url: ...``."""

    def __init__(self, server: Server, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                 shutdown_timeout: float = 5.0):
        self.server = server
        self.sock = bind(host, port)
        self.uv = uvicorn_server(server, log_level, shutdown_timeout)
        self.thread = threading.Thread(target=self.uv.run, kwargs={"sockets": [self.sock]}, daemon=True)
        h, p = self.sock.getsockname()[:2]
        self.url = f"http://{h}:{p}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.uv.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise KilnError("the server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc) -> None:
        self.uv.should_exit = True
        self.thread.join(30)
        self.sock.close()
