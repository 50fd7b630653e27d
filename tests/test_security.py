"""The artifact threat model (docs/security.md): a tampered artifact, with every hash recomputed as an
attacker would, cannot reach the file system, run an unlisted generic op, or make kiln allocate
beyond the machine; signing refuses artifacts built without the deployment's key."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import pytest
import torch
from _cli import assert_one_error as _one_error
from _cli import run_cli as _run

import kiln
from kiln.errors import KilnError
from kiln.ir.core import IRError
from kiln.ir.printer import print_module
from kiln.ir.types import DType, Ref, Sym, TensorType


def _rehash(art_dir, manifest=None):
    """Recompute every hash in the manifest, as an attacker who edited the artifact would."""
    m = manifest or json.loads((art_dir / "manifest.json").read_text())
    for rel in m["files"]:
        m["files"][rel] = hashlib.sha256((art_dir / rel).read_bytes()).hexdigest()
    (art_dir / "manifest.json").write_text(json.dumps(m))
    return m


def _inject(art_dir, target, args, kwargs=None, result=None, list_in_manifest=True, programs=("forward",)):
    """Add a kiln.aten op at the end of the artifact's programs and recompute the hashes."""
    art = kiln.load(art_dir)
    for name in programs or art.module.programs:
        p = art.module[name]
        p.create("kiln.aten", [p.outputs[0]], {"target": target, "args": args, "kwargs": kwargs or {}},
                 [result or TensorType(DType.f32, (4,))])
    (art_dir / "ir/module.mlir").write_text(print_module(art.module))
    m = json.loads((art_dir / "manifest.json").read_text())
    if list_in_manifest:
        m["generic_ops"] = {**m.get("generic_ops", {}), target: 1}
    _rehash(art_dir, m)


@pytest.fixture
def art_copy(tiny_artifact, tmp_path):
    d = tmp_path / "copy.kiln"
    shutil.copytree(tiny_artifact, d)
    return d


# -- 1. the generic-op allowlist -------------------------------------------------------------------

FORBIDDEN = [  # (target, args, kwargs, what the refusal says): one per forbidden class
    ("aten::from_file.default", ["{victim}", True, 64], {}, "allowlist"),  # maps a named file
    ("aten::copy_.default", [Ref(0), Ref(0)], {}, "allowlist"),  # in-place on an operand
    ("aten::add_.Tensor", [Ref(0), Ref(0)], {}, "allowlist"),
    ("aten::add.out", [Ref(0), Ref(0)], {"out": Ref(0)}, "writes to its argument 'out'"),  # out= variant
    ("aten::rand.default", [[4]], {}, "allowlist"),  # random
    ("aten::normal.float_float", [0.0, 1.0, [4]], {}, "allowlist"),
    ("aten::empty.memory_format", [[4]], {}, "allowlist"),  # uninitialised memory
    ("aten::_print.default", ["{victim}"], {}, "allowlist"),
    ("aten::gelu.default", [Ref(0)], {"approximate": "{victim}"}, "strings only"),  # a path where a string goes
    ("aten::add.Tensor", ["{victim}", Ref(0)], {}, "strings only"),
    ("aten::add.Tensor", [Ref(0), Ref(0)], {"bogus": 1}, "no argument named"),
    ("aten::mul.Scalar", [Ref(0), 2 ** 70], {}, "int64"),  # the parser or the allowlist refuses it
    ("aten::sum.default", [[Ref(0)]], {}, "is a list"),
]


