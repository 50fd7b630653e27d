"""The generation runtime: full-sequence logits, and token generation with greedy or sampled
decoding (temperature, top-k, top-p, seed, stop tokens / EOS, max new tokens), streaming, and
batches of prompts of different lengths.

With the ``prefill``/``decode`` programs of the ``kv-cache`` pass (the default pipeline), prompts
are packed into one row (no padding), prefilled in chunks against the cache, and then decoded one
token per live sequence per step; the cache comes from one ``KVAllocator`` that reserves a
request's worst case up front and refuses what does not fit. Artifacts compiled without the pass
fall back to recomputing the whole sequence per token through ``forward`` (correct, slow).

The generation loop (``stream_batch``) keeps a request's state in a ``kiln.runtime.state.Request``
and gets its tokens from a decoding strategy: ``kiln.runtime.decoding.PlainDecoding`` (one decode
step per token), ``kiln.runtime.speculative.SpecDecoder`` (draft -> verify rounds) or, without a KV
cache, ``kiln.runtime.decoding.RecomputeDecoding``. Sampling lives in ``kiln.runtime.sampling``;
its names are importable from here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from kiln.codegen.cstep import cpu_program
from kiln.errors import KilnError
from kiln.runtime.decoding import PlainDecoding, RecomputeDecoding
from kiln.runtime.sampling import MIN_TEMPERATURE, Sampling, check_sampling, sample_next
from kiln.runtime.speculative import SpecDecoder
from kiln.runtime.state import DecodeStep, DecodeStrategy, Request, StepTokens

__all__ = ["MIN_TEMPERATURE", "Generation", "Runtime", "StepTokens", "check_prompt_text", "check_sampling",
           "sample_next", "stream_text"]


@dataclass
class Generation:
    token_ids: list[int]
    new_tokens: int
    seconds: float
    prompt_tokens: int
    prefill_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def _meta_int(meta: dict, key: str, default: int) -> int:
    v = meta.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise KilnError(f"the artifact's manifest has a bad model.{key}: {v!r}")
    return v


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


def check_prompt_text(text) -> None:
    """Refuse a prompt that is not non-empty UTF-8 text (KilnError naming the first bad character)."""
    if not isinstance(text, str):
        raise KilnError(f"the prompt must be text (str), got {type(text).__name__}")
    if not text:
        raise KilnError("the prompt is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:  # undecodable bytes from the command line arrive as lone surrogates
        bad = text[e.start]
        shown = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"U+{ord(bad):04X}"
        raise KilnError(f"the prompt is not valid UTF-8 text ({shown} at character {e.start}); "
                        "kiln prompts are UTF-8") from None


def _is_token(t) -> bool:
    """An integer token id (an int or a 0-d integer tensor; never a bool or a float)."""
    if isinstance(t, torch.Tensor):
        return t.dim() == 0 and not (t.dtype == torch.bool or t.is_floating_point() or t.is_complex())
    return isinstance(t, int) and not isinstance(t, bool)


class _Lazy:
    """A program built on its first call or attribute read, then that program."""

    def __init__(self, make):
        self._make, self._program = make, None

    def _get(self):
        if self._program is None:
            self._program = self._make()
        return self._program

    def __call__(self, *args):
        return self._get()(*args)

    def __getattr__(self, name):
        return getattr(self._get(), name)


class Runtime:
    """Runs an artifact's programs: ``logits(ids)``, ``generate(ids, ...)``, ``stream(ids, ...)``.

    ``cache_tokens`` sizes the KV-cache pool (default: ``cache_sequences`` full-context sequences, 4
    unless given, at most 1 GiB);
    ``prefill_chunk`` is the most prompt tokens one prefill call processes; ``speculative=False``
    decodes one token per step even when the artifact has a drafter; ``cuda_graphs=True`` (target
    cuda on a GPU; unverified) replays the decode step from a captured CUDA graph.

    Decoding strategies (``kiln.runtime.state.DecodeStrategy``): ``plain`` (one ``decode`` call per
    token; None without a KV cache), ``spec`` (the draft -> verify loop; None when the artifact has
    no drafter or it is not wanted) and ``recompute`` (no KV cache). ``stream_batch`` uses ``spec``
    when it is set, else ``plain``, else ``recompute``."""

    def __init__(self, artifact, device: str = "cpu", cache_tokens: int | None = None, prefill_chunk: int = 512,
                 speculative: bool = True, cuda_graphs: bool = False, cache_sequences: int = 4):
        target = artifact.manifest.get("target", "cpu")
        if target not in ("cpu", "cuda") or (target == "cpu" and device != "cpu"):
            raise KilnError(f"target {target!r} / device {device!r}: the cpu target runs on device 'cpu' only")
        program = cpu_program
        if target == "cuda":  # Triton kernels on the GPU, or on CPU tensors under TRITON_INTERPRET=1
            from kiln.codegen.triton.program import TritonProgram

            device = "cuda" if torch.cuda.is_available() else "cpu"
            from kiln.codegen.native import unpacked

            on_device = {k: unpacked(v).to(device) for k, v in artifact.module.weights.items()}  # once, for every program

            def program(prog, _weights):
                return TritonProgram(prog, on_device, device=device)
        self.device = device
        if not isinstance(prefill_chunk, int) or prefill_chunk <= 0:
            raise KilnError(f"prefill_chunk must be a positive integer, got {prefill_chunk!r}")
        self.artifact = artifact
        self.module = artifact.module
        if target == "cpu":  # linear-only float32 weights are held once, in the native kernel's panel layout
            from kiln.codegen.native import pack_linear_weights

            pack_linear_weights(self.module)
        # built on first use: a runtime with a KV cache runs it only for logits() (its C costs a compile)
        self.forward = _Lazy(lambda: program(self.module["forward"], self.module.weights))
        meta = artifact.manifest.get("model", {})
        logits_type = self.module["forward"].outputs[0].type
        self.vocab_size = _meta_int(meta, "vocab_size", logits_type.shape[-1] if isinstance(
            logits_type.shape[-1], int) else 0)
        self.max_positions = _meta_int(meta, "max_positions", 2048)
        eos = meta.get("eos_token_id")
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {e for e in eos if isinstance(e, int) and not isinstance(e, bool)}
        self.prefill_chunk = prefill_chunk
        self.kv = None
        self.plain: PlainDecoding | None = None  # one decode step per token, over the KV cache
        self.recompute = RecomputeDecoding(self.forward)  # no KV cache: whole sequences per token
        if "prefill" in self.module.programs and "decode" in self.module.programs:
            info = self.module.meta.get("kv_cache")
            if not isinstance(info, dict):
                raise KilnError("the artifact has prefill/decode programs but no kv_cache description in its IR")
            from kiln.runtime.kvcache import KVAllocator

            try:
                self.kv = KVAllocator(info, self.max_positions, cache_tokens, device, cache_sequences)
            except (KeyError, ValueError, TypeError) as e:
                raise KilnError(f"the artifact's kv_cache description is malformed ({type(e).__name__}: {e})") from None
            want = (self.kv.layers, "NB", self.kv.kv_heads, self.kv.block_size, self.kv.head_dim)
            for name in ("prefill", "decode"):
                got = [a.type.shape for a in self.module[name].args if a.hint == "k_cache"]
                if got != [want]:
                    raise KilnError(f"the artifact's '{name}' program does not take the KV cache its manifest "
                                    f"describes ({got} vs {list(want)})")
            self.prefill = program(self.module["prefill"], self.module.weights)
            self.decode_prog = program(self.module["decode"], self.module.weights)
            if cuda_graphs:  # unverified: see kiln/codegen/triton/graphs.py
                from kiln.codegen.triton.graphs import CudaGraphProgram

                if target != "cuda":
                    raise KilnError("cuda_graphs needs an artifact compiled with --target cuda")
                self.decode_prog = CudaGraphProgram(self.decode_prog)
            self.plain = PlainDecoding(self.decode_prog)
        # the draft -> verify loop, when the artifact has a verify program (and it is wanted)
        self.spec: SpecDecoder | None = None
        if device != "cpu":  # the draft -> verify loop runs its programs on the CPU executor only, for now
            speculative = False
        if speculative and self.kv is not None and "verify" in self.module.programs:
            self.spec = SpecDecoder(self.module, self.kv, self.max_positions, self.vocab_size)
        self._tokenizer = None
        self.last_stats: dict = {}

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

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_special_tokens=False`` leaves out what the tokenizer would add
        (a BOS), for text that already carries it (a rendered chat template)."""
        check_prompt_text(text)
        ids = self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        if not ids:
            raise KilnError("the prompt encodes to no tokens")
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.tokenizer.get_vocab_size()])

    # -- checks ------------------------------------------------------------------
    def _check_ids(self, ids) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor):
            try:
                ids = torch.as_tensor(ids)
            except (TypeError, ValueError, RuntimeError, OverflowError) as e:
                raise KilnError(f"token ids must be integers in [0, {self.vocab_size or 'vocab'}) "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        if ids.dim() != 2 or ids.shape[0] == 0 or ids.shape[1] == 0:
            raise KilnError(f"token ids must be [batch, length] with batch >= 1 and length >= 1, "
                            f"got {tuple(ids.shape)}")
        if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
            raise KilnError(f"token ids must be integers, got a {str(ids.dtype).removeprefix('torch.')} tensor")
        if ids.dtype != torch.int64:
            ids = ids.long()
        if self.vocab_size and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise KilnError(f"token ids must be in [0, {self.vocab_size}), got {int(ids.min())}..{int(ids.max())}")
        if ids.shape[1] > self.max_positions:
            raise KilnError(f"{ids.shape[1]} tokens exceed the model's context of {self.max_positions}")
        return ids

    def _check_prompts(self, prompts) -> list[list[int]]:
        if isinstance(prompts, torch.Tensor):
            return self._check_ids(prompts).tolist()
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise KilnError("prompts must be a [batch, length] tensor or a non-empty list of token-id lists")
        if all(_is_token(t) for t in prompts):
            prompts = [prompts]
        out = []
        for p in prompts:
            if not isinstance(p, (list, tuple, torch.Tensor)):
                raise KilnError(f"each prompt must be a list of token ids, got {type(p).__name__}")
            if not isinstance(p, torch.Tensor) and not all(_is_token(t) for t in p):
                bad = next(t for t in p if not _is_token(t))
                raise KilnError(f"token ids must be integers, got {type(bad).__name__} {bad!r:.40}")
            if isinstance(p, torch.Tensor):
                t = p[None]
            else:
                try:
                    t = torch.tensor([list(p)], dtype=torch.long)
                except (RuntimeError, ValueError, OverflowError):  # an int beyond int64
                    raise KilnError(f"token ids must be in [0, {self.vocab_size or 'vocab'})") from None
            out.append(self._check_ids(t)[0].tolist())
        return out

    def _check_stop_ids(self, stop_ids) -> set[int]:
        if isinstance(stop_ids, torch.Tensor):
            stop_ids = stop_ids.tolist()
        if not isinstance(stop_ids, (list, tuple, set, frozenset)):
            raise KilnError(f"stop ids must be a list of token ids, got {type(stop_ids).__name__}")
        for t in stop_ids:
            if not _is_token(t) or t < 0 or (self.vocab_size and t >= self.vocab_size):
                raise KilnError(f"stop id {t!r} is not a token id in [0, {self.vocab_size or 'vocab'})")
        return {int(t) for t in stop_ids}

    # -- compute -----------------------------------------------------------------
    @torch.no_grad()
    def logits(self, input_ids) -> torch.Tensor:
        """Full-sequence logits [B, T, V]."""
        return self.forward(self._check_ids(input_ids))[0]

    @torch.no_grad()
    def stream_batch(self, prompts, max_new_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
                     top_p: float = 1.0, seed: int | None = None, stop_at_eos: bool = True,
                     stop_ids: list[int] | tuple[int, ...] = ()) -> Iterator[StepTokens]:
        """Yield, per step, the next token of every prompt (None for prompts already stopped).

        ``prompts``: token-id lists of any lengths (or a [B, T] tensor). A sequence stops after
        producing a stop token (EOS when ``stop_at_eos``, or one of ``stop_ids``); the stream ends
        when all have stopped or after ``max_new_tokens`` steps."""
        temperature = check_sampling(temperature, top_p, top_k, max_new_tokens)
        prompts = self._check_prompts(prompts)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
            raise KilnError(f"seed must be in [0, 2**63), got {seed!r}")
        stop_ids = self._check_stop_ids(stop_ids)
        longest = max(len(p) for p in prompts)
        if longest + max_new_tokens > self.max_positions:
            raise KilnError(f"prompt ({longest} tokens) + max-new-tokens ({max_new_tokens}) exceeds the "
                            f"model's context of {self.max_positions}")
        stops = set(stop_ids) | (self.eos_ids if stop_at_eos else set())
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        if max_new_tokens == 0:
            return
        request = Request(prompts, max_new_tokens, stops, Sampling(temperature, top_k, top_p, gen))
        if self.kv is None:
            yield from self._hand_out(request, self.recompute)
        else:
            yield from self._stream_cached(request, self.spec if self.spec is not None else self.plain)

    @staticmethod
    def _hand_out(request: Request, strategy: DecodeStep) -> Iterator[StepTokens]:
        """The generation loop: whenever some sequence is waiting (not stopped, no committed token
        left to hand out), the strategy commits tokens for the waiting ones; otherwise the next
        committed token of every sequence is one step of the stream."""
        while True:
            active = request.waiting()
            if active:
                strategy.step(request, active)
                continue
            step = request.hand_out()
            if step is None:
                return
            yield step

    def _stream_cached(self, request: Request, strategy: DecodeStrategy) -> Iterator[StepTokens]:
        kv = self.kv
        reserved = strategy.reserve(request)
        blocks = kv.reserve(reserved)
        try:
            request.reserved = reserved
            strategy.begin(request)
            request.cache = kv.args()  # k_cache, v_cache (and an int8 cache's scales), as the programs take them
            request.table = kv.table(blocks)
            t0 = time.perf_counter()
            first = self.prefill_logits(request.prompts, *request.cache[:2], request.table)
            t1 = time.perf_counter()
            for s, t in enumerate(request.sampling.pick(first).tolist()):
                request.commit(s, [t])
            yield from self._hand_out(request, strategy)
            self.last_stats = {"prefill_seconds": t1 - t0, "decode_seconds": time.perf_counter() - t1,
                               **strategy.report(request)}
        finally:
            kv.release(blocks)
            strategy.end(request)

    def prefill_logits(self, prompts: list[list[int]], k_cache: torch.Tensor, v_cache: torch.Tensor,
                       table: torch.Tensor) -> torch.Tensor:
        """Write every prompt's keys and values into the KV cache (``k_cache``, ``v_cache``: this
        runtime's ``kv.tensors()``; an int8 cache's scales are taken from ``kv``) at the positions of
        its row of the block ``table``; the logits [S, V] at each prompt's last token. The prompts
        run packed in one row, in chunks of at most ``prefill_chunk`` tokens."""
        flat = [(s, p, t) for s, prompt in enumerate(prompts) for p, t in enumerate(prompt)]
        last = torch.empty(len(prompts), self.vocab_size or 1)
        for c in range(0, len(flat), self.prefill_chunk):
            chunk = flat[c:c + self.prefill_chunk]
            ids = torch.tensor([[t for _, _, t in chunk]], dtype=torch.long)
            pos = torch.tensor([p for _, p, _ in chunk], dtype=torch.long)
            seq = torch.tensor([s for s, _, _ in chunk], dtype=torch.long)
            ends = [(j, s) for j, (s, p, _) in enumerate(chunk) if p == len(prompts[s]) - 1]
            at = torch.tensor([j for j, _ in ends], dtype=torch.long)
            logits = self.prefill(ids, pos, seq, table, k_cache, v_cache, *self.kv.args()[2:], at)[0][0]
            if last.shape[1] != logits.shape[-1]:
                last = torch.empty(len(prompts), logits.shape[-1], dtype=logits.dtype)
            for r, (_, s) in enumerate(ends):
                last[s] = logits[r]
        return last


    def stream(self, input_ids, max_new_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, seed: int | None = None, stop_at_eos: bool = True,
               stop_ids=()) -> Iterator[torch.Tensor]:
        """Yield the next token of every sequence [B] per step; a stopped sequence repeats its stop token."""
        prev = None
        for step in self.stream_batch(input_ids, max_new_tokens, temperature, top_k, top_p, seed, stop_at_eos,
                                      stop_ids):
            prev = [t if t is not None else prev[i] for i, t in enumerate(step)]
            yield torch.tensor(prev, dtype=torch.long)

    def generate(self, input_ids, max_new_tokens: int = 64, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, stop_at_eos: bool = True, stop_ids=()):
        """Prompt plus generated ids. A [B, T] tensor gives a [B, T + n] tensor (a stopped sequence is
        padded with its stop token); a list of token-id lists gives a list of lists, each ending at
        its own stop token."""
        if isinstance(input_ids, torch.Tensor):
            ids = self._check_ids(input_ids)
            steps = list(self.stream(ids, max_new_tokens, temperature, top_k, top_p, seed, stop_at_eos, stop_ids))
            return torch.cat([ids, torch.stack(steps, dim=1)], dim=1) if steps else ids
        prompts = self._check_prompts(input_ids)
        outs = [list(p) for p in prompts]
        for step in self.stream_batch(prompts, max_new_tokens, temperature, top_k, top_p, seed, stop_at_eos,
                                      stop_ids):
            for i, t in enumerate(step):
                if t is not None:
                    outs[i].append(t)
        return outs

    def generate_text(self, prompt: str, **kw) -> Generation:
        ids = self.encode(prompt)
        t0 = time.perf_counter()
        self.last_stats = {}
        out = self.generate([ids], **kw)[0]
        dt = time.perf_counter() - t0
        return Generation(out, len(out) - len(ids), dt, len(ids), self.last_stats.get("prefill_seconds", 0.0))
