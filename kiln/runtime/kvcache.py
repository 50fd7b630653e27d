"""KV-cache memory: one allocator per runtime, for both layouts of the ``kv-cache`` pass.

The pool is two tensors, K and V, of shape [layers, blocks, kv_heads, block_size, head_dim],
allocated once (on first use) and reused by every request. ``reserve`` hands each sequence of a
request the blocks its longest possible output needs (prompt + max new tokens - 1: the last token
is never fed back) before any compute
starts, so a request either fits whole or is refused with a message saying how much room there is;
nothing runs out of cache mid-generation. ``release`` returns the blocks.

- contiguous: a block is a whole row of ``block_size`` = context-length positions; a sequence
  takes one row however short it is (the static-cache layout: simple addressing, attention reads
  a view of the row).
- paged: blocks of a few positions; a sequence takes ceil(length / block_size) of them from the
  shared pool, so short and long sequences share memory with at most one partly used block each.
"""

from __future__ import annotations

import torch

from kiln.errors import KilnError
from kiln.ir.ops import TORCH_DTYPE
from kiln.ir.types import DType
from kiln.limits import FRACTION, SIZE_LIMITS, available_bytes, check_fits
from kiln.passes.kv_cache import cache_bytes_per_token

DEFAULT_CACHE_BYTES = 1 << 30  # the default pool is at most 1 GiB ...
DEFAULT_CACHE_SEQUENCES = 4  # ... and at most this many full-context sequences
# Bounds on a cache description (it comes from an artifact's manifest, which may be hostile): the
# model sizes kiln compiles at all.
LIMITS = {"block_size": SIZE_LIMITS["positions"], "layers": SIZE_LIMITS["layers"],
          "kv_heads": SIZE_LIMITS["key/value heads"], "head_dim": SIZE_LIMITS["head dim"]}


def _positive(info: dict, key: str, where: str) -> int:
    v = info.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= LIMITS[key]:
        raise KilnError(f"{where}: kv_cache.{key} = {v!r} is not an integer in [1, {LIMITS[key]}]")
    return v


def check_cache_info(info, max_positions, where: str = "the artifact") -> int:
    """Check a ``kv_cache`` description (the ``kv-cache`` pass writes it; the manifest carries it):
    known layout and dtype, sizes within bounds, a contiguous row of exactly one context, and
    ``bytes_per_token`` equal to what the sizes imply. Returns bytes per token."""
    if not isinstance(info, dict):
        raise KilnError(f"{where}: kv_cache is not an object")
    if info.get("layout") not in ("contiguous", "paged"):
        raise KilnError(f"{where}: kv_cache.layout = {info.get('layout')!r} is not 'contiguous' or 'paged'")
    bs, layers, kvh, hd = (_positive(info, k, where) for k in ("block_size", "layers", "kv_heads", "head_dim"))
    if info["layout"] == "contiguous" and max_positions is not None and bs != max_positions:
        raise KilnError(f"{where}: a contiguous cache row holds one context ({max_positions} positions), "
                        f"but kv_cache.block_size = {bs}")
    try:
        dtype = DType(info.get("dtype"))
    except ValueError:
        raise KilnError(f"{where}: kv_cache.dtype = {info.get('dtype')!r} is not a cache dtype") from None
    if dtype == DType.i8 and "scales" not in info:
        raise KilnError(f"{where}: an int8 kv_cache must carry its scales")
    want = cache_bytes_per_token(layers, kvh, hd, dtype)
    if want is None:
        raise KilnError(f"{where}: kv_cache.dtype = {dtype.value!r} is not a cache dtype")
    if info.get("bytes_per_token") != want:
        raise KilnError(f"{where}: kv_cache.bytes_per_token = {info.get('bytes_per_token')!r}, but its sizes "
                        f"imply {want}")
    return want