@pytest.mark.parametrize("target,args,kwargs,message", FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_a_tampered_artifact_cannot_run_forbidden_generic_ops(art_copy, tmp_path, capsys, target, args, kwargs,
                                                              message):
    victim = tmp_path / "victim.bin"

    def fill(a):
        if isinstance(a, list):
            return [fill(x) for x in a]
        return str(victim) if a == "{victim}" else a

    _inject(art_copy, target, fill(args), {k: fill(v) for k, v in kwargs.items()})
    with pytest.raises(KilnError, match=message):
        kiln.load(art_copy)
    code, out, err = _run(capsys, "run", art_copy, "--prompt", "hi", "--max-new-tokens", "2")
    _one_error(code, err, message)
    assert out == "" and not victim.exists()


def test_generic_ops_the_manifest_does_not_list_are_refused(art_copy):
    _inject(art_copy, "aten::mish.default", [Ref(0)], list_in_manifest=False,
            result=TensorType(DType.f32, ("B", "T", 512)))
    with pytest.raises(KilnError, match="its manifest lists"):
        kiln.load(art_copy)


def test_a_listed_allowed_generic_op_still_loads_and_runs(art_copy):
    _inject(art_copy, "aten::mish.default", [Ref(0)], result=TensorType(DType.f32, ("B", "T", 512)))
    rt = kiln.load(art_copy).runtime()
    assert rt.logits(torch.tensor([[1, 2, 3]])).shape == (1, 3, 512)


def test_size_arguments_cannot_allocate_beyond_the_declared_result(art_copy, capsys):
    """A creation op whose size argument disagrees with its declared result is stopped by the dry run on
    meta tensors, before any memory is touched."""
    _inject(art_copy, "aten::zeros.default", [[1 << 20, 1 << 20]], {"dtype": DType.f32}, programs=None)
    rt = kiln.load(art_copy).runtime()
    with pytest.raises(IRError, match=r"would return \(1048576, 1048576\).*declares \(4,\)"):
        rt.logits(torch.tensor([[1, 2, 3]]))
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi", "--max-new-tokens", "1")
    _one_error(code, err, "would return (1048576, 1048576)")


def test_a_huge_declared_result_is_refused_before_allocation(art_copy, capsys):
    _inject(art_copy, "aten::zeros.default", [[1 << 20, 1 << 20]], {"dtype": DType.f32},
            result=TensorType(DType.f32, (1 << 20, 1 << 20)), programs=None)
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi", "--max-new-tokens", "1")
    _one_error(code, err, "would need 4.0 TiB")


def test_every_allowed_name_is_a_real_functional_aten_op():
    from kiln.ir.aten_policy import ALLOWED

    for name in sorted(ALLOWED):
        packet = getattr(torch.ops.aten, name)
        assert packet.overloads(), name
        assert not name.endswith("_"), name


def test_the_frontend_refuses_a_model_whose_leftover_op_is_not_allowed(monkeypatch, tmp_path):
    """What kiln cannot lift and may not run generically is refused at compile time, naming the op."""
    from kiln.ir import aten_policy

    monkeypatch.setattr(aten_policy, "ALLOWED", aten_policy.ALLOWED - {"mish"})
    monkeypatch.setattr(aten_policy, "_PASSED", set())  # forget checks passed under the full allowlist
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=100, max_position_embeddings=64, hidden_act="mish")
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    with pytest.raises(KilnError, match="uses aten::mish.default, which kiln neither lifts .* allowlist"):
        kiln.compile(str(tmp_path))


# -- 2. resource bounds -----------------------------------------------------------------------------

