"""The ``speculative`` pass: draft/verify programs for speculative decoding.

It runs after ``kv-cache`` and adds, next to ``prefill`` and ``decode``:

- ``verify``: the target's decode program over a packed *token tree* per sequence (a chain is the
  tree with one child per node). Cache writes go to each node's ``slot``; attention is
  ``kiln.cache_tree_attention`` with a tree mask; then ``kiln.tree_accept`` (the accept step:
  greedy argmax match, or the rejection rule with the residual distribution when sampling) and
  ``kiln.cache_commit`` (the accepted nodes' keys and values moved to their positions, i.e. the
  rollback of every rejected node) run in the same program. One call of ``verify`` is a whole
  verify-accept-rollback step; the runtime loops draft -> verify.
- a drafter, chosen by ``drafter``:
  - ``model``: a separate small model (compiled by the caller with its own ``kv-cache`` pass and
    given as ``draft_module``); its ``prefill``/``decode`` become ``draft_prefill``/``draft_decode``,
    its weights are renamed ``draft.*``, and its cache is described by ``meta.draft_kv_cache``;
  - ``self``: the target with ``skip`` of its layers skipped (weights shared by name). The pass
    chooses the layers by measured greedy agreement with the full model on ``calibration`` token
    windows (held-out text, given by the caller), removing one layer at a time, the one whose
    removal keeps agreement highest; the choice and its agreement are recorded;
  - ``ngram``: no program. The runtime drafts a token tree from the text so far: the continuation of
    the longest earlier match of the last tokens (prompt lookup, at most ``k`` tokens) as one branch,
    and the target's own likeliest next tokens after each token, recycled from earlier verify steps
    and grown best-first by path probability up to ``tree`` nodes.
- the draft length: ``k`` tokens at most; ``adaptive`` > 0 stops drafting a sequence once the draft's
  top probability falls below it (model and self drafters).
- ``spec_step`` (model and self drafters with a fixed length): the whole round as one program: the
  draft's catch-up prefill, ``k - 1`` inlined draft decode steps with ``kiln.draft_pick``, the chains
  packed by ``kiln.chain_tree``, and the inlined ``verify``.

All choices go to ``meta.speculative`` (the manifest's ``model.speculative``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from kiln.errors import KilnError
from kiln.ir.core import Module, Program, Value
from kiln.ir.interpret import run_program
from kiln.ir.match import erase_unused
from kiln.ir.ops_spec import MAX_DRAFT
from kiln.ir.types import DType, TensorType, dims_equal
from kiln.passes.base import Pass, register
from kiln.passes.kv_cache import specialize

DRAFTERS = ("model", "self", "ngram")
_LAYER = re.compile(r"\.(?:layers|h)\.(\d+)\.")


def _arg(prog: Program, hint: str) -> Value:
    for a in prog.args:
        if a.hint == hint:
            return a
    raise KilnError(f"speculative: program {prog.name!r} has no {hint!r} argument (was kv-cache applied?)")


def cache_chain_end(prog: Program, cache: Value) -> Value:
    """The last value of the in-place chain of cache writes that starts at ``cache`` (a float cache, or
    an int8 cache or its scales, which ``kiln.cache_write_q8`` writes and returns together)."""
    cur = cache
    for op in prog.ops:
        if op.name == "kiln.cache_write" and op.operand("cache") is cur:
            cur = op.result
        elif op.name == "kiln.cache_write_q8":
            for i, name in enumerate(("cache", "scales")):  # its results are the cache and the scales
                if op.operand(name) is cur:
                    cur = op.results[i]
                    break
    return cur


def build_verify(decode: Program) -> Program:
    prog = decode.clone()
    prog.name = "verify"
    ids, pos, seq, table = (_arg(prog, h) for h in ("input_ids", "pos", "seq", "block_table"))
    kc, vc = _arg(prog, "k_cache"), _arg(prog, "v_cache")
    n = pos.type.shape[0]
    slot = prog.add_arg(TensorType(DType.i64, (n,)), "slot")
    mask = prog.add_arg(TensorType(DType.i1, (n, n)), "tree_mask")
    parent = prog.add_arg(TensorType(DType.i64, (n,)), "parent")
    logits = prog.outputs[0]
    draft_q = prog.add_arg(TensorType(DType.f32, (n, "Q")), "draft_q")
    sampling = prog.add_arg(TensorType(DType.f32, (3,)), "sampling")
    seed = prog.add_arg(TensorType(DType.i64, (1,)), "seed")
    for op in prog.walk():
        if "writes-cache" in op.opdef.traits and "speculative" not in op.opdef.traits:  # not cache_commit
            op.set_operand("pos", slot)  # nodes are written to their slots, not their positions
    for op in prog.walk():
        if "reads-cache" in op.opdef.traits:  # attention over the cache -> over the cache and the tree
            tree = op.opdef.variant("verify")
            if tree is None:
                raise KilnError(f"speculative: {op.name} has no verify form (no 'verify' variant declared)")
            prog.replace_op(op, [prog.create_like(op, tree.name, slot=slot, seq=seq, table=table, mask=mask).result])
    acc = prog.create("kiln.tree_accept", [logits, ids, parent, seq, draft_q, sampling, seed])
    accepted, nxt = acc.results
    scales = [a for a in prog.args if a.hint in ("k_scale", "v_scale")]
    for c in (kc, vc, *scales):  # an int8 cache's scales move with its rows
        prog.create("kiln.cache_commit", [cache_chain_end(prog, c), accepted, slot, pos, seq, table])
    prog.set_outputs([accepted, nxt, logits])
    return prog


# -- the fused round of a model drafter ------------------------------------------------------------

def inline(dst: Program, src: Program, args: list[Value], symbols: dict[str, Any]) -> list[Value]:
    """Append a copy of ``src`` to ``dst`` with its arguments bound to ``args`` and its symbolic sizes
    renamed by ``symbols``; returns the values the copy returns."""
    p = src.clone()
    specialize(p, symbols)
    for a, v in zip(p.args, args, strict=True):
        if a.type.dtype != v.type.dtype or a.type.rank != v.type.rank or \
                not all(dims_equal(x, y) for x, y in zip(a.type.shape, v.type.shape)):
            raise KilnError(f"speculative: inlining {src.name!r}: argument {a.hint!r} is {a.type}, got {v.type}")
    vmap = {id(a): v for a, v in zip(p.args, args)}
    outs: list[Value] = []
    for op in p.ops:
        if op.name == "kiln.return":
            outs = [vmap[id(v)] for v in op.operands]
            continue
        new = dst.create(op.name, [vmap[id(v)] for v in op.operands], op.attrs,
                         result_types=[r.type for r in op.results], loc=op.loc)
        for r, nr in zip(op.results, new.results):
            nr.hint = r.hint
            vmap[id(r)] = nr
    return outs


def build_step(module: Module, k: int) -> Program:
    """``spec_step``: one whole round of a model drafter as one program. The draft catches up with
    each sequence's newly committed tokens (its prefill over them; the last one is the root), drafts
    ``k`` tokens per sequence with ``k - 1`` inlined copies of its decode program and ``kiln.draft_pick``
    (argmax, or a seeded sample when ``sampling`` asks for one), packs the chains with
    ``kiln.chain_tree`` and runs the inlined ``verify`` program: verify, accept and rollback. Returns
    the chains' tokens [1, (k + 1) B], accepted, next and the target's logits."""
    dp, dd, vf = module["draft_prefill"], module["draft_decode"], module["verify"]
    draft_syms = {"MB": "DMB", "NB": "DNB", "S": "DS"}
    prog = Program("spec_step")
    catch = [prog.add_arg(a.type, a.hint) for a in dp.args]
    specialize(prog, {"N": "C", "K": "B", **draft_syms})
    hints = {a.hint: a for a in catch}
    dk, dv = hints["k_cache"], hints["v_cache"]
    dtable = hints["block_table"]
    for a in catch:
        a.hint = f"draft_{a.hint}" if a.hint in ("block_table", "k_cache", "v_cache") else f"catch_{a.hint}"
    vargs = {a.hint: a for a in vf.args}
    roots = prog.add_arg(TensorType(DType.i64, ("B",)), "roots")
    root_pos = prog.add_arg(TensorType(DType.i64, ("B",)), "root_pos")
    seqs = prog.add_arg(TensorType(DType.i64, ("B",)), "seqs")
    table = prog.add_arg(vargs["block_table"].type, "block_table")
    kc = prog.add_arg(vargs["k_cache"].type, "k_cache")
    vc = prog.add_arg(vargs["v_cache"].type, "v_cache")
    sampling = prog.add_arg(vargs["sampling"].type, "sampling")
    seed = prog.add_arg(vargs["seed"].type, "seed")
    logits = inline(prog, dp, catch, {"N": "C", "K": "B", **draft_syms})[0]
    toks, qs = [], []
    for step in range(1, k + 1):
        if step > 1:
            ids = prog.create("kiln.reshape", [toks[-1]], {"shape": [1, "B"]}).result
            pos = prog.create("kiln.add", [root_pos], {"scalar": step - 1}).result
            dk, dv = cache_chain_end(prog, dk), cache_chain_end(prog, dv)
            logits = inline(prog, dd, [ids, pos, seqs, dtable, dk, dv], {"N": "B", **draft_syms})[0]
        t, q = prog.create("kiln.draft_pick", [logits, sampling, seed], {"step": step}).results
        toks.append(t)
        qs.append(q)
    chain = prog.create("kiln.chain_tree", [roots, root_pos, seqs, *toks, *qs], {"k": k}).results
    ids, pos, seq, slot, mask, parent, dq = chain
    by_hint = {"input_ids": ids, "pos": pos, "seq": seq, "block_table": table, "k_cache": kc, "v_cache": vc,
               "slot": slot, "tree_mask": mask, "parent": parent, "draft_q": dq, "sampling": sampling, "seed": seed}
    vocab = dq.type.shape[1]
    accepted, nxt, target_logits = inline(prog, vf, [by_hint[a.hint] for a in vf.args],
                                          {"N": f"{k + 1}*B", "Q": vocab})
    prog.set_outputs([ids, accepted, nxt, target_logits])
    return prog


# -- layer skipping (self-speculation) ---------------------------------------------------------

def layer_inputs(prog: Program) -> dict[int, Value]:
    """The residual stream entering each decoder layer: the input of the layer's first norm."""
    first: dict[int, Any] = {}
    for i, op in enumerate(prog.ops):
        if op.name != "kiln.weight":
            continue
        m = _LAYER.search(op.attrs["name"])
        if m:
            for u in op.result.users:
                j = prog.index_of(u)
                if int(m.group(1)) not in first or j < first[int(m.group(1))][0]:
                    first[int(m.group(1))] = (j, u)
    out = {}
    for layer, (_, op) in sorted(first.items()):
        if "norm" not in op.opdef.traits:
            raise KilnError(f"speculative: layer {layer} does not start with a norm ({op.name}); "
                            "cannot find its residual input to skip it")
        out[layer] = op.operand("x")
    return out


