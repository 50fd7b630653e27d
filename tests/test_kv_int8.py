"""The int8 KV cache against an independent statement of its format (docs/quantization.md), bit for bit.

Per token and kv head, over the head dim: scale = max|row| / 127 (float32), code = round(row / scale)
with ties to even, clamped to [-127, 127]. The reference below is written with numpy and never calls
kiln's quantizer; it is compared exactly (codes and scales) with what the cache-write op stores, with
what a compiled int8-kv runtime's prefill and decode leave in the cache, and with the fake
quantization of the full-sequence program.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kiln
from kiln.ir import ExecContext, lookup

CTX = ExecContext()


def int8_rows(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(codes int8 [..., D], scales float32 [...]) of rows with a nonzero maximum."""
    a = x.detach().float().numpy()
    s = (np.abs(a).max(axis=-1) / np.float32(127.0)).astype(np.float32)
    assert (s > 0).all(), "the format's scale of an all-zero row is not pinned down by the docs"
    q = np.clip(np.rint(a / s[..., None]), -127, 127)  # np.rint: round half to even
    return q.astype(np.int8), s


def test_the_reference_rounds_ties_to_even():
    # a row whose maximum is 127 has scale 1 exactly, so x / scale is x: halves are ties
    row = torch.tensor([[127.0, 2.5, -3.5, 0.5, -0.5, 1.5, 126.5, -127.0]])
    q, s = int8_rows(row)
    assert s.tolist() == [1.0] and q.tolist() == [[127, 2, -4, 0, 0, 2, 126, -127]]


def _cache_case(layout: str, g: torch.Generator):
    layers, kvh, d = 2, 3, 8
    bs, mb = (4, 5) if layout == "paged" else (20, 1)
    nb = 2 * mb + 2
    cache = torch.zeros(layers, nb, kvh, bs, d, dtype=torch.int8)
    scales = torch.zeros(layers, nb, kvh, bs)
    table = torch.randperm(nb, generator=g)[: 2 * mb].view(2, mb)
    pos = torch.tensor([0, 1, 2, 3, 4, 5, 13, 6, 7, 8, 19])
    seq = torch.tensor([0] * 7 + [1] * 4)
    x = torch.randn(1, kvh, len(pos), d, generator=g) * torch.rand(1, kvh, len(pos), 1, generator=g) * 3
    # ties: rows whose maximum is 127, so that codes are exactly x, with halves in between
    x[0, 0, 0] = torch.tensor([127.0, 2.5, -3.5, 0.5, -0.5, 1.5, 126.5, -1.0])
    x[0, 1, 3] = torch.tensor([-127.0, 0.5, 1.5, 2.5, 3.5, -4.5, -5.5, 6.5])
    return cache, scales, x, pos, seq, table


@pytest.mark.parametrize("layout", ["contiguous", "paged"])
def test_cache_write_q8_stores_the_documented_codes_and_scales(layout):
    g = torch.Generator().manual_seed(0)
    cache, scales, x, pos, seq, table = _cache_case(layout, g)
    before_c, before_s = cache.clone(), scales.clone()
    d = lookup("kiln.cache_write_q8")
    out_c, out_s = d.reference(CTX, cache, scales, x, pos, seq, table, layer=1, layout=layout)
    assert out_c.dtype == torch.int8 and out_s.dtype == torch.float32
    q, s = int8_rows(x[0].transpose(0, 1))  # [N, KVH, D], [N, KVH]
    bs = cache.shape[3]
    written = torch.zeros(cache.shape[:4], dtype=torch.bool)
    for i, (p, r) in enumerate(zip(pos.tolist(), seq.tolist())):
        blk, off = int(table[r, p // bs]), p % bs
        assert np.array_equal(out_c[1, blk, :, off].numpy(), q[i]), f"token {i}: codes"
        assert np.array_equal(out_s[1, blk, :, off].numpy(), s[i]), f"token {i}: scales"
        written[1, blk, :, off] = True
    # nothing else moved (layer 0, other blocks, other offsets)
    assert torch.equal(out_c[~written], before_c[~written]) and torch.equal(out_s[~written], before_s[~written])
    # and the ties went to even
    blk0 = int(table[0, 0])
    assert out_c[1, blk0, 0, 0].tolist() == [127, 2, -4, 0, 0, 2, 126, -1]


def test_fake_quant_int8_is_the_documented_round_trip():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 7, 16, generator=g) * 0.7
    got = lookup("kiln.fake_quant_int8").reference(CTX, x)
    q, s = int8_rows(x)
    want = torch.from_numpy(q.astype(np.float32) * s[..., None])
    assert got.dtype == x.dtype and torch.equal(got, want)


_ARTS: dict[str, object] = {}


def _runtime(pipeline: str):
    if pipeline not in _ARTS:
        _ARTS[pipeline] = kiln.compile("llama-tiny", pipeline=pipeline)
    return _ARTS[pipeline].runtime()


def _fill(rt, prompts, nxt):
    """Prefill ``prompts``, then one decode step of the tokens ``nxt``; the cache tensors and table."""
    blocks = rt.kv.reserve([len(p) + 1 for p in prompts])
    kc, vc = rt.kv.tensors()
    table = rt.kv.table(blocks)
    rt.prefill_logits(prompts, kc, vc, table)
    i64 = lambda v: torch.tensor(v, dtype=torch.long)
    rt.decode_prog(i64([nxt]), i64([len(p) for p in prompts]), i64(list(range(len(prompts)))), table, *rt.kv.args())
    return rt.kv.args(), table, blocks


def test_an_int8_kv_runtime_caches_the_documented_quantization_of_its_float_keys_and_values():
    # layer 0's keys and values come straight from the embeddings, so the float runtime's cache holds
    # exactly the rows the int8 runtime quantizes (the programs differ only in the cache ops; later layers
    # see attention over dequantized rows): every layer-0 row must be their reference quantization, bit for
    # bit, in prefill and decode
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(3, 500, (n,), generator=g).tolist() for n in (13, 6)]
    nxt = torch.randint(3, 500, (2,), generator=g).tolist()
    f_rt, q_rt = _runtime("default"), _runtime("int8-kv")
    assert not f_rt.kv.scaled and q_rt.kv.scaled
    (fk, fv), f_table, f_blocks = _fill(f_rt, prompts, nxt)
    (qk, qv, ks, vs), q_table, q_blocks = _fill(q_rt, prompts, nxt)
    assert qk.dtype == torch.int8 and ks.dtype == torch.float32 and fk.dtype == torch.float32
    bs_f, bs_q = fk.shape[3], qk.shape[3]
    rows = 0
    for r, p in enumerate(prompts):
        for t in range(len(p) + 1):  # the prompt and the decoded token
            fb, fo = int(f_table[r, t // bs_f]), t % bs_f
            qb, qo = int(q_table[r, t // bs_q]), t % bs_q
            for floats, codes, scales in ((fk, qk, ks), (fv, qv, vs)):
                want_q, want_s = int8_rows(floats[0, fb, :, fo])  # [KVH, D], [KVH]
                assert np.array_equal(codes[0, qb, :, qo].numpy(), want_q), f"sequence {r}, position {t}: codes"
                assert np.array_equal(scales[0, qb, :, qo].numpy(), want_s), f"sequence {r}, position {t}: scales"
                rows += want_s.size
    assert rows == 2 * 2 * (len(prompts[0]) + len(prompts[1]) + 2)  # K and V, 2 kv heads
    f_rt.kv.release(f_blocks)
    q_rt.kv.release(q_blocks)
