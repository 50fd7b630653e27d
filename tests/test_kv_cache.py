"""The kv-cache pass and the cached runtime: token-identical greedy decoding against transformers for
every family, both layouts, batch 1 and a batch of prompts of different lengths; chunked prefill;
the allocator's refusals; stop tokens and streaming."""

from __future__ import annotations

import pytest
import torch
from _compare import assert_sequence_match

import kiln
from kiln.errors import KilnError
from kiln.ir.printer import print_module
from kiln.ir.verifier import verify_module
from kiln.passes.manager import PIPELINES, PassManager, parse_passes, pipeline_passes
from kiln.runtime.artifact import Artifact

FAMILIES = ["llama-tiny", "llama3-tiny", "mistral-tiny", "qwen2-tiny", "gpt2-tiny"]
PAGED = "kv-cache{layout=paged,block_size=8}"


def _artifact(imported, preset: str, passes: list[str] | None = None) -> Artifact:
    imp = imported(preset)
    module = imp.module.clone()
    pm = pipeline_passes("default")
    if passes is not None:
        pm = parse_passes(passes)
    PassManager(pm, verify=True).run(module)
    manifest = {"source": {"model": f"preset:{preset}", "family": imp.loaded.family, "seed": 0},
                "model": dict(module.meta), "pipeline": {"name": "test", "passes": []}, "passes": [],
                "target": "cpu"}
    return Artifact(module, manifest, dict(imp.loaded.tokenizer_files), [])


def _runtime(imported, preset: str, layout: str, **kw):
    if layout == "contiguous":
        return _artifact(imported, preset).runtime()
    base = [p for p in pipeline_passes("default")]
    names = [type(p).name for p in base if type(p).name != "kv-cache"] + [PAGED]
    art = _artifact(imported, preset, names)
    from kiln.runtime.generate import Runtime

    return Runtime(art, **kw)


def _prompts(n_list, seed=3, vocab=500):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in n_list]


def _hf_greedy(model, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt])
    # no eos: generation runs n tokens without suppressing any (min_new_tokens would mask eos out)
    eos, model.generation_config.eos_token_id = model.generation_config.eos_token_id, None
    try:
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=0,
                                 attention_mask=torch.ones_like(ids))
    finally:
        model.generation_config.eos_token_id = eos
    return out[0].tolist()


@pytest.mark.parametrize("preset", FAMILIES)
def test_greedy_matches_hf_both_layouts_batch_1_and_3(import_preset, preset):
    model = import_preset(preset).loaded.model
    prompts = _prompts([5, 23, 11])
    refs = [_hf_greedy(model, p, 64) for p in prompts]
    hf = lambda ids: model(input_ids=ids).logits
    # greedy tokens identical to transformers' except where its two best logits nearly tie (tests/_compare.py)
    for layout in ("contiguous", "paged"):
        rt = _runtime(import_preset, preset, layout)
        single = rt.generate([prompts[0]], max_new_tokens=64, stop_at_eos=False)[0]
        assert_sequence_match(refs[0], single, len(prompts[0]), hf, rt.logits)
        batch = rt.generate(prompts, max_new_tokens=64, stop_at_eos=False)
        assert len(batch) == 3
        for i in range(3):
            assert_sequence_match(refs[i], batch[i], len(prompts[i]), hf, rt.logits)


def test_paged_and_contiguous_give_identical_tokens_also_when_sampling(import_preset):
    prompts = _prompts([9, 30, 2], seed=7)
    a = _runtime(import_preset, "llama-tiny", "contiguous")
    b = _runtime(import_preset, "llama-tiny", "paged")
    kw = {"max_new_tokens": 40, "stop_at_eos": False}
    assert a.generate(prompts, **kw) == b.generate(prompts, **kw)
    kw.update(temperature=0.9, top_p=0.95, seed=5)
    assert a.generate(prompts, **kw) == b.generate(prompts, **kw)


def test_prefill_logits_match_forward_and_chunking_changes_nothing(import_preset):
    prompts = _prompts([37, 12, 20], seed=1)
    whole = _runtime(import_preset, "qwen2-tiny", "paged")
    chunked = _runtime(import_preset, "qwen2-tiny", "paged", prefill_chunk=5)
    for rt in (whole, chunked):  # later chunks' queries start past position 0: their causal mask is checked too
        k, v = rt.kv.tensors()
        blocks = rt.kv.reserve([len(p) for p in prompts])
        last = rt.prefill_logits(prompts, k, v, rt.kv.table(blocks))
        rt.kv.release(blocks)
        for i, p in enumerate(prompts):
            ref = whole.logits(torch.tensor([p]))[0, -1]
            assert torch.allclose(last[i], ref, atol=1e-5, rtol=1e-5), (rt.prefill_chunk, i)
    kw = {"max_new_tokens": 30, "stop_at_eos": False}
    assert whole.generate(prompts, **kw) == chunked.generate(prompts, **kw)