def skip_layers(prog: Program, skip: set[int]) -> int:
    """Remove decoder layers ``skip`` (never the last) from ``prog``: each skipped layer's output is
    replaced by its input. Cache ops of the remaining layers are renumbered and the cache arguments
    retyped; returns the number of layers left."""
    ins = layer_inputs(prog)
    n_layers = len(ins)
    if not skip:
        return n_layers
    if max(skip) >= n_layers - 1 or min(skip) < 0:
        raise KilnError(f"speculative: can skip layers 0..{n_layers - 2} of {n_layers}, not {sorted(skip)}")

    def resolved(layer: int) -> Value:
        return resolved(layer - 1) if layer - 1 in skip else ins[layer]

    for layer in sorted(skip):
        prog.replace_all_uses(ins[layer + 1], resolved(layer))
    erase_unused(prog)
    for op in [o for o in prog.ops if "writes-cache" in o.opdef.traits and "layer" in o.attrs]:
        if op.attrs["layer"] in skip:
            for r, name in zip(op.results, ("cache", "scales")):  # the cache (and an int8 cache's scales)
                prog.replace_all_uses(r, op.operand(name))  # pass through: each result is its operand, written
            prog.erase(op)
    erase_unused(prog)
    kept = [layer for layer in range(n_layers) if layer not in skip]
    renum = {old: new for new, old in enumerate(kept)}
    for op in prog.ops:
        if "layer" in op.attrs and op.opdef.traits & {"reads-cache", "writes-cache"}:
            op.attrs["layer"] = renum[op.attrs["layer"]]
    for v in [*prog.args, *(r for op in prog.ops for r in op.results)]:
        if v.type.rank in (4, 5) and v.type.shape[0] == n_layers and v.type.shape[1] == "NB":  # caches, scales
            prog.retype(v, TensorType(v.type.dtype, (len(kept), *v.type.shape[1:])))
    return len(kept)


