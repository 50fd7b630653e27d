"""The generation runtime: full-sequence logits, and token generation with
greedy or sampled decoding (temperature, top-k, top-p, seed, stop on EOS).

Decoding here recomputes the whole sequence for every new token: there is no
KV cache yet (the ``kv-cache`` pass and its prefill/decode programs come
later). It is correct, and slow for long outputs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from kiln.codegen.cpu import CpuProgram
from kiln.errors import KilnError


@dataclass
class Generation:
    token_ids: list[int]
    new_tokens: int
    seconds: float
    prompt_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def _meta_int(meta: dict, key: str, default: int) -> int:
    v = meta.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise KilnError(f"the artifact's manifest has a bad model.{key}: {v!r}")
    return v


def check_sampling(temperature: float, top_p: float, top_k: int, max_new_tokens: int) -> None:
    if not math.isfinite(temperature) or not math.isfinite(top_p):
        raise KilnError("temperature and top-p must be finite numbers")
    if temperature < 0:
        raise KilnError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise KilnError(f"top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise KilnError(f"top-k must be >= 0, got {top_k}")
    if max_new_tokens < 0:
        raise KilnError(f"max-new-tokens must be >= 0, got {max_new_tokens}")


def sample_next(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row of logits [B, V]: argmax when temperature is 0."""
    if temperature == 0:
        return logits.argmax(-1)
    scores = logits.float() / temperature
    if top_k > 0:
        kth = torch.topk(scores, min(top_k, scores.shape[-1]), dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = torch.softmax(sorted_scores, -1)
        cum = probs.cumsum(-1)
        drop = cum - probs > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    probs = torch.softmax(scores, -1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def stream_text(decode, tokens: Iterator[int], out: list[int]) -> Iterator[str]:
    """Text pieces as tokens arrive, holding back a multi-byte character until it is complete
    (``decode`` shows an incomplete one as U+FFFD). Appends each token to ``out``."""
    printed = ""
    for tok in tokens:
        out.append(tok)
        text = decode(out)
        if text.endswith("\ufffd") or not text.startswith(printed):
            continue
        if len(text) > len(printed):
            yield text[len(printed):]
            printed = text
    text = decode(out)
    if text != printed:
        yield text.removeprefix(printed)


class Runtime:
    """Runs an artifact's programs. ``logits(ids)`` and ``generate(ids, ...)``."""

    def __init__(self, artifact, device: str = "cpu"):
        target = artifact.manifest.get("target", "cpu")
        if target != "cpu" or device != "cpu":
            raise KilnError(f"target {target!r} / device {device!r}: only the cpu target runs in this version")
        self.artifact = artifact
        self.module = artifact.module
        self.forward = CpuProgram(self.module["forward"], self.module.weights)
        meta = artifact.manifest.get("model", {})
        logits_type = self.module["forward"].outputs[0].type
        self.vocab_size = _meta_int(meta, "vocab_size", logits_type.shape[-1] if isinstance(
            logits_type.shape[-1], int) else 0)
        self.max_positions = _meta_int(meta, "max_positions", 2048)
        eos = meta.get("eos_token_id")
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {e for e in eos if isinstance(e, int) and not isinstance(e, bool)}
        self._tokenizer = None

    # -- tokens ------------------------------------------------------------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            data = self.artifact.tokenizer_files.get("tokenizer.json")
            if data is None:
                raise KilnError("this artifact has no tokenizer.json; pass token ids instead of text")
            from tokenizers import Tokenizer

            try:
                self._tokenizer = Tokenizer.from_str(data.decode())
            except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for bad JSON
                raise KilnError(f"the artifact's tokenizer.json is unusable: {str(e).splitlines()[0][:200]}") from None
        return self._tokenizer

    def encode(self, text: str) -> list[int]:
        if not text:
            raise KilnError("the prompt is empty")
        ids = self.tokenizer.encode(text).ids
        if not ids:
            raise KilnError("the prompt encodes to no tokens")
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.tokenizer.get_vocab_size()])

    # -- compute -----------------------------------------------------------------
    def _check_ids(self, ids: torch.Tensor) -> torch.Tensor:
        ids = torch.as_tensor(ids)
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise KilnError(f"token ids must be [batch, length] with length >= 1, got {tuple(ids.shape)}")
        if ids.dtype != torch.int64:
            ids = ids.long()
        if self.vocab_size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise KilnError(f"token ids must be in [0, {self.vocab_size})")
        if ids.shape[1] > self.max_positions:
            raise KilnError(f"{ids.shape[1]} tokens exceed the model's context of {self.max_positions}")
        return ids

    @torch.no_grad()
    def logits(self, input_ids) -> torch.Tensor:
        """Full-sequence logits [B, T, V]."""
        return self.forward(self._check_ids(input_ids))[0]

    @torch.no_grad()
    def stream(self, input_ids, max_new_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, seed: int | None = None, stop_at_eos: bool = True) -> Iterator[torch.Tensor]:
        """Yield the next token of every sequence [B], one step at a time."""
        check_sampling(temperature, top_p, top_k, max_new_tokens)
        ids = self._check_ids(input_ids)
        if ids.shape[1] + max_new_tokens > self.max_positions:
            raise KilnError(f"prompt ({ids.shape[1]} tokens) + max-new-tokens ({max_new_tokens}) exceeds the "
                            f"model's context of {self.max_positions}")
        if seed is not None and not 0 <= seed < 2**63:
            raise KilnError(f"seed must be in [0, 2**63), got {seed}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        done = torch.zeros(ids.shape[0], dtype=torch.bool)
        for _ in range(max_new_tokens):
            logits = self.forward(ids)[0][:, -1, :]
            nxt = sample_next(logits, temperature, top_k, top_p, gen)
            yield nxt
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if stop_at_eos and self.eos_ids:
                done |= torch.tensor([int(t) in self.eos_ids for t in nxt])
                if bool(done.all()):
                    return

    def generate(self, input_ids, max_new_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, stop_at_eos: bool = True) -> torch.Tensor:
        """Prompt plus generated ids [B, T + n] (greedy when temperature is 0)."""
        ids = self._check_ids(input_ids)
        steps = list(self.stream(ids, max_new_tokens, temperature, top_k, top_p, seed, stop_at_eos))
        if not steps:
            return ids
        return torch.cat([ids, torch.stack(steps, dim=1)], dim=1)

    def generate_text(self, prompt: str, **kw) -> Generation:
        ids = self.encode(prompt)
        t0 = time.perf_counter()
        out = self.generate(torch.tensor([ids]), **kw)[0].tolist()
        dt = time.perf_counter() - t0
        return Generation(out, len(out) - len(ids), dt, len(ids))
