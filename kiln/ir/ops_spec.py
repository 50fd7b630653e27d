"""Ops of speculative decoding (made by the ``speculative`` pass; see docs/speculative.md).

A verify step scores a *token tree* per sequence in one forward pass. The tree's nodes are packed
like any other tokens ([1, N], adjacent per sequence); node 0 of a sequence is its last committed
token (the root) and every other node has a ``parent`` (packed index). Each node carries:

- ``pos``: its position (root position + depth), for RoPE;
- ``slot``: the cache slot its keys and values are written to (root slot + its index in the
  sequence's run), so siblings at the same depth never overwrite each other.

``kiln.cache_tree_attention`` lets a node see the sequence's committed cache slots (below the
root's slot) and the in-chunk nodes ``mask`` allows (its ancestors and itself). A chain of drafted
tokens is the tree whose mask is lower-triangular. ``kiln.tree_accept`` walks each tree from its
root, accepting children by argmax (greedy) or by the rejection rule (sampling), and
``kiln.cache_commit`` moves the accepted nodes' keys and values from their slots to their
positions, so that the cache holds exactly the accepted sequence afterwards; what is left above it
is never read (attention reads only slots below a query's own).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kiln.errors import IRError
from kiln.ir.registry import declare
from kiln.ir.semantics import cache_keys, check_cache_operands, seq_runs
from kiln.ir.types import DType, TensorType, canon_dim, dims_equal

MAX_DRAFT = 32  # the most tokens a draft may propose per sequence and step (kiln.chain_tree's `k`)


def _tree_attention_shape(ts, a):
    q, kc, vc, slot, seq, table, mask = ts
    check_cache_operands("kiln.cache_tree_attention", kc, q, slot, seq, table)
    if kc.shape != vc.shape:
        raise IRError(f"kiln.cache_tree_attention: K and V caches differ: {kc.shape} vs {vc.shape}")
    if mask.rank != 2 or mask.dtype != DType.i1 or not dims_equal(mask.shape[0], q.shape[2]):
        raise IRError(f"kiln.cache_tree_attention: mask must be i1 [N, N] for {q.shape[2]} tokens, got {mask}")
    return [q]


def _tree_attention_ref(ctx, q, kc, vc, slot, seq, table, mask, *, layer, scale, layout, scales=None):
    out = torch.empty_like(q)
    kl, vl = kc[layer], vc[layer]
    gqa = q.shape[1] != kc.shape[2]
    slots = slot.tolist()
    for s, i, j in seq_runs(seq.tolist()):
        base, length = min(slots[i:j]), max(slots[i:j]) + 1
        k = cache_keys(kl, table[s], length)
        v = cache_keys(vl, table[s], length)
        if scales is not None:  # an int8 cache: dequantize the rows this sequence reads
            ks, vs = scales[0][layer].unsqueeze(-1), scales[1][layer].unsqueeze(-1)
            k = (k.float() * cache_keys(ks, table[s], length)).to(q.dtype)
            v = (v.float() * cache_keys(vs, table[s], length)).to(q.dtype)
        k, v = k.unsqueeze(0), v.unsqueeze(0)
        keep = torch.zeros(j - i, length, dtype=torch.bool, device=q.device)
        keep[:, :base] = True  # the committed sequence
        keep[:, slot[i:j]] = mask[i:j, i:j]  # the tree: ancestors and self
        out[:, :, i:j] = F.scaled_dot_product_attention(q[:, :, i:j], k, v, attn_mask=keep, scale=scale,
                                                        enable_gqa=gqa)
    return out


declare("kiln.cache_tree_attention",
        "Attention of packed tree nodes q [1, H, N, D] over `layer` of the cache: node i of sequence s sees "
        "the slots below its run's first slot and the slots of the nodes j of its run with mask[i, j].",
        operands=("q", "k_cache", "v_cache", "slot", "seq", "table", "mask"),
        attrs={"layer": int, "scale": float, "layout": str}, traits=("pure", "reads-cache", "speculative"),
        shape=_tree_attention_shape, reference=_tree_attention_ref)


def _tree_attention_q8_shape(ts, a):
    q, kc, ks, vc, vs, slot, seq, table, mask = ts
    for c, sc in ((kc, ks), (vc, vs)):
        if c.dtype != DType.i8 or sc.dtype != DType.f32 or c.rank != 5 or sc.shape != c.shape[:4]:
            raise IRError(f"kiln.cache_tree_attention_q8: an int8 cache [L, NB, KVH, BS, D] needs f32 scales "
                          f"[L, NB, KVH, BS], got {c} and {sc}")
    return _tree_attention_shape([q, kc, vc, slot, seq, table, mask], a)


def _tree_attention_q8_ref(ctx, q, kc, ks, vc, vs, slot, seq, table, mask, *, layer, scale, layout):
    return _tree_attention_ref(ctx, q, kc, vc, slot, seq, table, mask, layer=layer, scale=scale, layout=layout,
                               scales=(ks, vs))


declare("kiln.cache_tree_attention_q8",
        "kiln.cache_tree_attention over an int8 cache (operands q, k_cache, k_scale, v_cache, v_scale, slot, "
        "seq, table, mask): keys and values are dequantized (int8 row * its scale) as they are read.",
        operands=("q", "k_cache", "k_scales", "v_cache", "v_scales", "slot", "seq", "table", "mask"),
        attrs={"layer": int, "scale": float, "layout": str},
        traits=("pure", "reads-cache", "quantized", "speculative"),
        shape=_tree_attention_q8_shape, reference=_tree_attention_q8_ref)


def filtered_probs(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """softmax(logits / T) restricted to the top-k and top-p set, renormalised: rows of [..., V]."""
    scores = logits.float() / temperature
    if top_k > 0:
        kth = torch.topk(scores, min(top_k, scores.shape[-1]), dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = torch.softmax(sorted_scores, -1)
        drop = probs.cumsum(-1) - probs > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    return torch.softmax(scores, -1)


def _children(parent: list[int], i: int, j: int) -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {n: [] for n in range(i, j)}
    for n in range(i, j):
        p = parent[n]
        if p >= 0:
            if not i <= p < n:
                raise ValueError(f"node {n}'s parent {p} is not an earlier node of its sequence")
            kids[p].append(n)
        elif n != i:
            raise ValueError(f"node {n} has no parent but is not its sequence's first node")
    return kids


def _accept_shape(ts, a):
    logits, tokens, _parent, _seq, draft_q, sampling, seed = ts
    if logits.rank != 3 or tokens.rank != 2 or not dims_equal(logits.shape[1], tokens.shape[1]):
        raise IRError(f"kiln.tree_accept: logits [1, N, V] and tokens [1, N] disagree: {logits} / {tokens}")
    if draft_q.rank != 2 or sampling.shape != (3,) or seed.shape != (1,):
        raise IRError("kiln.tree_accept: expects draft_q [N, V or 0], sampling [3] and seed [1]")
    n = tokens.shape[1]
    return [TensorType(DType.i64, (n,)), TensorType(DType.i64, (n,))]


def _accept_ref(ctx, logits, tokens, parent, seq, draft_q, sampling, seed):
    """Per sequence, from the root: greedy accepts the child whose token is the argmax; sampling tries
    the children in order, accepting child c with probability min(1, p(t_c) / q_c(t_c)) and otherwise
    replacing p by the normalised residual max(p - q_c, 0) (q_c one-hot when draft_q has no columns).
    The node where the walk stops gets the next token: the argmax, or a sample of the last p."""
    temperature, top_p, top_k = float(sampling[0]), float(sampling[1]), int(sampling[2])
    n = tokens.shape[1]
    accepted = torch.zeros(n, dtype=torch.long)
    nxt = torch.full((n,), -1, dtype=torch.long)
    toks, par = tokens[0].tolist(), parent.tolist()
    gen = torch.Generator().manual_seed(int(seed[0]))
    one_hot = draft_q.shape[1] == 0
    for _, i, j in seq_runs(seq.tolist()):
        kids = _children(par, i, j)
        u = i
        accepted[u] = 1
        while True:
            row = logits[0, u]
            if temperature == 0:
                best = int(row.argmax())
                hit = next((c for c in kids[u] if toks[c] == best), None)
                if hit is None:
                    nxt[u] = best
                    break
                u = hit
            else:
                p = filtered_probs(row, temperature, top_k, top_p)
                hit = None
                for c in kids[u]:
                    t = toks[c]
                    q = None if one_hot else draft_q[c].float()
                    qt = 1.0 if q is None else float(q[t])
                    if qt > 0 and float(torch.rand((), generator=gen)) * qt < float(p[t]):
                        hit = c
                        break
                    resid = p.clone()
                    if q is None:
                        resid[t] = 0
                    else:
                        resid = (resid - q).clamp_min(0)
                    if float(resid.sum()) > 0:  # p == q: no residual mass, keep p (never sampled from)
                        p = resid / resid.sum()
                if hit is None:
                    nxt[u] = int(torch.multinomial(p, 1, generator=gen))
                    break
                u = hit
            accepted[u] = 1
    return [accepted, nxt]


declare("kiln.tree_accept",
        "The accept step: per sequence, walk the tree of packed nodes (`parent` [N], -1 at each root) "
        "from its root with the target's logits [1, N, V]; `sampling` = (temperature, top_p, top_k), "
        "temperature 0 is greedy; `draft_q` [N, V] is each node's draft distribution ([N, 0]: one-hot). "
        "Results: accepted [N] (1 on the accepted path, root included) and next [N] (the new token at "
        "the node where the walk stopped, -1 elsewhere).",
        operands=("logits", "tokens", "parent", "seq", "draft_q", "sampling", "seed"),
        traits=("pure", "speculative"), shape=_accept_shape, reference=_accept_ref)


def _commit_shape(ts, a):
    cache, _accepted, slot, _pos, seq, table = ts
    if cache.rank == 4:  # an int8 cache's scales [L, NB, KVH, BS] move with its rows
        cache = TensorType(cache.dtype, (*cache.shape, 1))
    check_cache_operands("kiln.cache_commit", cache, TensorType(cache.dtype, (1, 1, "N", 1)), slot, seq, table)
    return [ts[0]]


def _commit_ref(ctx, cache, accepted, slot, pos, seq, table):
    keep = accepted.nonzero().flatten()
    src, dst = slot[keep], pos[keep]
    move = src != dst
    if bool(move.any()):
        src, dst, s = src[move], dst[move], seq[keep][move]
        bs = cache.shape[3]
        # accepted nodes in packed order have increasing depth, and depth <= index: every source is
        # read before a later move can overwrite it, so one gather-then-scatter is safe
        rows = cache[:, table[s, torch.div(src, bs, rounding_mode="floor")], :, src % bs].clone()
        cache[:, table[s, torch.div(dst, bs, rounding_mode="floor")], :, dst % bs] = rows
    return cache


declare("kiln.cache_commit",
        "Move the keys or values of the accepted nodes (accepted [N] != 0) of every layer from their `slot` "
        "to their position `pos`, in place; the result is the cache. Also takes an int8 cache's scales "
        "[L, NB, KVH, BS].",
        operands=("cache", "accepted", "slot", "pos", "seq", "table"),
        traits=("inplace", "writes-cache", "speculative"), shape=_commit_shape, reference=_commit_ref)


# ---------------------------------------------------------------------------
# the fused round of a model drafter (the ``spec_step`` program)


def _pick_shape(ts, a):
    logits, sampling, seed = ts
    if logits.rank != 3 or not dims_equal(logits.shape[0], 1):
        raise IRError(f"kiln.draft_pick: logits must be [1, B, V], got {logits}")
    if sampling.shape != (3,) or seed.shape != (1,):
        raise IRError(f"kiln.draft_pick: expects sampling [3] and seed [1], got {sampling}, {seed}")
    b, v = logits.shape[1], logits.shape[2]
    return [TensorType(DType.i64, (b,)), TensorType(DType.f32, (b, v))]


def _pick_ref(ctx, logits, sampling, seed, *, step):
    temperature, top_p, top_k = float(sampling[0]), float(sampling[1]), int(sampling[2])
    rows = logits[0]
    if temperature == 0:
        return [rows.argmax(-1), torch.zeros(rows.shape, dtype=torch.float32)]
    q = filtered_probs(rows, temperature, top_k, top_p)
    gen = torch.Generator().manual_seed((int(seed[0]) + 7919 * step) % 2**63)
    return [torch.multinomial(q, 1, generator=gen).squeeze(-1), q.float()]


declare("kiln.draft_pick",
        "A draft model's token per sequence from its logits [1, B, V]: the argmax when `sampling`'s "
        "temperature is 0, else a sample of the filtered distribution (seeded by `seed` and `step`). "
        "Results: tokens [B] and the distribution q [B, V] drawn from (zeros when greedy).",
        operands=("logits", "sampling", "seed"), attrs={"step": int}, traits=("pure", "speculative"),
        shape=_pick_shape, reference=_pick_ref)


def _chain_shape(ts, a):
    k = a["k"]
    if not 1 <= k <= MAX_DRAFT:
        raise IRError(f"kiln.chain_tree: k = {k} drafted tokens is outside [1, {MAX_DRAFT}]")
    roots, root_pos, seqs = ts[0], ts[1], ts[2]
    toks, qs = ts[3:3 + k], ts[3 + k:]
    if len(toks) != k or len(qs) != k:
        raise IRError(f"kiln.chain_tree: expects roots, root_pos, seqs, {k} token and {k} q tensors")
    b = roots.shape[0]
    for t in (root_pos, seqs, *toks):
        if t.rank != 1 or not dims_equal(t.shape[0], b):
            raise IRError(f"kiln.chain_tree: every per-sequence operand must be [{b}], got {t}")
    v = qs[0].shape[1]
    n = f"{k + 1}*{b}" if isinstance(b, str) else (k + 1) * b
    n = canon_dim(n) if isinstance(n, str) else n
    i64 = DType.i64
    return [TensorType(i64, (1, n)), TensorType(i64, (n,)), TensorType(i64, (n,)), TensorType(i64, (n,)),
            TensorType(DType.i1, (n, n)), TensorType(i64, (n,)), TensorType(DType.f32, (n, v))]


def _chain_ref(ctx, roots, root_pos, seqs, *rest, k):
    toks, qs = rest[:k], rest[k:]
    b = roots.shape[0]
    nodes = torch.stack([roots, *toks], dim=1)  # [B, k + 1], sequence-major when flattened
    depth = torch.arange(k + 1)
    pos = (root_pos[:, None] + depth[None, :]).reshape(-1)
    seq = seqs[:, None].expand(b, k + 1).reshape(-1)
    parent = (torch.arange(b)[:, None] * (k + 1) + depth[None, :] - 1).reshape(-1)
    parent[:: k + 1] = -1
    block = torch.ones(k + 1, k + 1, dtype=torch.bool).tril()
    mask = torch.block_diag(*([block] * b)) if b else torch.zeros(0, 0, dtype=torch.bool)
    q = torch.stack([torch.zeros_like(qs[0]), *qs], dim=1).reshape(b * (k + 1), -1)
    return [nodes.reshape(1, -1), pos, seq, pos.clone(), mask, parent, q]


declare("kiln.chain_tree",
        "Pack each sequence's root token and its `k` drafted tokens (operands: roots [B], root_pos [B], "
        "seqs [B], then k token tensors [B] and k draft distributions [B, V]) as a chain per sequence for "
        "verification: ids [1, N], pos [N], seq [N], slot [N] (= pos), tree mask [N, N] (lower-triangular "
        "per sequence), parent [N] and draft_q [N, V], N = (k + 1) B.",
        operands=("roots", "root_pos", "seqs", "tokens*k", "draft_q*k"), attrs={"k": int},
        min_operands=3 + 2, max_operands=3 + 2 * MAX_DRAFT,
        traits=("pure", "speculative"), shape=_chain_shape, reference=_chain_ref)