# Runs a program on inputs and returns its outputs: the compiler gives passes the target's executor; a pass
# run on its own (a pass list, the golden tests) uses the reference interpreter.
Evaluator = Callable[[Program, dict, torch.Tensor], list]


def reference_evaluator(program: Program, weights: dict, *args: torch.Tensor) -> list:
    return run_program(program, weights, *args)


def agreement(module: Module, skip: set[int], calibration: torch.Tensor, reference: torch.Tensor,
              evaluate: Evaluator = reference_evaluator) -> float:
    """Share of calibration positions where the skipped model's argmax equals the full model's."""
    fwd = module["forward"].clone()
    skip_layers(fwd, skip)
    with torch.no_grad():
        got = evaluate(fwd, module.weights, calibration)[0].argmax(-1)
    return float((got == reference).float().mean())


@register
@dataclass
class Speculative(Pass):
    name = "speculative"
    summary = ("verify program (token-tree attention, accept step, cache rollback) and a drafter "
               "(drafter=model|self|ngram, k, adaptive, tree, skip)")
    drafter: str = "ngram"
    k: int = 8
    adaptive: float = 0.0
    tree: int = 8
    skip: int = 0
    # set by the compiler, not options: the compiled draft model, and token windows [B, T] of held-out text
    draft_module: Module | None = field(default=None, init=False, repr=False)
    calibration: torch.Tensor | None = field(default=None, init=False, repr=False)
    draft_source: str = field(default="", init=False, repr=False)
    evaluate: Evaluator = field(default_factory=lambda: reference_evaluator, init=False, repr=False)  # runs a program

    def __post_init__(self) -> None:  # options are checked when the pass is made: before any model is loaded
        self.check_options()

    def check_options(self) -> None:
        if self.drafter not in DRAFTERS:
            raise KilnError(f"speculative: drafter must be one of {', '.join(DRAFTERS)}, got {self.drafter!r}")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or not 1 <= self.k <= MAX_DRAFT:
            raise KilnError(f"speculative: k (the draft length) must be in [1, {MAX_DRAFT}], got {self.k!r}")
        if not isinstance(self.adaptive, (int, float)) or isinstance(self.adaptive, bool) \
                or not 0 <= self.adaptive < 1:
            raise KilnError(f"speculative: adaptive (a confidence threshold) must be in [0, 1), got {self.adaptive!r}")
        if not isinstance(self.tree, int) or isinstance(self.tree, bool) or not 0 <= self.tree <= 256:
            raise KilnError(f"speculative: tree (the recycled tree's node budget) must be in [0, 256], got {self.tree!r}")
        if not isinstance(self.skip, int) or isinstance(self.skip, bool) or self.skip < 0:
            raise KilnError(f"speculative: skip (layers the self drafter skips) must be an integer >= 0, "
                            f"got {self.skip!r}")

    def apply(self, module: Module) -> bool:
        self.check_options()  # options may have been set after construction
        if "decode" not in module.programs:
            raise KilnError("speculative: the module has no decode program; run the kv-cache pass first")
        if "verify" in module.programs:
            return False
        module.add(build_verify(module["decode"]))
        self.stats["verify"] += 1
        info: dict[str, Any] = {"drafter": self.drafter, "k": self.k, "adaptive": self.adaptive,
                                "policy": f"adaptive (stop below {self.adaptive})" if self.adaptive else "fixed"}
        if self.drafter == "model":
            self._merge_draft(module, info)
        elif self.drafter == "self":
            self._self_draft(module, info)
        else:
            info["tree_nodes"] = self.tree
            info["policy"] = (f"token tree: a prompt-lookup branch of up to {self.k} tokens + {self.tree} recycled "
                              "nodes, best-first by path probability")
        int8_cache = "scales" in (module.meta.get("kv_cache") or {})
        if self.drafter in ("model", "self") and not self.adaptive and not int8_cache:
            # adaptive lengths and int8 caches stay with the runtime's loop
            module.add(build_step(module, self.k))
            info["fused_step"] = True
            self.stats["spec_step"] += 1
        module.meta["speculative"] = info
        self.decisions.update(info)
        return True

    def _merge_draft(self, module: Module, info: dict) -> None:
        d = self.draft_module
        if d is None:
            raise KilnError("speculative: drafter=model needs a draft model (kiln compile --draft MODEL_DIR)")
        if "decode" not in d.programs or "draft_kv_cache" in d.meta:
            raise KilnError("speculative: the draft model was not compiled with the kv-cache pass")
        tv, dv = module.meta.get("vocab_size"), d.meta.get("vocab_size")
        if tv != dv:
            raise KilnError(f"speculative: the draft's vocabulary ({dv} tokens) differs from the target's ({tv}); "
                            "a draft model must share the target's tokenizer")
        for name in ("prefill", "decode"):
            p = d[name].clone()
            p.name = f"draft_{name}"
            for op in p.walk("kiln.weight"):
                op.attrs["name"] = "draft." + op.attrs["name"]
            module.add(p)
        for name in d.used_weights():
            module.weights["draft." + name] = d.weights[name]
        module.meta["draft_kv_cache"] = dict(d.meta["kv_cache"])
        info["draft_source"] = self.draft_source
        info["draft_params"] = int(sum(w.numel() for w in d.weights.values()))
        info["draft_layers"] = d.meta["kv_cache"]["layers"]

    def _self_draft(self, module: Module, info: dict) -> None:
        n_layers = len(layer_inputs(module["forward"]))
        if n_layers < 2:
            raise KilnError("speculative: drafter=self needs a model of at least 2 layers")
        want = self.skip or n_layers // 2
        if not 1 <= want <= n_layers - 1:
            raise KilnError(f"speculative: skip must be in [1, {n_layers - 1}] for this {n_layers}-layer model")
        cal = self.calibration
        if cal is None:
            vocab = int(module.meta.get("vocab_size") or 2)
            cal = torch.randint(0, vocab, (2, 64), generator=torch.Generator().manual_seed(0))
        ctx = module.meta.get("max_positions")
        if isinstance(ctx, int) and 0 < ctx < cal.shape[1]:  # windows no longer than the model's context
            cal = cal[:, :ctx]
        with torch.no_grad():
            ref = self.evaluate(module["forward"], module.weights, cal)[0].argmax(-1)
        skip: set[int] = set()
        trace = []
        while len(skip) < want:  # greedy: drop the layer whose removal keeps agreement highest
            best = max((agreement(module, skip | {layer}, cal, ref, self.evaluate), -layer)
                       for layer in range(n_layers - 1) if layer not in skip)
            skip.add(-best[1])
            trace.append({"skip": sorted(skip), "agreement": round(best[0], 4)})
            self.stats["layer-trials"] += n_layers - len(skip)
        for name in ("prefill", "decode"):
            p = module[name].clone()
            p.name = f"draft_{name}"
            left = skip_layers(p, skip)
            module.add(p)
        cache = dict(module.meta["kv_cache"])
        cache["layers"] = left
        cache["bytes_per_token"] = cache["bytes_per_token"] * left // n_layers
        module.meta["draft_kv_cache"] = cache
        info.update({"skip_layers": sorted(skip), "draft_layers": left, "agreement": trace[-1]["agreement"],
                     "search": trace, "calibration_tokens": int(cal.numel())})