class KVAllocator:
    def __init__(self, info: dict, max_positions: int, capacity_tokens: int | None = None, device: str = "cpu",
                 sequences: int = DEFAULT_CACHE_SEQUENCES):
        self.bytes_per_token = check_cache_info(info, max_positions)
        self.layout = info["layout"]
        self.block_size = int(info["block_size"])
        self.layers, self.kv_heads, self.head_dim = int(info["layers"]), int(info["kv_heads"]), int(info["head_dim"])
        self.dtype = TORCH_DTYPE[DType(info["dtype"])]
        self.max_positions = max_positions
        self.device = device
        explicit = capacity_tokens is not None
        if capacity_tokens is None:  # `sequences` full contexts, cut to 1 GiB but never below one context ...
            capacity_tokens = min(sequences * max_positions,
                                  max(DEFAULT_CACHE_BYTES // self.bytes_per_token, max_positions))
        if not isinstance(capacity_tokens, int) or isinstance(capacity_tokens, bool) or capacity_tokens <= 0:
            raise KilnError(f"the KV cache needs a positive number of tokens, got {capacity_tokens!r}")
        if not explicit:  # ... and to what the machine has, rounded down to whole blocks
            room = int(FRACTION * available_bytes(device)) // self.bytes_per_token
            capacity_tokens = min(capacity_tokens, max(room // self.block_size, 1) * self.block_size)
        self.n_blocks = capacity_tokens // self.block_size
        if self.n_blocks == 0:
            raise KilnError(f"a KV cache of {capacity_tokens} tokens is smaller than one block "
                            f"({self.block_size} positions, layout {self.layout})")
        unit = "row" if self.layout == "contiguous" else "block"
        check_fits(self.nbytes, f"a KV cache of {self.capacity_tokens} tokens ({self.n_blocks} {unit}s of "
                   f"{self.block_size} positions, {self.bytes_per_token} bytes per token)", device,
                   "ask for fewer tokens (cache_tokens / --cache-tokens)" if explicit else
                   "the model's context is too long for this machine")
        self.free = list(range(self.n_blocks))
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.scaled = "scales" in info  # an int8 cache (quantize-kv): f32 scales per token and kv head beside it
        self.k_scale: torch.Tensor | None = None
        self.v_scale: torch.Tensor | None = None

    @property
    def capacity_tokens(self) -> int:
        return self.n_blocks * self.block_size

    @property
    def nbytes(self) -> int:
        return self.capacity_tokens * self.bytes_per_token

    def blocks_for(self, length: int) -> int:
        return -(-length // self.block_size)

    def describe(self) -> str:
        unit = "rows" if self.layout == "contiguous" else "blocks"
        return (f"{self.layout} KV cache: {self.n_blocks} {unit} of {self.block_size} positions "
                f"({self.capacity_tokens} tokens, {self.nbytes / 2**20:.1f} MiB)")

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k is None:
            shape = (self.layers, self.n_blocks, self.kv_heads, self.block_size, self.head_dim)
            self.k = torch.zeros(shape, dtype=self.dtype, device=self.device)
            self.v = torch.zeros(shape, dtype=self.dtype, device=self.device)
        return self.k, self.v

    def args(self) -> tuple[torch.Tensor, ...]:
        """Every cache tensor, in the order the prefill/decode programs take them after the block table:
        ``k_cache, v_cache`` and, for an int8 cache, ``k_scale, v_scale`` [layers, blocks, kv_heads, block_size]."""
        k, v = self.tensors()
        if not self.scaled:
            return k, v
        if self.k_scale is None:
            self.k_scale = torch.ones(k.shape[:4], dtype=torch.float32, device=self.device)
            self.v_scale = torch.ones(k.shape[:4], dtype=torch.float32, device=self.device)
        return k, v, self.k_scale, self.v_scale

    def reserve(self, lengths: list[int]) -> list[list[int]]:
        """Blocks for sequences that will reach ``lengths`` positions, or a KilnError if they do not fit."""
        for n in lengths:
            if n > self.max_positions:
                raise KilnError(f"a sequence of {n} positions exceeds the model's context of {self.max_positions}")
        need = [self.blocks_for(n) for n in lengths]
        if sum(need) > len(self.free):
            unit = "rows" if self.layout == "contiguous" else f"blocks of {self.block_size}"
            raise KilnError(f"the request does not fit the KV cache: {len(lengths)} sequence(s) of up to "
                            f"{max(lengths)} positions need {sum(need)} {unit}, {len(self.free)} of "
                            f"{self.n_blocks} are free ({self.describe()}); ask for fewer sequences or "
                            "tokens, or a larger cache (cache_tokens / --cache-tokens)")
        out = []
        for k in need:
            out.append(self.free[:k])
            del self.free[:k]
        return out

    def release(self, blocks: list[list[int]]) -> None:
        for b in blocks:
            self.free.extend(b)
        self.free.sort()

    def table(self, blocks: list[list[int]]) -> torch.Tensor:
        width = max(len(b) for b in blocks)
        # unused entries point past the pool: a write beyond a reservation fails instead of
        # landing in another sequence's block
        t = torch.full((len(blocks), width), self.n_blocks, dtype=torch.long)
        for i, b in enumerate(blocks):
            t[i, :len(b)] = torch.tensor(b, dtype=torch.long)
        return t