def test_dump_shows_the_cache_layout_and_ops(import_preset):
    art = _artifact(import_preset, "llama-tiny", ["fuse-qkv", PAGED])
    verify_module(art.module)
    text = print_module(art.module)
    assert set(art.module.programs) == {"forward", "prefill", "decode"}
    assert 'layout = "paged"' in text and '"kiln.cache_attention"' in text and '"kiln.cache_write"' in text
    assert art.module.meta["kv_cache"]["block_size"] == 8
    for name in ("prefill", "decode"):
        names = [op.name for op in art.module[name].ops]
        assert "kiln.attention" not in names and "kiln.positions" not in names
        assert names.count("kiln.cache_attention") == 2 and names.count("kiln.cache_write") == 4
    assert "kiln.gather" in [op.name for op in art.module["prefill"].ops]


def test_artifact_round_trip_keeps_the_cache_programs(tmp_path, import_preset):
    art = _artifact(import_preset, "gpt2-tiny", [PAGED])
    art.manifest.update({"kiln_version": "0", "format_version": 1})
    art.save(tmp_path / "a.kiln")
    rt = kiln.load(tmp_path / "a.kiln").runtime()
    assert rt.kv is not None and rt.kv.layout == "paged"
    prompts = _prompts([4, 9])
    assert rt.generate(prompts, max_new_tokens=12, stop_at_eos=False) == \
        art.runtime().generate(prompts, max_new_tokens=12, stop_at_eos=False)


def test_allocator_refuses_what_does_not_fit_and_recovers(import_preset):
    from kiln.runtime.generate import Runtime

    art = _artifact(import_preset, "llama-tiny")
    rt = Runtime(art, cache_tokens=2 * art.module.meta["max_positions"])  # two contiguous rows
    with pytest.raises(KilnError, match="does not fit the KV cache"):
        rt.generate(_prompts([3, 3, 3]), max_new_tokens=4)
    assert len(rt.kv.free) == 2  # nothing leaked by the refusal
    assert len(rt.generate(_prompts([3, 3]), max_new_tokens=4, stop_at_eos=False)[1]) == 7

    paged = _runtime(import_preset, "llama-tiny", "paged", cache_tokens=64)  # 8 blocks of 8
    with pytest.raises(KilnError, match="need 10 blocks"):
        paged.generate(_prompts([30, 30]), max_new_tokens=6)  # 2 x ceil(35 / 8) = 10 > 8
    out = paged.generate(_prompts([30, 20]), max_new_tokens=3, stop_at_eos=False)  # 4 + 3 blocks fit
    assert [len(o) for o in out] == [33, 23] and len(paged.kv.free) == 8


def test_stop_tokens_end_one_sequence_and_the_rest_go_on(import_preset):
    rt = _runtime(import_preset, "llama-tiny", "paged")
    prompts = _prompts([6, 14], seed=11)
    free = rt.generate(prompts, max_new_tokens=20, stop_at_eos=False)
    stop = free[0][len(prompts[0]) + 4]  # the 5th new token of the first sequence
    out = rt.generate(prompts, max_new_tokens=20, stop_at_eos=False, stop_ids=[stop])
    first = free[0][len(prompts[0]):].index(stop)
    assert out[0] == free[0][:len(prompts[0]) + first + 1]
    if stop not in free[1][len(prompts[1]):]:
        assert out[1] == free[1]


def test_stream_yields_what_generate_returns(import_preset):
    rt = _runtime(import_preset, "mistral-tiny", "contiguous")
    prompts = _prompts([8, 3], seed=2)
    steps = list(rt.stream_batch(prompts, max_new_tokens=10, stop_at_eos=False))
    got = [p + [s[i] for s in steps] for i, p in enumerate(prompts)]
    assert got == rt.generate(prompts, max_new_tokens=10, stop_at_eos=False)


