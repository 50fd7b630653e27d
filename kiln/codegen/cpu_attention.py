"""The CPU target's cache attention for a batch of decoding sequences.

``kiln.cache_attention``'s reference semantics loop over sequences in Python: one gather and one
attention call per sequence per layer. A decode step of a continuously batched server has one query
per sequence, and at 16 sequences that loop is most of the step. This kernel does the same
arithmetic for the whole batch at once: every sequence's keys and values gathered into one padded
[S, kv_heads, L, head_dim] tensor (L: the longest sequence), positions beyond a sequence's own
masked out, and one attention call.

It applies only when every query is the only one of its sequence (decode); anything else (prefill
chunks, several queries of a sequence) and a single sequence run the reference, which is also this
kernel's oracle (tests/test_scheduler.py compares them on ragged batches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kiln.ir.ops import _cache_attention_ref


def cache_attention_batched(ctx, q, kc, vc, pos, seq, table, *, layer, scale, layout):
    n = q.shape[2]
    if n < 2 or q.shape[0] != 1 or torch.unique(seq).numel() != n:
        return _cache_attention_ref(ctx, q, kc, vc, pos, seq, table, layer=layer, scale=scale, layout=layout)
    kl, vl = kc[layer], vc[layer]  # [NB, KVH, BS, D]
    n_blocks, kvh, bs, d = kl.shape
    length = int(pos.max()) + 1
    rows = table[seq]  # [S, MB]: each query's block row
    if rows.shape[1] == 1 or length <= bs:  # every sequence within its first block (a contiguous row)
        first = rows[:, 0].clamp(max=n_blocks - 1)
        k, v = kl[first, :, :length], vl[first, :, :length]  # [S, KVH, L, D]
    else:
        nb = -(-length // bs)
        idx = rows[:, :nb].clamp(max=n_blocks - 1)  # unused table entries point past the pool: masked below
        k = kl[idx].transpose(1, 2).reshape(n, kvh, nb * bs, d)[:, :, :length]
        v = vl[idx].transpose(1, 2).reshape(n, kvh, nb * bs, d)[:, :, :length]
    keep = (torch.arange(length)[None, :] <= pos[:, None])[:, None, None, :]  # [S, 1, 1, L]
    qs = q[0].transpose(0, 1).unsqueeze(2)  # [S, H, 1, D]
    o = F.scaled_dot_product_attention(qs, k, v, attn_mask=keep, scale=scale, enable_gqa=q.shape[1] != kvh)
    return o.squeeze(2).transpose(0, 1).unsqueeze(0).contiguous()


KERNELS = {"kiln.cache_attention": cache_attention_batched}
