"""A generation request's state and the decoding-strategy protocol.

The runtime's generation loop (``Runtime.stream_batch``) keeps one ``Request`` per call: the
committed tokens of every sequence, the tokens waiting to be handed out, how many each has made,
which have stopped, the sampling settings and, over a KV cache, the cache reserved for the request.
A decoding strategy (``DecodeStrategy``; without a KV cache just a ``DecodeStep``) reads that
state and commits tokens through ``Request.commit``: plain one-token steps in
``kiln.runtime.decoding``, the draft -> verify loop in ``kiln.runtime.speculative``. The loop hands
committed tokens out one per sequence per step.

Imports only ``kiln.runtime.sampling``: the runtime and every strategy can import this module.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from kiln.runtime.sampling import Sampling

StepTokens = list  # the next token of every sequence of a request (None once a sequence has stopped)


@dataclass(eq=False)
class Request:
    """One call's sequences, from their prompts to their last token.

    Per sequence ``s``: ``tokens[s]`` is the prompt plus every committed token (over a KV cache the
    cache holds all of them but the last); ``queue[s]`` the committed tokens not yet handed out;
    ``made[s]`` how many tokens it has committed; ``done[s]`` whether it has stopped (a stop token,
    or ``max_new`` tokens). Over a KV cache, ``reserved[s]`` is the positions reserved for it,
    ``table`` the block table and ``cache`` the cache tensors in the order the programs take them
    (``k_cache, v_cache`` and, for an int8 cache, its scales). ``stats`` holds the strategy's
    counters for this request."""

    prompts: list[list[int]]
    max_new: int
    stops: set[int]
    sampling: Sampling
    tokens: list[list[int]] = field(init=False)
    queue: list[deque[int]] = field(init=False)
    made: list[int] = field(init=False)
    done: list[bool] = field(init=False)
    reserved: list[int] = field(default_factory=list)
    table: torch.Tensor | None = None
    cache: tuple[torch.Tensor, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)
    draft: Any = None  # the strategy's own per-request state (a drafter's n-gram tables or draft-cache blocks)

    def __post_init__(self):
        n = len(self.prompts)
        self.tokens = [list(p) for p in self.prompts]
        self.queue = [deque() for _ in range(n)]
        self.made = [0] * n
        self.done = [False] * n

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p) for p in self.prompts)

    def commit(self, s: int, new: list[int]) -> int:
        """Append tokens to sequence ``s``, cut after the first stop token and at ``max_new``; the
        number committed. The sequence is done after a stop token or its ``max_new``-th token."""
        new = new[:self.max_new - self.made[s]]
        for i, t in enumerate(new):
            if t in self.stops:
                new = new[:i + 1]
                self.done[s] = True
                break
        self.tokens[s].extend(new)
        self.queue[s].extend(new)
        self.made[s] += len(new)
        if self.made[s] >= self.max_new:
            self.done[s] = True
        return len(new)

    def waiting(self) -> list[int]:
        """The sequences that need tokens: not stopped, and none waiting to be handed out."""
        return [s for s, q in enumerate(self.queue) if not q and not self.done[s]]

    def hand_out(self) -> StepTokens | None:
        """The next committed token of every sequence (None where it has none): one step of the
        stream, or None when no sequence has a token left to hand out."""
        if not any(self.queue):
            return None
        return [q.popleft() if q else None for q in self.queue]


class DecodeStep(Protocol):
    """Commits the next tokens of the waiting sequences: ``step(request, active)`` must commit at
    least one token to each sequence in ``active`` (``Request.commit``; a stop token or
    ``max_new`` marks it done). Without a KV cache this is all the loop calls, for every token
    including the first."""

    def step(self, request: Request, active: list[int]) -> None: ...


class DecodeStrategy(DecodeStep, Protocol):
    """A decoding strategy over the KV cache. The loop creates the ``Request``, reserves
    ``reserve(request)`` positions per sequence in the target's cache, calls ``begin``, prefills the
    prompts, commits each sequence's first token and then, while some sequence is waiting, calls
    ``step(request, waiting)``. ``end`` always runs (also on an error or an abandoned stream);
    ``report`` gives the strategy's entries of ``Runtime.last_stats``, after the timings."""

    def reserve(self, request: Request) -> list[int]: ...

    def begin(self, request: Request) -> None: ...

    def end(self, request: Request) -> None: ...

    def report(self, request: Request) -> dict: ...
