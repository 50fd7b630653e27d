"""The CPU target's cache attention for a batch of decoding sequences.

``kiln.cache_attention``'s reference semantics loop over sequences in Python: one gather and one
attention call per sequence per layer. A decode step of a continuously batched server has one query
per sequence, and at 16 sequences that loop is most of the step. This kernel does the same
arithmetic for the whole batch at once: every sequence's keys and values gathered into one padded
[S, kv_heads, L, head_dim] tensor (L: the longest sequence), positions beyond a sequence's own
masked out, and one attention call.

The queries that are the only one of their sequence (decoding) go through it together; the rest of a
mixed batch (prompt chunks beside decodes, as the server's scheduler builds) runs through the
reference run by run, as does a batch with fewer than two decoding queries. The reference is also
this kernel's oracle (tests/test_scheduler.py compares them on ragged and mixed batches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kiln.ir.ops import _cache_attention_ref
from kiln.ir.semantics import seq_runs


def cache_attention_batched(ctx, q, kc, vc, pos, seq, table, *, layer, scale, layout):
    """``kiln.cache_attention``: the queries that are alone in their sequence (decoding) in one batched
    call, any others (prompt chunks) through the reference, run by run."""
    n = q.shape[2]
    if n < 2 or q.shape[0] != 1:
        return _cache_attention_ref(ctx, q, kc, vc, pos, seq, table, layer=layer, scale=scale, layout=layout)
    runs = seq_runs(seq.tolist())
    singles = [i for _, i, j in runs if j - i == 1]
    if len(singles) < 2 or len({s for s, _, _ in runs}) != len(runs):  # (a sequence split in two runs: rare)
        return _cache_attention_ref(ctx, q, kc, vc, pos, seq, table, layer=layer, scale=scale, layout=layout)
    if len(singles) == n:
        return _decode(q, kc[layer], vc[layer], pos, seq, table, scale)
    out = torch.empty_like(q)
    at = torch.tensor(singles)
    out[:, :, at] = _decode(q[:, :, at], kc[layer], vc[layer], pos[at], seq[at], table, scale)
    for _, i, j in runs:
        if j - i > 1:
            out[:, :, i:j] = _cache_attention_ref(ctx, q[:, :, i:j], kc, vc, pos[i:j], seq[i:j], table, layer=layer,
                                                  scale=scale, layout=layout)
    return out


def _decode(q, kl, vl, pos, seq, table, scale):
    """One query per sequence (q [1, H, S, D]) over a layer's cache pool kl, vl [NB, KVH, BS, D]."""
    n = q.shape[2]
    n_blocks, kvh, bs, d = kl.shape
    length = int(pos.max()) + 1
    rows = table[seq]  # [S, MB]: each query's block row
    if rows.shape[1] == 1 or length <= bs:  # every sequence within its first block (a contiguous row)
        first = rows[:, 0].clamp(max=n_blocks - 1)
        k, v = kl[first, :, :length], vl[first, :, :length]  # [S, KVH, L, D]
    else:  # one gather per cache, straight into [KVH, S, blocks, BS, D]; [S, KVH, L, D] is then a view
        nb = -(-length // bs)
        idx = rows[:, :nb].clamp(max=n_blocks - 1)  # unused table entries point past the pool: masked below
        k = kl.transpose(0, 1)[:, idx].view(kvh, n, nb * bs, d).transpose(0, 1)[:, :, :length]
        v = vl.transpose(0, 1)[:, idx].view(kvh, n, nb * bs, d).transpose(0, 1)[:, :, :length]
    keep = (torch.arange(length)[None, :] <= pos[:, None])[:, None, None, :]  # [S, 1, 1, L]
    qs = q[0].transpose(0, 1).unsqueeze(2)  # [S, H, 1, D]
    o = F.scaled_dot_product_attention(qs, k, v, attn_mask=keep, scale=scale, enable_gqa=q.shape[1] != kvh)
    return o.squeeze(2).transpose(0, 1).unsqueeze(0).contiguous()


KERNELS = {"kiln.cache_attention": cache_attention_batched}