def _edit_manifest(art_dir, fn):
    m = json.loads((art_dir / "manifest.json").read_text())
    fn(m)
    (art_dir / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("key,value", [("max_positions", 10 ** 12), ("max_positions", 0), ("max_positions", -1),
                                       ("vocab_size", 10 ** 9), ("vocab_size", 7)])
def test_absurd_model_sizes_in_a_manifest_are_refused(art_copy, capsys, key, value):
    _edit_manifest(art_copy, lambda m: m["model"].__setitem__(key, value))
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _one_error(code, err, f"model.{key}")


@pytest.mark.parametrize("key,value", [("block_size", 0), ("bytes_per_token", 0), ("head_dim", 0),
                                       ("layers", 10 ** 12), ("block_size", 10 ** 12)])
def test_zero_or_absurd_cache_sizes_are_refused(art_copy, capsys, key, value):
    _edit_manifest(art_copy, lambda m: m["model"]["kv_cache"].__setitem__(key, value))
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _one_error(code, err, "kv_cache")


def test_a_huge_cache_flag_is_refused_with_what_it_needs_and_what_there_is(tiny_artifact, capsys):
    code, _, err = _run(capsys, "run", tiny_artifact, "--prompt", "hi", "--cache-tokens", 10 ** 12)
    _one_error(code, err, "would need")
    assert "available" in err


def test_the_default_cache_shrinks_to_the_memory_there_is(tiny_artifact, monkeypatch):
    art = kiln.load(tiny_artifact)
    full = art.runtime().kv
    per_token = full.bytes_per_token
    monkeypatch.setenv("KILN_MEMORY_LIMIT", str(per_token * full.max_positions * 2))
    small = art.runtime().kv
    if small.layout == "paged":
        assert small.capacity_tokens < full.capacity_tokens
    assert small.nbytes <= 0.9 * per_token * full.max_positions * 2
    out = art.runtime().generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4)
    assert out.shape == (1, 7)


def test_a_machine_too_small_for_one_context_is_told_so(tiny_artifact, monkeypatch):
    art = kiln.load(tiny_artifact)
    monkeypatch.setenv("KILN_MEMORY_LIMIT", "1000")
    with pytest.raises(KilnError, match=r"KV cache .* would need .* only 1000 B of memory is available"):
        art.runtime()


def test_weights_are_checked_against_memory_before_they_are_read(tiny_artifact, monkeypatch, capsys):
    monkeypatch.setenv("KILN_MEMORY_LIMIT", "1000")
    code, _, err = _run(capsys, "run", tiny_artifact, "--prompt", "hi")
    _one_error(code, err, "the weights of")


@pytest.mark.parametrize("value", ["8G", "1e9", " 100", "-5"])
def test_a_malformed_memory_limit_is_an_error_not_ignored(tiny_artifact, monkeypatch, capsys, value):
    monkeypatch.setenv("KILN_MEMORY_LIMIT", value)
    code, _, err = _run(capsys, "run", tiny_artifact, "--prompt", "hi")
    _one_error(code, err, "KILN_MEMORY_LIMIT must be a number of bytes")


def test_a_cache_layer_outside_the_pool_is_refused_at_load(art_copy, capsys):
    text = (art_copy / "ir/module.mlir").read_text()
    assert "layer = 1," in text
    (art_copy / "ir/module.mlir").write_text(text.replace("layer = 1,", "layer = 2,"))
    _rehash(art_copy)
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi")
    _one_error(code, err, "layer 2 is outside the cache")


def test_triton_cache_kernels_refuse_indices_outside_their_tensors():
    """The Triton cache kernels address the pool with raw offsets: the host checks every index first."""
    from kiln.codegen.triton.program import guard_cache_indices

    cache = torch.zeros(2, 4, 1, 8, 4)  # [L, NB, KVH, BS, D]
    tok = torch.zeros(1, 1, 3, 4)
    pos, seq, table = torch.tensor([0, 1, 9]), torch.tensor([0, 0, 0]), torch.tensor([[0, 3]])
    guard_cache_indices("k", [cache], [tok], pos, seq, table, 1, True)  # fine
    bad = [({"layer": 2}, "layer 2 is outside"), ({"pos": torch.tensor([0, 1, 16])}, "outside the block table"),
           ({"pos": torch.tensor([0, -1, 2])}, "outside the block table"),
           ({"seq": torch.tensor([0, 0, 1])}, "outside the block table"),
           ({"table": torch.tensor([[0, 4]])}, "outside the pool"), ({"table": torch.tensor([[-1, 1]])}, "outside"),
           ({"pos": torch.tensor([0, 1])}, "disagree")]
    for change, message in bad:
        kw = {"pos": pos, "seq": seq, "table": table, "layer": 1, **change}
        with pytest.raises(IRError, match=message):
            guard_cache_indices("k", [cache], [tok], kw["pos"], kw["seq"], kw["table"], kw["layer"], True)
    # index ranges are checked once per call for each set of index tensors; the layer and shapes every time
    checked: set = set()
    guard_cache_indices("k", [cache], [tok], pos, seq, table, 1, True, checked)
    assert len(checked) == 1
    with pytest.raises(IRError, match="layer 2 is outside"):
        guard_cache_indices("k", [cache], [tok], pos, seq, table, 2, True, checked)
    with pytest.raises(IRError, match="outside the pool"):  # another table tensor is checked afresh
        guard_cache_indices("k", [cache], [tok], pos, seq, torch.tensor([[0, 4]]), 1, True, checked)
    # a write touches only each token's own block; attention reads every block up to it
    guard_cache_indices("k", [cache], [tok], torch.tensor([8, 9, 10]), seq, torch.tensor([[7, 1]]), 0, False)
    with pytest.raises(IRError, match="outside the pool"):
        guard_cache_indices("k", [cache], [tok], torch.tensor([8, 9, 10]), seq, torch.tensor([[7, 1]]), 0, True)


