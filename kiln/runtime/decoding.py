"""The plain decoding strategies (see ``kiln.runtime.state.DecodeStrategy``): one token per waiting
sequence per step, through the ``decode`` program over the KV cache, or, for an artifact compiled
without the ``kv-cache`` pass, by recomputing each whole sequence through ``forward``.
The speculative strategy is ``kiln.runtime.speculative.SpecDecoder``."""

from __future__ import annotations

import torch

from kiln.runtime.state import Request


class PlainDecoding:
    """One ``decode`` call per step for every waiting sequence; ``decode_steps`` counts the calls."""

    def __init__(self, decode):
        self.decode = decode

    def reserve(self, request: Request) -> list[int]:
        # The last step's token is never fed back, so a sequence needs prompt + max_new - 1 positions.
        return [len(p) + request.max_new - 1 for p in request.prompts]

    def begin(self, request: Request) -> None:
        request.stats = {"decode_steps": 0}

    def step(self, request: Request, active: list[int]) -> None:
        tokens = request.tokens
        ids = torch.tensor([[tokens[s][-1] for s in active]], dtype=torch.long)
        pos = torch.tensor([len(tokens[s]) - 1 for s in active], dtype=torch.long)
        seq = torch.tensor(active, dtype=torch.long)
        logits = self.decode(ids, pos, seq, request.table, *request.cache)[0][0]
        for s, t in zip(active, request.sampling.pick(logits).tolist()):
            request.commit(s, [t])
        request.stats["decode_steps"] += 1

    def end(self, request: Request) -> None:
        pass

    def report(self, request: Request) -> dict:
        return {"decode_steps": request.stats["decode_steps"], "prompt_tokens": request.prompt_tokens}


class RecomputeDecoding:
    """Without a KV cache: each waiting sequence recomputed whole through ``forward`` per token
    (correct, slow). Only ``step`` is used: there is no cache to reserve or prefill."""

    def __init__(self, forward):
        self.forward = forward

    def step(self, request: Request, active: list[int]) -> None:
        for s in active:
            logits = self.forward(torch.tensor([request.tokens[s]]))[0][:, -1, :]
            request.commit(s, [int(request.sampling.pick(logits)[0])])
