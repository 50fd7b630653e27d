"""Normalisations and RoPE tables against formulas written here, in float64.

Norms are checked where eps matters: inputs of small norm (x * 1e-3, mean square ~1e-6) and large eps
(1e-2, 0.5), so an implementation that drops eps, or adds it outside the square root, is off by orders
of magnitude rather than by rounding (each test also asserts that the eps-free formula is far away).
RoPE tables are checked against the inverse frequencies of each supported scaling (default, linear,
llama3, yarn) computed here from the config, and that formula against transformers' own rotary
embedding; models with those scalings and a large norm eps are imported from Hugging Face directories
and their logits compared with transformers'. The Triton row-wise norm kernels get the same inputs in
tests/test_triton.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from kiln.ir import ExecContext, lookup

CTX = ExecContext()


def ref(name, *args, **attrs):
    d = lookup(name)
    return d.reference(CTX, *args, **{**d.defaults, **attrs})


def rms_norm_formula(x, w, eps):
    x64 = x.double()
    return (w.double() * x64 / torch.sqrt((x64 * x64).mean(-1, keepdim=True) + eps)).to(x.dtype)


def layer_norm_formula(x, w, b, eps):
    x64 = x.double()
    mean = x64.mean(-1, keepdim=True)
    var = ((x64 - mean) ** 2).mean(-1, keepdim=True)  # biased, as LayerNorm
    y = (x64 - mean) / torch.sqrt(var + eps)
    if w is not None:
        y = y * w.double()
    if b is not None:
        y = y + b.double()
    return y.to(x.dtype)


def _far(a, b) -> bool:
    return not torch.allclose(a.double(), b.double(), rtol=0.1, atol=0)


@pytest.mark.parametrize("eps", [1e-2, 0.5])
@pytest.mark.parametrize("scale", [1e-3, 1.0])
@pytest.mark.parametrize("width", [7, 64])
def test_rms_norm_formula_with_small_inputs_and_large_eps(eps, scale, width):
    g = torch.Generator().manual_seed(width)
    x = torch.randn(3, 5, width, generator=g) * scale
    w = torch.randn(width, generator=g)
    got = ref("kiln.rms_norm", x, w, eps=eps)
    want = rms_norm_formula(x, w, eps)
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * scale)
    if scale < 1:  # the test can tell: without eps (or with eps outside the root) the result is far off
        assert _far(rms_norm_formula(x, w, 0.0), want)
        assert _far((w * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps)), want)


@pytest.mark.parametrize("eps", [1e-2, 0.5])
@pytest.mark.parametrize("affine", ["weight_bias", "weight", "none"])
def test_layer_norm_formula_with_small_inputs_and_large_eps(eps, affine):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 33, generator=g) * 1e-3 + 0.3  # a large mean on a small spread
    w = torch.randn(33, generator=g) if affine != "none" else None
    b = torch.randn(33, generator=g) if affine == "weight_bias" else None
    got = ref("kiln.layer_norm", x, *[t for t in (w, b) if t is not None], eps=eps)
    want = layer_norm_formula(x, w, b, eps)
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert _far(layer_norm_formula(x, w, b, 0.0) - (b if b is not None else 0), want - (b if b is not None else 0))


# ---------------------------------------------------------------------------
# RoPE


def inv_freq_formula(dim: int, theta: float, scaling: dict | None) -> tuple[torch.Tensor, float]:
    """(inverse frequencies [dim / 2], attention factor) of a rotary embedding, float64, from the papers'
    definitions: linear (position interpolation), llama3 (wavelength bands), yarn (NTK-by-parts ramp
    and the 0.1 ln(s) + 1 attention factor)."""
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "default":
        return inv, 1.0
    factor = float(scaling["factor"])
    if kind == "linear":
        return inv / factor, 1.0
    if kind == "llama3":
        old = scaling["original_max_position_embeddings"]
        low_wl, high_wl = old / scaling["low_freq_factor"], old / scaling["high_freq_factor"]
        out = []
        for f in inv.tolist():
            wl = 2 * math.pi / f
            if wl < high_wl:  # high frequencies: unchanged
                out.append(f)
            elif wl > low_wl:  # low frequencies: interpolated
                out.append(f / factor)
            else:  # in between: a smooth blend
                s = (old / wl - scaling["low_freq_factor"]) / (scaling["high_freq_factor"] - scaling["low_freq_factor"])
                out.append((1 - s) * f / factor + s * f)
        return torch.tensor(out, dtype=torch.float64), 1.0
    if kind == "yarn":
        old = scaling["original_max_position_embeddings"]

        def dim_of(rotations: float) -> float:  # the dimension that turns `rotations` times over `old`
            return dim * math.log(old / (rotations * 2 * math.pi)) / (2 * math.log(theta))

        lo, hi = max(math.floor(dim_of(32)), 0), min(math.ceil(dim_of(1)), dim - 1)
        hi = hi + 0.001 if lo == hi else hi
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - lo) / (hi - lo)).clamp(0, 1)
        extrapolate = 1 - ramp  # 1: keep the frequency, 0: interpolate it
        out = inv / factor * (1 - extrapolate) + inv * extrapolate
        return out, 0.1 * math.log(factor) + 1.0
    raise ValueError(kind)


def tables_formula(pos: torch.Tensor, inv: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    ang = pos.double()[..., None] * inv.double()
    ang = torch.cat([ang, ang], -1)
    return ang.cos() * scale, ang.sin() * scale


def test_rope_tables_and_rotation_against_the_formula():
    inv, _ = inv_freq_formula(16, 10000.0, None)
    pos = ref("kiln.positions", torch.zeros(2, 50, dtype=torch.long), offset=1000)
    assert pos.tolist() == [list(range(1000, 1050))] * 2
    for scale in (1.0, 0.7):
        cos, sin = ref("kiln.rope_cos", pos, inv.float(), scale=scale), ref("kiln.rope_sin", pos, inv.float(), scale=scale)
        want_cos, want_sin = tables_formula(pos, inv, scale)
        assert cos.shape == (2, 50, 16) and cos.dtype == torch.float32
        # float32 angles of positions ~1000: an absolute error of about 1000 * 2**-24 rad
        torch.testing.assert_close(cos.double(), want_cos, rtol=0, atol=2e-4)
        torch.testing.assert_close(sin.double(), want_sin, rtol=0, atol=2e-4)
    # the rotation: pairs (i, i + D/2) turned by angle pos * inv[i]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 50, 16, generator=g)
    cos, sin = ref("kiln.rope_cos", pos, inv.float()), ref("kiln.rope_sin", pos, inv.float())
    got = ref("kiln.rope", x, cos, sin)
    c, s = cos[:, None, :, :8], sin[:, None, :, :8]  # the tables checked above: cos / sin of each pair's angle
    x1, x2 = x[..., :8], x[..., 8:]
    want = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], -1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


SCALINGS = {
    "linear": {"rope_type": "linear", "factor": 4.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64},
}
THETA, HEAD_DIM, EPS = 10000.0, 32, 0.25


def _llama_config(kind: str):
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, vocab_size=100, max_position_embeddings=512, rope_theta=THETA,
                       rms_norm_eps=EPS, rope_scaling=dict(SCALINGS[kind]), tie_word_embeddings=False)


@pytest.mark.parametrize("kind", list(SCALINGS))
def test_inv_freq_formula_matches_transformers_rotary_embedding(kind):
    # the formula above is an independent statement of each scaling: transformers' implementation agrees
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    cfg = _llama_config(kind)
    rot = LlamaRotaryEmbedding(cfg)
    inv, factor = inv_freq_formula(HEAD_DIM, THETA, SCALINGS[kind])
    torch.testing.assert_close(rot.inv_freq.double(), inv, rtol=1e-6, atol=0)
    assert rot.attention_scaling == pytest.approx(factor, rel=1e-6)
    pos = torch.arange(0, 500, 7)[None]
    cos, sin = rot(torch.zeros(1, 1, dtype=torch.float32), pos)
    want_cos, want_sin = tables_formula(pos, inv, factor)
    torch.testing.assert_close(cos.double(), want_cos, rtol=0, atol=1e-4)
    torch.testing.assert_close(sin.double(), want_sin, rtol=0, atol=1e-4)


_IMPORTED: dict[str, tuple] = {}


def _imported(kind: str, tmp_path_factory):
    if kind not in _IMPORTED:
        from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

        from kiln.frontend import import_model
        from kiln.frontend.presets import byte_tokenizer

        path = tmp_path_factory.mktemp(f"hf-{kind}")
        torch.manual_seed(0)
        if kind == "gpt2":
            model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=1, n_head=2, vocab_size=100, n_positions=512,
                                               layer_norm_epsilon=EPS))
        else:
            model = LlamaForCausalLM(_llama_config(kind))
        model.eval().save_pretrained(path)
        (path / "tokenizer.json").write_text(byte_tokenizer().to_str())
        _IMPORTED[kind] = (import_model(str(path)), model)
    return _IMPORTED[kind]


@pytest.mark.parametrize("kind", list(SCALINGS))
def test_imported_rope_tables_match_the_formula(kind, tmp_path_factory):
    imp, _ = _imported(kind, tmp_path_factory)
    fwd, weights = imp.module["forward"], imp.module.weights
    inv_want, factor = inv_freq_formula(HEAD_DIM, THETA, SCALINGS[kind])
    tables = [op for op in fwd.ops if op.name in ("kiln.rope_cos", "kiln.rope_sin")]
    assert sorted(op.name for op in tables) == ["kiln.rope_cos", "kiln.rope_sin"]
    pos = torch.arange(0, 512, 3)[None]
    for op in tables:
        assert op.operands[0].owner.name == "kiln.positions" and op.operands[0].owner.attrs.get("offset", 0) == 0
        inv = weights[op.operands[1].owner.attrs["name"]]
        torch.testing.assert_close(inv.double(), inv_want, rtol=1e-6, atol=0)
        assert op.attrs["scale"] == pytest.approx(factor, rel=1e-6)
        got = ref(op.name, pos, inv, **op.attrs)
        want = tables_formula(pos, inv_want, factor)[op.name == "kiln.rope_sin"]
        torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", [*SCALINGS, "gpt2"])
def test_imported_models_with_a_large_norm_eps_match_transformers(kind, tmp_path_factory):
    # eps = 0.25 dwarfs the mean square of these hidden states (~1e-3): a norm that lost its eps, or
    # a frontend that did not carry the config's, changes every logit
    from kiln.codegen.cpu import CpuProgram

    imp, model = _imported(kind, tmp_path_factory)
    fwd = imp.module["forward"]
    norm = "kiln.layer_norm" if kind == "gpt2" else "kiln.rms_norm"
    eps = [op.attrs["eps"] for op in fwd.ops if op.name == norm]
    assert len(eps) == 3 and all(e == pytest.approx(EPS) for e in eps)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 100, (2, 150), generator=g)
    got = CpuProgram(fwd, imp.module.weights)(ids)[0]
    with torch.no_grad():
        want = model(input_ids=ids).logits
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