MORE_FORBIDDEN = [
    ("aten::einsum.default", ["ij,jk->ik", [Ref(0), Ref(0)]], {}, "allowlist"),  # hidden intermediates
    ("aten::zeros.default", [[4]], {"layout": 1}, "default layout"),  # sparse layouts
    ("aten::zeros.default", [[4]], {"device": 0}, "program's own device"),
    ("aten::add.Tensor", [Ref(0), Sym("B")], {}, "symbolic size"),  # a Sym where a tensor goes
    ("aten::sum.dim_IntList", [Ref(0), [0]], {"keepdim": DType.f32}, "is a dtype"),
]


@pytest.mark.parametrize("target,args,kwargs,message", MORE_FORBIDDEN, ids=[f[0] for f in MORE_FORBIDDEN])
def test_allowed_ops_with_hostile_arguments_are_refused(art_copy, target, args, kwargs, message):
    _inject(art_copy, target, args, kwargs)
    with pytest.raises(KilnError, match=message):
        kiln.load(art_copy)


def test_invalid_arguments_and_out_of_range_indices_are_one_line_errors(art_copy, capsys):
    """Meta-kernel errors become IRError at the dry run; an index out of range (values the dry run
    cannot see) fails the op for real, which the CLI reports in one line with exit 1."""
    _inject(art_copy, "aten::one_hot.default", [Ref(0), -7], result=TensorType(DType.i64, (4,)), programs=None)
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi", "--max-new-tokens", "1")
    _one_error(code, err, "invalid")


def test_an_index_out_of_range_is_a_one_line_error(art_copy, capsys):
    art = kiln.load(art_copy)
    for p in art.module.programs.values():
        idx = p.create("kiln.aten", [], {"target": "aten::full.default", "args": [[3], 1000000],
                                         "kwargs": {"dtype": DType.i64}}, [TensorType(DType.i64, (3,))]).result
        p.create("kiln.aten", [p.outputs[0], idx], {"target": "aten::index_select.default",
                                                    "args": [Ref(0), 0, Ref(1)], "kwargs": {}},
                 [TensorType(DType.f32, (3,) + tuple(p.outputs[0].type.shape[1:]))])
    (art_copy / "ir/module.mlir").write_text(print_module(art.module))
    m = json.loads((art_copy / "manifest.json").read_text())
    m["generic_ops"] = {"aten::full.default": 1, "aten::index_select.default": 1}
    _rehash(art_copy, m)
    code, _, err = _run(capsys, "run", art_copy, "--prompt", "hi", "--max-new-tokens", "1")
    _one_error(code, err, "is the artifact corrupt or modified?")


def test_file_aliases_in_the_manifest_are_refused(art_copy):
    m = json.loads((art_copy / "manifest.json").read_text())
    m["files"]["ir//module.mlir"] = m["files"]["ir/module.mlir"]
    (art_copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KilnError, match="not a plain relative path"):
        kiln.load(art_copy)


