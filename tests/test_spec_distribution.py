"""Sampled speculative decoding keeps the target's distribution, end to end.

A target with an 8-token vocabulary (random Llama, 2 layers) makes the exact distribution of every
4-token continuation of a fixed prompt computable: 8^3 prefixes through the artifact's full forward
give the filtered next-token distributions, and their products the probability of each of the 4096
sequences. Thousands of continuations sampled through the speculative runtime (one batch of
copies of the prompt per seed, every drafter, fused ``spec_step`` rounds and the runtime loop,
temperature below 1 and top-p) must fit that distribution: chi-square goodness-of-fit on the
whole sequence and on consecutive token pairs, rare cells pooled. Seeds are fixed, so the test is
deterministic; the threshold (p > 1e-4 for each statistic) is far from the p-values a correct
implementation gets here, and a draft that reports the wrong q (for instance at temperature 1
while sampling at 0.7) or an accept rule that accepts too often fails it by many orders of
magnitude.
"""

from __future__ import annotations

import itertools

import pytest
import torch

import kiln

V = 8  # vocabulary
PROMPT = [3, 5, 1]
NEW = 4  # tokens per continuation: one from prefill, then a fused round of k = 2 and the runtime loop
K = 2
BATCH = 1000
P_MIN = 1e-4


def _hf_model(path, layers: int, seed: int) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2,
                      num_key_value_heads=1, vocab_size=V, max_position_embeddings=16, tie_word_embeddings=False,
                      initializer_range=0.3)  # wide weights: peaked, far-from-uniform next-token distributions
    LlamaForCausalLM(cfg).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("spec_dist")
    return {"target": _hf_model(root / "target", 2, 0), "draft": _hf_model(root / "draft", 1, 1), "arts": {}}


@pytest.fixture
def one_thread():
    # the reference executor runs many tiny per-sequence ops; on a busy 2-core machine a second
    # intra-op thread costs far more in synchronisation than it gains
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _artifact(models, drafter: str):
    drafter = "ngram" if drafter == "none" else drafter  # plain sampling: the n-gram artifact, speculation off
    if drafter not in models["arts"]:
        draft = models["draft"] if drafter == "model" else drafter
        models["arts"][drafter] = kiln.compile(models["target"], draft=draft, spec_k=K)
    return models["arts"][drafter]


def reference_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """softmax(logits / T) over the smallest set of likeliest tokens whose mass reaches top_p,
    renormalised (written here independently of kiln's sampler, which the test checks)."""
    probs = torch.softmax(logits.double() / temperature, -1)
    if top_p >= 1:
        return probs
    sorted_p, order = probs.sort(-1, descending=True)
    before = sorted_p.cumsum(-1) - sorted_p  # mass of the likelier tokens
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, before < top_p)
    kept = probs * keep
    return kept / kept.sum(-1, keepdim=True)


def exact_distribution(rt, temperature: float, top_p: float) -> torch.Tensor:
    """P(x1..x4 | PROMPT) as a [V, V, V, V] tensor, from the full forward of every 3-token prefix."""
    prefixes = torch.tensor(list(itertools.product(range(V), repeat=NEW - 1)))
    ids = torch.cat([torch.tensor(PROMPT).expand(len(prefixes), -1), prefixes], 1)
    with torch.no_grad():
        logits = rt.logits(ids)[:, len(PROMPT) - 1:]  # [V^3, NEW, V]: the distribution before each new token
    p = reference_probs(logits, temperature, top_p).view(*[V] * (NEW - 1), NEW, V)
    joint = p[0, 0, 0, 0].clone()  # x1
    for step in range(1, NEW):
        idx = (slice(None),) * step + (0,) * (NEW - 1 - step) + (step,)
        cond = p[idx]  # [V]*step + [V]: p(x_{step+1} | x_1..x_step)
        joint = joint.unsqueeze(-1) * cond
    return joint


def chi2_pvalue(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> float:
    """Goodness of fit of ``counts`` to ``probs`` (flattened); cells expected below ``min_expected``
    are pooled into one. Survival function of chi-square = regularized upper incomplete gamma."""
    counts, probs = counts.flatten().double(), probs.flatten().double()
    n = counts.sum()
    exp = probs * n
    big = exp >= min_expected
    obs_cells = torch.cat([counts[big], counts[~big].sum().view(1)])
    exp_cells = torch.cat([exp[big], exp[~big].sum().view(1)])
    if float(exp_cells[-1]) < min_expected:  # too little pooled mass to stand alone: merge into the smallest cell
        i = int(exp_cells[:-1].argmin())
        obs_cells[i] += obs_cells[-1]
        exp_cells[i] += exp_cells[-1]
        obs_cells, exp_cells = obs_cells[:-1], exp_cells[:-1]
    stat = float(((obs_cells - exp_cells) ** 2 / exp_cells).sum())
    df = len(exp_cells) - 1
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                         torch.tensor(stat / 2, dtype=torch.float64)))


