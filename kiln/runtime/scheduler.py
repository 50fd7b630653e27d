"""Continuous batching: the iteration-level scheduler behind ``kiln serve``.

Requests arrive at any time (``Scheduler.submit``, from any thread) and leave as soon as they finish;
the engine (``Scheduler.step``, one thread) runs one *iteration* at a time over whatever is running:

1. cancelled sequences (a client went away) are dropped and their cache blocks freed;
2. waiting sequences are admitted, oldest first, while fewer than ``max_batch`` run and the cache has
   room for their prompt (a preempted sequence comes back before any new one);
3. one batch is built under a token budget (``chunk_tokens``): the next token of every decoding
   sequence, then chunks of the prompts still being prefilled (Sarathi-style: a long prompt is
   spread over several iterations, so the running sequences keep getting a token per iteration);
4. the batch runs as one call: the ``decode`` program when it is one token per sequence, else the
   ``prefill`` program (packed tokens, logits only where a sequence's last fed token is);
5. every sequence that got logits samples its next token with its own settings and generator;
   finished ones (a stop token, or ``max_new`` tokens) release their blocks at once.

Memory: a plain sequence takes KV-cache blocks as it grows (paged layout: ``block_size`` positions
each; contiguous: one whole row). When a batch needs a block and none is free, the newest running
sequence is *preempted*: its blocks are freed and it waits again, first in line; when readmitted it
recomputes its cache from its tokens (prompt and everything generated so far) and carries on,
which under greedy decoding gives the same tokens as if it had never stopped.

Speculative artifacts decode speculatively per sequence: such a sequence reserves its worst case up
front (the draft tree needs slots beyond its tokens), is prefilled in the shared batches like any
other, then advances by one draft -> verify round (``SpecDecoder.step``) per iteration. It is never
preempted.

Events reach the submitter through its ``on_event`` callback, called on the engine thread:
``("tokens", [ids], logprobs)`` (logprobs: None, or one ``(logprob, [(id, logprob)...])`` per
token for a sequence that asked for them), then one of ``("done", "stop" | "length")`` or ``("error", message)``. A
cancelled sequence gets no further events.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from kiln.errors import KilnError
from kiln.runtime.sampling import Sampling
from kiln.runtime.state import Request

DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_QUEUE = 64
DEFAULT_CHUNK_TOKENS = 256  # tokens per iteration: decodes first, the rest to prompt chunks
MAX_LOGPROBS = 20  # most alternatives per token a sequence may ask for (OpenAI's top_logprobs limit)


def check_limits(max_batch: int, max_queue: int, chunk_tokens: int) -> None:
    """Refuse scheduler settings that cannot work (KilnError naming the setting)."""
    for name, v, lo in (("max-batch", max_batch, 1), ("max-queue", max_queue, 0), ("chunk-tokens", chunk_tokens, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise KilnError(f"{name} must be an integer >= {lo}, got {v!r}")
    if chunk_tokens < max_batch:
        raise KilnError(f"chunk-tokens ({chunk_tokens}) must be at least max-batch ({max_batch}): every "
                        "running sequence decodes one token per iteration")


class QueueFull(KilnError):
    """The waiting queue is at ``max_queue``: come back later (the server answers 429)."""


class Closed(KilnError):
    """The scheduler is shutting down and takes no new work (the server answers 503)."""


class NullMetrics:
    """What the scheduler reports, and to whom: ``kiln.serve`` passes a Prometheus-backed one."""

    def first_token(self, seconds: float) -> None: ...

    def next_tokens(self, seconds_each: float, n: int) -> None: ...

    def finished(self, reason: str, prompt_tokens: int, new_tokens: int) -> None: ...

    def preempted(self) -> None: ...

    def iteration(self, tokens: int, seconds: float) -> None: ...


Event = tuple  # ("tokens", [ids], logprobs or None) | ("done", reason) | ("error", message)


def _logprobs(logits: torch.Tensor, token: int, top: int) -> tuple[float, list[tuple[int, float]]]:
    """(log-probability of ``token``, [(id, log-probability)] of the ``top`` most likely) under the
    model's distribution, before temperature and top-k/top-p."""
    lp = torch.log_softmax(logits.float(), -1)
    alts = lp.topk(top) if top else None
    return float(lp[token]), ([] if alts is None else list(zip(alts.indices.tolist(), alts.values.tolist())))