def test_runtime_bad_requests(import_preset):
    rt = _runtime(import_preset, "llama-tiny", "contiguous")
    ctx = rt.max_positions
    with pytest.raises(KilnError, match="exceed the model's context"):
        rt.generate([[5] * (ctx + 1)], max_new_tokens=1)
    with pytest.raises(KilnError, match="exceeds the model's context"):
        rt.generate([[5, 6]], max_new_tokens=ctx)
    with pytest.raises(KilnError, match="temperature"):
        rt.generate([[5, 6]], temperature=-1)
    with pytest.raises(KilnError, match="top-p"):
        rt.generate([[5, 6]], top_p=0)
    with pytest.raises(KilnError, match="top-p"):
        rt.generate([[5, 6]], top_p=1.5)
    with pytest.raises(KilnError, match="prompts must be"):
        rt.generate([], max_new_tokens=3)


def test_kv_cache_pass_options_are_checked(import_preset):
    with pytest.raises(KilnError, match="layout"):
        _artifact(import_preset, "llama-tiny", ["kv-cache{layout=ring}"])
    with pytest.raises(KilnError, match="block_size"):
        _artifact(import_preset, "llama-tiny", ["kv-cache{layout=paged,block_size=0}"])


def test_a_tampered_cache_description_is_refused(tmp_path, import_preset):
    import json

    art = _artifact(import_preset, "llama-tiny")
    art.manifest.update({"kiln_version": "0", "format_version": 1})
    art.save(tmp_path / "a.kiln")
    path = tmp_path / "a.kiln" / "manifest.json"
    m = json.loads(path.read_text())
    info = m["model"]["kv_cache"]
    info["layers"] = 99
    path.write_text(json.dumps(m))
    with pytest.raises(KilnError, match="bytes_per_token = .* imply"):  # sizes disagree with each other
        kiln.load(tmp_path / "a.kiln")
    info["bytes_per_token"] = info["bytes_per_token"] // 2 * 99  # consistent sizes, but not the IR's
    path.write_text(json.dumps(m))
    with pytest.raises(KilnError, match="does not take the KV cache"):
        kiln.load(tmp_path / "a.kiln").runtime()
    for key, bad in (("head_dim", None), ("block_size", 0), ("layers", 10**9), ("layout", "ring"), ("dtype", "i64")):
        broken = json.loads(json.dumps(m))
        broken["model"]["kv_cache"][key] = bad
        path.write_text(json.dumps(broken))
        with pytest.raises(KilnError, match=f"kv_cache.{key}"):
            kiln.load(tmp_path / "a.kiln")


def test_a_stream_closed_early_gives_its_cache_back(import_preset):
    rt = _runtime(import_preset, "llama-tiny", "paged", cache_tokens=64)
    it = rt.stream_batch(_prompts([20, 20]), max_new_tokens=10, stop_at_eos=False)
    next(it)
    assert len(rt.kv.free) < rt.kv.n_blocks
    it.close()
    assert len(rt.kv.free) == rt.kv.n_blocks
    with pytest.raises(RuntimeError, match="consumer"):
        for _ in rt.stream_batch(_prompts([20]), max_new_tokens=10, stop_at_eos=False):
            raise RuntimeError("consumer failed")
    assert len(rt.kv.free) == rt.kv.n_blocks


def test_writes_beyond_a_reservation_fail_instead_of_corrupting(import_preset):
    rt = _runtime(import_preset, "llama-tiny", "paged", cache_tokens=64)
    k, v = rt.kv.tensors()
    blocks = rt.kv.reserve([8, 16])  # 1 and 2 blocks: row 0's second column is padding
    table = rt.kv.table(blocks)
    assert int(table[0, 1]) == rt.kv.n_blocks
    from kiln.codegen.cpu import ExecError

    with pytest.raises((ExecError, IndexError)):
        rt.decode_prog(torch.tensor([[5]]), torch.tensor([8]), torch.tensor([0]), table, k, v)
    rt.kv.release(blocks)


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_quantized_prefill_projects_only_the_picked_rows_and_matches_forward(import_preset, fmt):
    # the vocabulary projection runs on the rows prefill returns, also when the lm_head is quantized
    art = _artifact(import_preset, "llama-tiny", PIPELINES[fmt][1])
    prefill = art.module["prefill"]
    head = prefill.outputs[0].owner
    assert head.name == "kiln.qlinear" and head.operand("x").owner.name == "kiln.gather"
    rt = art.runtime()
    prompts = _prompts([9, 17], seed=3)
    k, v = rt.kv.tensors()
    blocks = rt.kv.reserve([len(p) for p in prompts])
    last = rt.prefill_logits(prompts, k, v, rt.kv.table(blocks))
    rt.kv.release(blocks)
    for i, p in enumerate(prompts):
        assert torch.allclose(last[i], rt.logits(torch.tensor([p]))[0, -1], atol=1e-4, rtol=1e-4), i