def fit_pvalues(counts: torch.Tensor, joint: torch.Tensor) -> dict[str, float]:
    """p-values of the whole sequence and of each pair of consecutive tokens."""
    out = {"sequence": chi2_pvalue(counts, joint)}
    dims = list(range(NEW))
    for a in range(NEW - 1):
        rest = [d for d in dims if d not in (a, a + 1)]
        out[f"x{a + 1}x{a + 2}"] = chi2_pvalue(counts.sum(rest), joint.sum(rest))
    return out


def sample_counts(rt, n: int, temperature: float, top_p: float, seed: int = 0) -> torch.Tensor:
    counts = torch.zeros([V] * NEW, dtype=torch.float64)
    for b in range(n // BATCH):
        outs = rt.generate([PROMPT] * BATCH, max_new_tokens=NEW, temperature=temperature, top_p=top_p,
                           seed=seed + b, stop_at_eos=False)
        for o in outs:
            assert len(o) == len(PROMPT) + NEW
            counts[tuple(o[len(PROMPT):])] += 1
    return counts


# drafter, fused rounds?, temperature, top-p, samples. The sample counts are sized so that a draft
# reporting q at temperature 1 while sampling at 0.7 fails by orders of magnitude (p < 1e-8 for the
# model drafter's fused and loop rounds, < 1e-9 for self); an accept rule that always accepts, or
# plain sampling that ignores temperature or top-p, fails every case with p ~ 0.
CASES = [
    ("none", False, 0.7, 1.0, 1000),  # plain sampling (and the harness itself)
    ("none", False, 1.0, 0.9, 1000),
    ("model", True, 0.7, 1.0, 3000),
    ("model", False, 0.7, 1.0, 2000),
    ("model", True, 1.0, 0.9, 1000),
    ("self", True, 0.7, 1.0, 3000),
    ("self", False, 1.0, 0.9, 1000),
    ("ngram", False, 0.7, 1.0, 2000),
    ("ngram", False, 1.0, 0.9, 1000),
]


@pytest.mark.parametrize(("drafter", "fused", "temperature", "top_p", "n"), CASES,
                         ids=[f"{c[0]}-{'fused' if c[1] else 'loop'}-T{c[2]}-p{c[3]}" for c in CASES])
def test_sampled_speculative_decoding_has_the_target_distribution(models, one_thread, drafter, fused, temperature,
                                                                  top_p, n):
    art = _artifact(models, drafter)
    rt = art.runtime(cache_tokens=16 * BATCH, speculative=drafter != "none")
    if drafter == "none":
        assert rt.spec is None
    else:
        assert rt.spec is not None
        if drafter in ("model", "self"):
            assert (rt.spec.drafter.step is not None) == ("spec_step" in art.module.programs)
            if not fused:
                rt.spec.drafter.step = None  # every round through the runtime loop (draft_decode + verify)
    joint = exact_distribution(art.runtime(speculative=False), temperature, top_p)
    assert abs(float(joint.sum()) - 1) < 1e-6
    counts = sample_counts(rt, n, temperature, top_p)
    if drafter != "none":
        st = rt.last_stats
        assert st["verify_calls"] > 0 and st["drafted_tokens"] > 0
        assert 0 < st["accepted_tokens"] < st["drafted_tokens"]  # drafts both accepted and rejected
        assert (st["fused_rounds"] > 0) == fused
    pvals = fit_pvalues(counts, joint)
    assert min(pvals.values()) > P_MIN, pvals


def test_the_fit_has_power(models):
    """The same statistic rejects a slightly wrong distribution: counts drawn exactly from the
    target at temperature 0.7 fail against the target at temperature 0.8 (a sanity check that
    3000 samples over these cells can see a distribution shift of this size)."""
    art = _artifact(models, "none")
    rt = art.runtime(speculative=False)
    right = exact_distribution(rt, 0.7, 1.0)
    wrong = exact_distribution(rt, 0.8, 1.0)
    g = torch.Generator().manual_seed(0)
    draws = torch.multinomial(right.flatten().float(), 3000, replacement=True, generator=g)
    counts = torch.bincount(draws, minlength=V ** NEW).double().view([V] * NEW)
    assert min(fit_pvalues(counts, right).values()) > P_MIN
    assert min(fit_pvalues(counts, wrong).values()) < P_MIN