@dataclass(eq=False)
class Sequence:
    """One request's sequence in the scheduler. ``request`` holds its tokens (prompt + committed) and
    sampling settings; ``cached`` counts the leading tokens whose keys and values are in the cache
    (``blocks``); ``state`` is waiting, running or finished."""

    id: int
    request: Request
    on_event: Callable[[Event], None]
    speculative: bool
    arrival: float = field(default_factory=time.perf_counter)
    blocks: list[int] = field(default_factory=list)
    cached: int = 0
    state: str = "waiting"
    logprobs: int | None = None
    cancelled: bool = False
    cancel_reason: str = "cancelled"
    preemptions: int = 0
    first_token_at: float | None = None
    last_token_at: float | None = None

    @property
    def tokens(self) -> list[int]:
        return self.request.tokens[0]

    @property
    def pending(self) -> int:
        """Tokens not yet in the cache; the last of them gives the logits of the next token."""
        return len(self.tokens) - self.cached

    @property
    def prefilling(self) -> bool:
        """Whether it still needs more than its next token fed: a prompt, or a preempted sequence's
        tokens (a speculative sequence's cache is the verify program's business once it decodes)."""
        if self.speculative:
            return self.request.made[0] == 0
        return self.pending > 1 or self.request.made[0] == 0


class Scheduler:
    """Continuous batching over one ``Runtime`` (see the module docstring). Thread-safe entry points:
    ``submit``, ``cancel``, ``close``; ``step`` and ``run`` belong to one engine thread."""

    def __init__(self, runtime, max_batch: int = DEFAULT_MAX_BATCH, max_queue: int = DEFAULT_MAX_QUEUE,
                 chunk_tokens: int = DEFAULT_CHUNK_TOKENS, metrics=None):
        if runtime.kv is None:
            raise KilnError("continuous batching needs an artifact with a KV cache (compiled with the kv-cache "
                            "pass, as every named pipeline does)")
        check_limits(max_batch, max_queue, chunk_tokens)
        self.rt = runtime
        self.kv = runtime.kv
        self.max_batch, self.max_queue, self.chunk_tokens = max_batch, max_queue, chunk_tokens
        self.metrics = metrics or NullMetrics()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._incoming: collections.deque[Sequence] = collections.deque()  # submitted, not yet seen by the engine
        self._resume: collections.deque[Sequence] = collections.deque()  # preempted: first in line
        self._waiting: collections.deque[Sequence] = collections.deque()
        self.running: list[Sequence] = []
        self._ids = 0
        self._closed = False
        self.iterations = 0
        self.preemptions = 0

    # -- from any thread ---------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return len(self._incoming) + len(self._waiting) + len(self._resume)

    @property
    def blocks_free(self) -> int:
        return len(self.kv.free)

    @property
    def blocks_used(self) -> int:
        return self.kv.n_blocks - len(self.kv.free)

    def check(self, prompt: list[int], max_new: int) -> None:
        """Refuse a request that could never run (KilnError): an empty prompt, no room in the model's
        context or in the whole KV cache."""
        if not prompt:
            raise KilnError("the prompt encodes to no tokens")
        if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
            raise KilnError(f"max_tokens must be a positive integer, got {max_new!r}")
        ctx = self.rt.max_positions
        if len(prompt) + max_new > ctx:
            raise KilnError(f"the prompt ({len(prompt)} tokens) plus max_tokens ({max_new}) exceeds the model's "
                            f"context of {ctx} tokens")
        need = self.kv.blocks_for(self._reservation(Request([[0] * len(prompt)], max_new, set(), Sampling(0.0, 0, 1.0))))
        if need > self.kv.n_blocks:
            raise KilnError(f"the prompt ({len(prompt)} tokens) plus max_tokens ({max_new}) needs {need} KV-cache "
                            f"blocks; the server's cache has {self.kv.n_blocks} ({self.kv.describe()})")

    def _reservation(self, request: Request) -> int:
        """The positions a one-sequence request can reach, as its decoding strategy counts them."""
        return (self.rt.spec if self.rt.spec is not None else self.rt.plain).reserve(request)[0]

    def submit(self, prompt: list[int], max_new: int, sampling: Sampling, stops: set[int],
               on_event: Callable[[Event], None], logprobs: int | None = None) -> Sequence:
        """Queue one sequence; raises KilnError for a request that can never run, QueueFull when the
        queue is full and Closed after ``close``. ``logprobs`` (None: off) asks for each generated
        token's log-probability under the model and the ``logprobs`` most likely alternatives."""
        self.check(prompt, max_new)
        if logprobs is not None:
            if self.rt.spec is not None:
                raise KilnError("log-probabilities are not available with speculative decoding (the verify step "
                                "accepts several tokens at once); serve the artifact with --no-speculative")
            if not isinstance(logprobs, int) or isinstance(logprobs, bool) or not 0 <= logprobs <= MAX_LOGPROBS:
                raise KilnError(f"logprobs must be an integer in [0, {MAX_LOGPROBS}], got {logprobs!r}")
        with self._lock:
            if self._closed:
                raise Closed("the server is shutting down")
            # waiting beyond the free batch slots is what the queue limit bounds
            free_slots = max(self.max_batch - len(self.running) - len(self._resume), 0)
            if len(self._incoming) + len(self._waiting) >= self.max_queue + free_slots:
                raise QueueFull(f"the queue is full ({self.max_queue} waiting requests)")
            self._ids += 1
            seq = Sequence(self._ids, Request([list(prompt)], max_new, set(stops), sampling), on_event,
                           speculative=self.rt.spec is not None, logprobs=logprobs)
            self._incoming.append(seq)
            self._wake.notify()
        return seq

    def cancel(self, seq: Sequence, reason: str = "cancelled") -> None:
        """Stop a sequence (its client went away, or has what it wanted: ``reason`` "stop" for a stop
        string); the engine frees its blocks at its next iteration and sends it no more events."""
        with self._lock:
            if not seq.cancelled:
                seq.cancelled, seq.cancel_reason = True, reason
            self._wake.notify()

    def cancel_all(self) -> None:
        """Cancel every sequence the scheduler holds (shutdown)."""
        with self._lock:
            for seq in [*self.running, *self._waiting, *self._resume, *self._incoming]:
                if not seq.cancelled:
                    seq.cancelled, seq.cancel_reason = True, "cancelled"
            self._wake.notify()

    def abort(self, message: str) -> None:
        """The engine cannot go on: every sequence it holds gets an error event and nothing more
        runs (a later ``submit`` raises Closed)."""
        with self._lock:
            self._closed = True
            seqs = [*self.running, *self._waiting, *self._resume, *self._incoming]
            self._incoming.clear()
            self._waiting.clear()
            self._resume.clear()
        for seq in seqs:
            try:
                self._finish(seq, "error", ("error", message))  # releases its blocks and drafter state
            except Exception:  # noqa: BLE001 - the engine is already broken: tell every client regardless
                seq.on_event(("error", message))
        self.running = []

    def close(self) -> None:
        """Take no new work; ``run`` returns once everything admitted has finished or been cancelled."""
        with self._lock:
            self._closed = True
            self._wake.notify()

    # -- the engine thread -------------------------------------------------------------
    def idle(self) -> bool:
        return not (self.running or self._waiting or self._resume or self._incoming)

    def run(self) -> None:
        """The engine loop: iterate while there is work, sleep while there is none, return after
        ``close`` once idle."""
        while True:
            with self._lock:
                while self.idle() and not self._closed:
                    self._wake.wait()
                if self.idle() and self._closed:
                    return
            self.step()

    def step(self) -> None:
        """One iteration (see the module docstring)."""
        with self._lock:
            self._waiting.extend(self._incoming)
            self._incoming.clear()
        self._drop_cancelled()
        self._admit()
        batch = self._batch()
        if batch:
            self._run_batch(batch)
        for seq in [s for s in self.running if s.speculative and not s.prefilling]:
            self._spec_round(seq)
        self.iterations += 1

    def _drop_cancelled(self) -> None:
        for q in (self._waiting, self._resume):
            for seq in [s for s in q if s.cancelled]:
                q.remove(seq)
                self._finish(seq, seq.cancel_reason)
        for seq in [s for s in self.running if s.cancelled]:
            self._finish(seq, seq.cancel_reason)

    def _admit(self) -> None:
        promised = 0  # blocks the plain sequences admitted in this pass will take for their prompts
        spare = self.kv.layout == "paged"  # a contiguous row never grows: no spare block to keep
        while len(self.running) < self.max_batch:
            q = self._resume if self._resume else self._waiting
            if not q:
                return
            seq = q[0]
            # a speculative sequence takes its whole reservation now; a plain one its prompt's blocks, and
            # (paged) a spare block per running plain sequence is kept so that they can grow
            positions = self._reservation(seq.request) if seq.speculative else len(seq.tokens)
            need = self.kv.blocks_for(positions)
            growth = sum(not s.speculative for s in self.running) if spare else 0
            if need + promised + growth > len(self.kv.free):
                return
            q.popleft()
            if not seq.speculative:
                promised += need
            else:
                req = seq.request
                req.reserved = [positions]
                seq.blocks = self.kv.reserve(req.reserved)[0]
                try:
                    self.rt.spec.begin(req)
                except KilnError as e:
                    self._fail([seq], str(e))
                    continue
                req.cache = self.kv.args()
                req.table = self.kv.table([seq.blocks])
            seq.state = "running"
            self.running.append(seq)

    def _batch(self) -> list[tuple[Sequence, int]]:
        """(sequence, tokens to feed) for this iteration, with the cache blocks to hold them."""
        budget = self.chunk_tokens
        plan: list[tuple[Sequence, int]] = []
        decoding = [s for s in self.running if not s.prefilling and not s.speculative]
        prefilling = [s for s in self.running if s.prefilling]
        for seq in decoding:
            plan.append((seq, 1))
            budget -= 1
        for seq in prefilling:
            if budget <= 0:
                break
            n = min(seq.pending, budget)
            plan.append((seq, n))
            budget -= n
        out = []
        for seq, n in sorted(plan, key=lambda p: (p[0].arrival, p[0].id)):
            if seq.state != "running":  # preempted for an older sequence's block
                continue
            if self._grow(seq, seq.cached + n):
                out.append((seq, n))
        return out

    def _grow(self, seq: Sequence, positions: int) -> bool:
        """Blocks for ``positions``, preempting the newest plain sequences while the pool is empty;
        False when ``seq`` itself was the newest and is preempted."""
        need = self.kv.blocks_for(positions) - len(seq.blocks)
        while need > len(self.kv.free):  # the newest plain sequence that holds blocks (or seq itself) goes
            victims = [s for s in self.running if not s.speculative and (s.blocks or s is seq)]
            victim = max(victims, key=lambda s: (s.arrival, s.id))
            self._preempt(victim)
            if victim is seq:
                return False
        if need > 0:
            seq.blocks += self.kv.reserve([need * self.kv.block_size])[0]
        return True

    def _preempt(self, seq: Sequence) -> None:
        self.kv.release([seq.blocks])
        seq.blocks = []
        seq.cached = 0
        seq.state = "waiting"
        seq.preemptions += 1
        self.preemptions += 1
        self.running.remove(seq)
        self._resume.appendleft(seq)
        self.metrics.preempted()

    def _run_batch(self, batch: list[tuple[Sequence, int]]) -> None:
        ids, pos, rows, at, takers = [], [], [], [], []
        for r, (seq, n) in enumerate(batch):
            start = seq.cached
            ids += seq.tokens[start:start + n]
            pos += range(start, start + n)
            rows += [r] * n
            if start + n == len(seq.tokens):  # its last token is fed: the next token's logits
                at.append(len(ids) - 1)
                takers.append(seq)
        t0 = time.perf_counter()
        table = self.kv.table([seq.blocks for seq, _ in batch])
        args = (torch.tensor([ids], dtype=torch.long), torch.tensor(pos, dtype=torch.long),
                torch.tensor(rows, dtype=torch.long), table, *self.kv.args())
        try:
            if len(at) == len(ids):  # one token per sequence, each giving logits: a decode step
                logits = self.rt.decode_prog(*args)[0][0]
            else:
                logits = self.rt.prefill(*args, torch.tensor(at, dtype=torch.long))[0][0]
        except Exception as e:  # noqa: BLE001 - a failing batch fails its sequences, not the server
            self._fail([seq for seq, _ in batch], f"{type(e).__name__}: {e}")
            return
        for seq, n in batch:
            seq.cached += n
        greedy = logits.argmax(-1).tolist() if any(s.request.sampling.greedy for s in takers) else None
        for r, seq in enumerate(takers):  # each sampled sequence draws from its own generator
            sampling = seq.request.sampling
            try:
                tok = greedy[r] if sampling.greedy else int(sampling.pick(logits[r:r + 1])[0])
                lp = _logprobs(logits[r], tok, seq.logprobs) if seq.logprobs is not None else None
            except Exception as e:  # noqa: BLE001 - (NaN logits, say) fails this sequence, not the engine
                self._fail([seq], f"{type(e).__name__}: {e}")
                continue
            seq.request.commit(0, [tok])
            self._hand_out(seq, lp)
        self.metrics.iteration(len(ids), time.perf_counter() - t0)

    def _spec_round(self, seq: Sequence) -> None:
        try:
            self.rt.spec.step(seq.request, [0])
        except Exception as e:  # noqa: BLE001
            self._fail([seq], f"{type(e).__name__}: {e}")
            return
        self._hand_out(seq)

    def _hand_out(self, seq: Sequence, logprobs: tuple | None = None) -> None:
        req = seq.request
        new = list(req.queue[0])
        req.queue[0].clear()
        if new and not seq.cancelled:
            now = time.perf_counter()
            if seq.first_token_at is None:
                seq.first_token_at = now
                self.metrics.first_token(now - seq.arrival)
                if len(new) > 1:
                    self.metrics.next_tokens(0.0, len(new) - 1)
            else:
                self.metrics.next_tokens((now - seq.last_token_at) / len(new), len(new))
            seq.last_token_at = now
            seq.on_event(("tokens", new, [logprobs] if logprobs is not None else None))
        if req.done[0]:
            reason = "stop" if req.tokens[0][-1] in req.stops else "length"
            self._finish(seq, reason, ("done", reason))

    def _finish(self, seq: Sequence, reason: str, event: Event | None = None) -> None:
        """Release a sequence's blocks and drafter state; ``event`` (if any) is its last."""
        if seq in self.running:
            self.running.remove(seq)
        if seq.blocks:
            self.kv.release([seq.blocks])
            seq.blocks = []
        if seq.speculative and seq.request.draft is not None:
            self.rt.spec.end(seq.request)
            seq.request.draft = None
        seq.state = "finished"
        req = seq.request
        self.metrics.finished(reason, len(req.prompts[0]), req.made[0])
        if event is not None and not seq.cancelled:
            seq.on_event(event)

    def _fail(self, seqs: list[Sequence], message: str) -> None:
        line = message.splitlines()[0][:500] if message else "error"
        for seq in seqs:
            self._finish(seq, "error", ("error", line))

    def stats(self) -> dict:
        return {"queue_depth": self.queue_depth, "running": len(self.running), "blocks_used": self.blocks_used,
                "blocks_free": self.blocks_free, "iterations": self.iterations, "preemptions": self.preemptions}
