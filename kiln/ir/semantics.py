"""What kiln's reference semantics share: torch dtypes for the IR's element
types, concrete shapes for symbolic ones, and the KV cache's block addressing.

A cache is one tensor per K and V for all layers: [L, NB, KVH, BS, D], a pool of NB blocks of BS
positions. `table` [S, MB] lists each sequence's blocks: position p of sequence s lives in block
table[s, p // BS] at offset p % BS (docs/kv-cache.md).
"""

from __future__ import annotations

import torch

from kiln.errors import IRError
from kiln.ir.types import DType, eval_dim

TORCH_DTYPE = {
    DType.f32: torch.float32, DType.f16: torch.float16, DType.bf16: torch.bfloat16,
    DType.f64: torch.float64, DType.i64: torch.int64, DType.i32: torch.int32,
    DType.i16: torch.int16, DType.i8: torch.int8, DType.u8: torch.uint8, DType.i1: torch.bool,
}
FROM_TORCH = {v: k for k, v in TORCH_DTYPE.items()}


def concrete(shape, env: dict[str, int]) -> list[int]:
    return [eval_dim(d, env) if isinstance(d, str) else d for d in shape]


def check_cache_operands(name, cache, x, pos, seq, table):
    """Shape rules' shared check of a cache op's operand types (IRError naming ``name`` otherwise)."""
    if cache.rank != 5:
        raise IRError(f"{name}: cache must be [L, NB, KVH, BS, D], got {cache.shape}")
    if x.rank != 4:
        raise IRError(f"{name}: expects [1, heads, N, D] tokens, got {x.shape}")
    for t, what in ((pos, "pos"), (seq, "seq")):
        if t.rank != 1 or t.dtype != DType.i64:
            raise IRError(f"{name}: {what} must be a 1-d i64 tensor, got {t}")
    if table.rank != 2 or table.dtype != DType.i64:
        raise IRError(f"{name}: table must be a 2-d i64 tensor, got {table}")


def seq_runs(seq: list[int]) -> list[tuple[int, int, int]]:
    """(sequence row, first token, end token) for each run of adjacent tokens of one sequence."""
    runs, i = [], 0
    while i < len(seq):
        j = i + 1
        while j < len(seq) and seq[j] == seq[i]:
            j += 1
        runs.append((seq[i], i, j))
        i = j
    return runs


def cache_keys(cache_l: torch.Tensor, blocks: torch.Tensor, length: int) -> torch.Tensor:
    """[KVH, length, D]: a sequence's first `length` positions from one layer's pool [NB, KVH, BS, D]."""
    _, kvh, bs, d = cache_l.shape
    if len(blocks) == 1 or length <= bs:
        return cache_l[int(blocks[0]), :, :length]  # a view: no copy
    nb = -(-length // bs)
    return cache_l[blocks[:nb]].transpose(0, 1).reshape(kvh, nb * bs, d)[:, :length]