def test_every_command_that_reads_an_artifact_verifies_its_signature(tiny_artifact, tmp_path, capsys, monkeypatch):
    key = tmp_path / "k.key"
    key.write_bytes(bytes(range(40)))
    for argv in (["dump", tiny_artifact], ["eval", tiny_artifact], ["bench", tiny_artifact],
                 ["run", tiny_artifact, "--prompt", "hi"]):
        code, _, err = _run(capsys, *argv, "--verify-key", key)
        _one_error(code, err, "is not signed")
    monkeypatch.setenv("KILN_VERIFY_KEY", str(key))
    code, _, err = _run(capsys, "dump", tiny_artifact)
    _one_error(code, err, "is not signed")


# -- 5. signing --------------------------------------------------------------------------------------

@pytest.fixture
def keys(tmp_path):
    a, b, short = tmp_path / "a.key", tmp_path / "b.key", tmp_path / "short.key"
    a.write_bytes(bytes(range(32)))
    b.write_bytes(bytes(range(1, 33)))
    short.write_bytes(b"12345")
    return a, b, short


def test_signed_artifacts_load_only_with_their_key(tmp_path, keys, capsys):
    a, b, _ = keys
    art = tmp_path / "s.kiln"
    code, _, err = _run(capsys, "compile", "llama-tiny", "-o", art, "--sign", a, "-q")
    assert code == 0, err
    code, out, err = _run(capsys, "run", art, "--prompt", "hi", "--max-new-tokens", "2", "--verify-key", a)
    assert code == 0 and out, err
    code, _, err = _run(capsys, "run", art, "--prompt", "hi", "--verify-key", b)
    _one_error(code, err, "signature does not match")
    # an attacker edits a file and recomputes every hash: integrity holds, provenance does not
    text = (art / "ir/module.mlir").read_text().replace("eps = 1.0e-05", "eps = 1.0e-01", 1)
    (art / "ir/module.mlir").write_text(text)
    _rehash(art)
    assert kiln.load(art) is not None  # without a key, only integrity is checked, and the hashes match
    code, _, err = _run(capsys, "run", art, "--prompt", "hi", "--verify-key", a)
    _one_error(code, err, "signature does not match")


def test_unsigned_artifacts_and_bad_keys_are_refused(tiny_artifact, tmp_path, keys, capsys):
    a, _, short = keys
    code, _, err = _run(capsys, "run", tiny_artifact, "--prompt", "hi", "--verify-key", a)
    _one_error(code, err, "is not signed")
    code, _, err = _run(capsys, "run", tiny_artifact, "--prompt", "hi", "--verify-key", short)
    _one_error(code, err, "fewer than 16 bytes")
    code, _, err = _run(capsys, "run", tiny_artifact, "--prompt", "hi", "--verify-key", tmp_path / "none.key")
    _one_error(code, err, "no key file")
    out = tmp_path / "never.kiln"
    code, _, err = _run(capsys, "compile", "llama-tiny", "-o", out, "--sign", short, "-q")
    _one_error(code, err, "fewer than 16 bytes")
    assert not out.exists()


def test_the_python_api_verifies_too(tmp_path, keys):
    from kiln.runtime import signing

    a, b, _ = keys
    path = kiln.compile("llama-tiny").save(tmp_path / "p.kiln")
    signing.sign(path, signing.read_key(a))
    assert kiln.load(path, verify_key=a).manifest["format_version"] >= 1
    with pytest.raises(KilnError, match="signature does not match"):
        kiln.load(path, verify_key=signing.read_key(b))
    assert math.isfinite(float(kiln.load(path, verify_key=a).runtime().logits(torch.tensor([[1]])).sum()))


def test_oversized_ir_is_refused_before_parsing(art_copy, monkeypatch):
    from kiln.runtime import artifact

    monkeypatch.setattr(artifact, "MAX_IR_BYTES", 1000)
    with pytest.raises(KilnError, match="module.mlir is over"):
        kiln.load(art_copy)
