"""Speculative generation: the draft -> verify loop over the programs of the ``speculative`` pass.

``SpecDecoder`` is a decoding strategy (``kiln.runtime.state.DecodeStrategy``) that the runtime's
generation loop drives: the loop prefills the prompts and hands tokens out; each ``step`` is one
round. Per sequence the request (``kiln.runtime.state.Request``) keeps every committed token; the
target's cache holds all of them but the last (the *root* of the next tree). A round, for the live
sequences that have no committed token waiting to be handed out:

1. draft: a token tree per sequence (a chain from a draft model or the layer-skipping self-draft;
   a tree from prompt lookup and recycled candidates for the n-gram drafter);
2. verify: one call of the ``verify`` program scores every node of every tree, accepts a path
   (greedy: argmax matches; sampling: the rejection rule), picks the next token where the path
   stops, and moves the accepted keys and values into place in the cache (rejected nodes are
   rolled back by never being read: attention reads only slots below a query's own);
3. the accepted tokens and the next token are committed (cut at a stop token or at
   ``max_new_tokens``).

With a model or self drafter and a fixed draft length, steps 1 and 2 are one call of the
``spec_step`` program whenever every live sequence has room for ``k`` drafted tokens; the loop over
``draft_decode`` and ``verify`` remains for adaptive lengths and the last tokens of a request.

Committed tokens are handed out one per sequence per step, as with plain decoding, so callers
(``generate``, ``stream``, ``kiln run``) see the same interface; ``stats`` counts verify calls,
drafted and accepted tokens.

This module does not import ``kiln.runtime.generate``: what it needs of a request comes in the
``Request``, and sampling from ``kiln.runtime.sampling``.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import torch

from kiln.codegen.cstep import cpu_program
from kiln.errors import KilnError
from kiln.runtime.kvcache import KVAllocator
from kiln.runtime.sampling import Sampling, filtered_probs
from kiln.runtime.state import Request

LOOKUP_NGRAM = 3  # prompt lookup matches the last 3, 2 or 1 tokens, longest first
LOOKUP_MATCHES = 2  # ... and drafts what followed its 2 most recent matches
RECYCLE_TOP = 8  # candidates kept per token by the recycling table
STAT_KEYS = ("verify_calls", "drafted", "accepted", "committed", "sequence_rounds", "fused_rounds")


class Tree:
    """One sequence's draft: node 0 is the root (the last committed token); ``q`` holds the draft
    distribution of each node (None for deterministic drafts)."""

    def __init__(self, root: int):
        self.tokens = [root]
        self.parent = [-1]
        self.depth = [0]
        self.q: list[torch.Tensor | None] = [None]
        self.kids: list[dict[int, int]] = [{}]

    def add(self, parent: int, token: int, q: torch.Tensor | None = None) -> int:
        hit = self.kids[parent].get(token)
        if hit is not None:
            return hit
        self.tokens.append(token)
        self.parent.append(parent)
        self.depth.append(self.depth[parent] + 1)
        self.q.append(q)
        self.kids.append({})
        self.kids[parent][token] = len(self.tokens) - 1
        return len(self.tokens) - 1

    def __len__(self) -> int:
        return len(self.tokens)

    def mask(self) -> torch.Tensor:
        n = len(self.tokens)
        m = torch.zeros(n, n, dtype=torch.bool)
        for i in range(n):
            j = i
            while j >= 0:
                m[i, j] = True
                j = self.parent[j]
        return m


@dataclass
class NgramState:
    """One request's n-gram drafter state: the recycled successor table and each sequence's n-gram index."""

    succ: dict[int, tuple[list[int], list[float]]]  # token -> (next tokens, probabilities)
    index: list[dict[int, dict[tuple, list[int]]]]  # per sequence: n -> n-gram -> its most recent end indices
    indexed: list[int]  # per sequence: tokens indexed so far


@dataclass
class DraftCache:
    """One request's place in a draft model's KV cache: its blocks and table, and per sequence how many of
    its tokens the draft cache holds."""

    blocks: list[list[int]]
    table: torch.Tensor
    known: list[int]


class NgramDrafter:
    """Model-free drafts: the continuation of the longest earlier match of the last tokens (prompt
    lookup, CopySpec style) as one branch, and a tree of the target's own likeliest next tokens after
    each token, recycled from earlier verify steps (Token Recycling style). The recycled part grows
    best-first: the node with the highest path probability (the product of the recycled
    probabilities along its path) is added next, up to ``nodes`` nodes, so the budget goes where
    acceptance is likeliest (a dynamic tree, as in EAGLE-2 or Sequoia, without a draft model)."""

    def __init__(self, k: int, nodes: int):
        self.k = k
        self.nodes = nodes

    def start(self, prompts: list[list[int]]) -> NgramState:
        """A request's fresh tables, seeded with its prompts."""
        st = NgramState({}, [{n: {} for n in range(1, LOOKUP_NGRAM + 1)} for _ in prompts], [0] * len(prompts))
        for p in prompts:  # until the target has spoken: the prompt's bigrams, most recent first
            for a, b in itertools.pairwise(p):
                old = [t for t in st.succ.get(a, ([], []))[0] if t != b]
                cands = [b, *old][:RECYCLE_TOP]
                st.succ[a] = (cands, [0.5 ** (i + 1) for i in range(len(cands))])
        return st

    def _update_index(self, st: NgramState, s: int, toks: list[int]) -> None:
        # n-grams ending before the last token (the current suffix must not match itself), with the
        # LOOKUP_MATCHES most recent places each ended
        for end in range(max(st.indexed[s], 1), len(toks)):
            for n, table in st.index[s].items():
                if end >= n:
                    key = tuple(toks[end - n:end])
                    table[key] = [end, *table.get(key, [])][:LOOKUP_MATCHES]
        st.indexed[s] = max(st.indexed[s], len(toks))

    def lookup(self, st: NgramState, s: int, toks: list[int]) -> list[list[int]]:
        """Continuations of the longest earlier match of the last tokens, most recent first: the
        first up to ``k`` tokens, the others (other places the same n-gram ended) up to ``k // 2``."""
        self._update_index(st, s, toks)
        for n in range(LOOKUP_NGRAM, 0, -1):
            if len(toks) < n:
                continue
            ends = st.index[s][n].get(tuple(toks[-n:]))
            if ends:
                return [toks[e:e + (self.k if i == 0 else self.k // 2)] for i, e in enumerate(ends)]
        return []

    def draft(self, st: NgramState, s: int, toks: list[int], budget: int) -> Tree:
        tree = Tree(toks[-1])
        if budget <= 0:
            return tree
        for branch in self.lookup(st, s, toks):
            node = 0
            for t in branch[:budget]:
                node = tree.add(node, t)
        heap: list[tuple[float, int, int, int]] = []  # (-path probability, tie-break, parent node, token)
        expanded: set[int] = set()
        order = itertools.count()

        def expand(n: int, prob: float) -> None:
            if n in expanded or tree.depth[n] >= budget:
                return
            expanded.add(n)
            cands, probs = st.succ.get(tree.tokens[n], ([], []))
            for t, pt in zip(cands, probs):
                heapq.heappush(heap, (-prob * pt, next(order), n, t))

        for n in range(len(tree)):  # the lookup branch counts as certain
            expand(n, 1.0)
        added = 0
        while heap and added < self.nodes:
            negp, _, parent, t = heapq.heappop(heap)
            before = len(tree)
            n = tree.add(parent, t)
            added += len(tree) - before
            expand(n, -negp)
        return tree

    def observe(self, st: NgramState, tokens: list[int], logits: torch.Tensor) -> None:
        """Recycle the target's likeliest next tokens after each verified node (logits [N, V])."""
        top = torch.topk(torch.softmax(logits.float(), -1), min(RECYCLE_TOP, logits.shape[-1]), dim=-1)
        for t, ids, probs in zip(tokens, top.indices.tolist(), top.values.tolist()):
            st.succ[t] = (ids, probs)


class ModelDrafter:
    """Chains from a draft model (a separate small model, or the target with layers skipped) with
    its own KV cache; ``adaptive`` > 0 stops a chain once the draft's top probability falls below it."""

    def __init__(self, m, max_positions: int, capacity_tokens: int, device: str, k: int, adaptive: float):
        self.prefill = cpu_program(m["draft_prefill"], m.weights)
        self.decode = cpu_program(m["draft_decode"], m.weights)
        self.kv = KVAllocator(m.meta["draft_kv_cache"], max_positions, capacity_tokens, device)
        self.k, self.adaptive = k, adaptive
        # the whole round as one program (fixed-length drafts): catch-up, k draft steps, verify, accept
        self.step = cpu_program(m["spec_step"], m.weights) if "spec_step" in m.programs else None

    def start(self, lengths: list[int]) -> DraftCache:
        """A request's blocks in the draft cache, ``lengths`` positions per sequence."""
        blocks = self.kv.reserve([min(n, self.kv.max_positions) for n in lengths])
        return DraftCache(blocks, self.kv.table(blocks), [0] * len(lengths))

    def finish(self, dc: DraftCache | None) -> None:
        if dc is not None and dc.blocks:
            self.kv.release(dc.blocks)
            dc.blocks = []

    def _pick(self, logits: torch.Tensor,
              sampling: Sampling) -> tuple[list[int], list[torch.Tensor | None], list[float]]:
        temperature, top_k, top_p = sampling.temperature, sampling.top_k, sampling.top_p
        if temperature == 0:
            probs = torch.softmax(logits.float(), -1) if self.adaptive else None
            picked = logits.argmax(-1).tolist()
            conf = probs.max(-1).values.tolist() if probs is not None else [1.0] * len(picked)
            return picked, [None] * len(picked), conf
        q = filtered_probs(logits, temperature, top_k, top_p)
        picked = torch.multinomial(q, 1, generator=sampling.generator).squeeze(-1).tolist()
        return picked, list(q), q.max(-1).values.tolist()

    def catch_up(self, dc: DraftCache, seqs: list[int], toks: list[list[int]]) -> list[torch.Tensor]:
        """The draft prefill's inputs for each sequence's tokens not yet in the draft cache (the
        last of them is the root); marks them known."""
        flat = [(j, p, toks[j][p]) for j, s in enumerate(seqs) for p in range(dc.known[s], len(toks[j]))]
        ids = torch.tensor([[t for _, _, t in flat]], dtype=torch.long)
        pos = torch.tensor([p for _, p, _ in flat], dtype=torch.long)
        row = torch.tensor([seqs[j] for j, _, _ in flat], dtype=torch.long)
        ends = [i for i, (j, p, _) in enumerate(flat) if p == len(toks[j]) - 1]
        for j, s in enumerate(seqs):
            dc.known[s] = len(toks[j])
        return [ids, pos, row, dc.table, *self.kv.args(), torch.tensor(ends, dtype=torch.long)]

    def draft(self, dc: DraftCache, seqs: list[int], toks: list[list[int]], budgets: list[int],
              sampling: Sampling) -> list[Tree]:
        cache = self.kv.args()  # k_cache, v_cache (and an int8 cache's scales)
        trees = [Tree(t[-1]) for t in toks]
        # catch the draft cache up with each sequence's committed tokens, then draft the first token
        logits = self.prefill(*self.catch_up(dc, seqs, toks))[0][0]
        live = [j for j in range(len(seqs)) if budgets[j] > 0]
        picked, qs, _ = self._pick(logits, sampling)
        leaf = [0] * len(seqs)
        for j in live:
            leaf[j] = trees[j].add(0, picked[j], qs[j])
        for step in range(1, self.k):
            live = [j for j in live if budgets[j] > step]
            if not live:
                break
            ids = torch.tensor([[trees[j].tokens[leaf[j]] for j in live]], dtype=torch.long)
            pos = torch.tensor([len(toks[j]) - 1 + step for j in live], dtype=torch.long)
            row = torch.tensor([seqs[j] for j in live], dtype=torch.long)
            logits = self.decode(ids, pos, row, dc.table, *cache)[0][0]
            picked, qs, conf = self._pick(logits, sampling)
            keep = []
            for r, j in enumerate(live):
                if self.adaptive and conf[r] < self.adaptive:
                    continue  # SpecDec++-style: stop this chain where the draft is unsure
                leaf[j] = trees[j].add(leaf[j], picked[r], qs[r])
                keep.append(j)
            live = keep
        return trees

    def accepted(self, dc: DraftCache, s: int, committed_before: int, drafted: int, accepted: int) -> None:
        # the draft fed its tokens 1..drafted-1; those the target accepted stay valid in its cache
        dc.known[s] = committed_before + min(accepted, max(drafted - 1, 0))


class SpecDecoder:
    """The draft -> verify strategy (``kiln.runtime.state.DecodeStrategy``) for a module with a
    ``verify`` program: ``module``'s drafter, the target's KV cache ``kv`` (its size and device also
    size the draft model's cache), the model's context and vocabulary sizes. Everything that belongs to
    one request (its counters, the drafter's tables or draft-cache blocks) lives in its ``Request``
    (``stats``, ``draft``), so requests can interleave on one decoder; ``stats`` points at the latest
    request's counters, which ``summary()`` reports by default."""

    def __init__(self, module, kv: KVAllocator, max_positions: int, vocab_size: int):
        m = module
        self.max_positions, self.vocab_size = max_positions, vocab_size
        self.info = dict(m.meta.get("speculative") or {})
        self.verify = cpu_program(m["verify"], m.weights)
        drafter = self.info.get("drafter")
        k = int(self.info.get("k", 4))
        if drafter == "ngram":
            self.drafter: NgramDrafter | ModelDrafter = NgramDrafter(k, int(self.info.get("tree_nodes", 0)))
            self.max_nodes = 1 + k + (k // 2) * (LOOKUP_MATCHES - 1) + int(self.info.get("tree_nodes", 0))
        elif drafter in ("model", "self"):
            if "draft_decode" not in m.programs or "draft_kv_cache" not in m.meta:
                raise KilnError(f"the artifact's {drafter} drafter has no draft_decode program or draft cache")
            self.drafter = ModelDrafter(m, max_positions, kv.capacity_tokens, kv.device, k,
                                        float(self.info.get("adaptive", 0.0)))
            self.max_nodes = 1 + k
        else:
            raise KilnError(f"the artifact's speculative drafter {drafter!r} is unknown to this runtime")
        self.stats = dict.fromkeys(STAT_KEYS, 0)

    # -- the strategy ------------------------------------------------------------
    def reserve(self, req: Request) -> list[int]:
        """Positions per sequence: the committed tokens plus the tree slots beyond them."""
        extra = self.max_nodes - 1
        return [min(len(p) + req.max_new - 1 + extra, self.max_positions) for p in req.prompts]

    def begin(self, req: Request) -> None:
        req.stats = self.stats = dict.fromkeys(STAT_KEYS, 0)
        if isinstance(self.drafter, ModelDrafter):
            req.draft = self.drafter.start(req.reserved)
        else:
            req.draft = self.drafter.start(req.prompts)

    def step(self, req: Request, active: list[int]) -> None:
        """One round for the sequences in ``active``."""
        self._round(req, active)

    def end(self, req: Request) -> None:
        if isinstance(self.drafter, ModelDrafter):
            self.drafter.finish(req.draft)

    def report(self, req: Request) -> dict:
        return {"prompt_tokens": req.prompt_tokens, **self.summary(req.stats)}

    # -- a round -----------------------------------------------------------------
    def _commit(self, req: Request, s: int, new: list[int]) -> None:
        req.stats["committed"] += req.commit(s, new)

    def _round(self, req: Request, active: list[int]) -> None:
        toks, lengths = req.tokens, req.reserved
        # budget: drafted depth d yields up to d + 1 tokens; node slots must stay in the reservation
        budgets = [min(req.max_new - req.made[s] - 1, lengths[s] - len(toks[s]), self.max_positions - len(toks[s]))
                   for s in active]
        d = self.drafter
        if isinstance(d, ModelDrafter) and d.step is not None and all(b >= d.k for b in budgets) and \
                all(lengths[s] - len(toks[s]) >= d.k for s in active):
            return self._fused_round(req, active)
        if isinstance(self.drafter, ModelDrafter):
            trees = self.drafter.draft(req.draft, active, [toks[s] for s in active], budgets, req.sampling)
        else:
            trees = [self.drafter.draft(req.draft, s, toks[s], b) for s, b in zip(active, budgets)]
        for j, (s, tree) in enumerate(zip(active, trees)):  # the slot limit binds whole trees, not depth
            room = lengths[s] - len(toks[s]) + 1
            if len(tree) > room:
                trees[j] = _truncate(tree, room)
        ids, pos, seq, slot, parent = [], [], [], [], []
        for s, tree in zip(active, trees):
            base = len(toks[s]) - 1
            off = len(ids)
            ids += tree.tokens
            pos += [base + d for d in tree.depth]
            slot += [base + i for i in range(len(tree))]
            seq += [s] * len(tree)
            parent += [p + off if p >= 0 else -1 for p in tree.parent]
        n = len(ids)
        mask = torch.zeros(n, n, dtype=torch.bool)
        off = 0
        for tree in trees:
            mask[off:off + len(tree), off:off + len(tree)] = tree.mask()
            off += len(tree)
        sampled_q = not req.sampling.greedy and any(q is not None for t in trees for q in t.q)
        if sampled_q:
            q = torch.zeros(n, self.vocab_size)
            off = 0
            for tree in trees:
                for i, qi in enumerate(tree.q):
                    if qi is not None:
                        q[off + i] = qi
                off += len(tree)
        else:
            q = torch.zeros(n, 0)
        seed = req.sampling.draw_seed()
        accepted, nxt, logits = self.verify(_i64([ids]), _i64(pos), _i64(seq), req.table, *req.cache, _i64(slot),
                                            mask, _i64(parent), q, req.sampling.program_args, seed)
        req.stats["verify_calls"] += 1
        if isinstance(self.drafter, NgramDrafter):
            self.drafter.observe(req.draft, ids, logits[0])
        acc, nx = accepted.tolist(), nxt.tolist()
        off = 0
        for s, tree in zip(active, trees):
            path = [i for i in range(len(tree)) if acc[off + i]]
            bonus = next(nx[off + i] for i in range(len(tree)) if nx[off + i] >= 0)
            before = len(toks[s])
            req.stats["drafted"] += len(tree) - 1
            req.stats["accepted"] += len(path) - 1
            req.stats["sequence_rounds"] += 1
            self._commit(req, s, [tree.tokens[i] for i in path[1:]] + [bonus])
            if isinstance(self.drafter, ModelDrafter):
                self.drafter.accepted(req.draft, s, before, len(tree) - 1, len(path) - 1)
            off += len(tree)

    def _fused_round(self, req: Request, active: list[int]) -> None:
        """A round as one call of ``spec_step``: draft k tokens per sequence, verify, accept, roll back."""
        d, toks = self.drafter, req.tokens
        catch = d.catch_up(req.draft, active, [toks[s] for s in active])
        seed = req.sampling.draw_seed()
        k_cache, v_cache = req.cache[:2]
        chain, accepted, nxt, _ = d.step(*catch, _i64([toks[s][-1] for s in active]),
                                         _i64([len(toks[s]) - 1 for s in active]), _i64(active), req.table,
                                         k_cache, v_cache, req.sampling.program_args, seed)
        req.stats["verify_calls"] += 1
        req.stats["fused_rounds"] += 1
        width = d.k + 1
        ids, acc, nx = chain[0].tolist(), accepted.tolist(), nxt.tolist()
        for j, s in enumerate(active):
            lo = j * width
            path = [i for i in range(lo, lo + width) if acc[i]]
            bonus = next(nx[i] for i in range(lo, lo + width) if nx[i] >= 0)
            before = len(toks[s])
            req.stats["drafted"] += d.k
            req.stats["accepted"] += len(path) - 1
            req.stats["sequence_rounds"] += 1
            self._commit(req, s, [ids[i] for i in path[1:]] + [bonus])
            d.accepted(req.draft, s, before, d.k, len(path) - 1)

    def summary(self, stats: dict | None = None) -> dict:
        """The reported figures of ``stats`` (default: the latest request's)."""
        st = self.stats if stats is None else stats
        rounds = max(st["sequence_rounds"], 1)
        return {"speculative": self.info.get("drafter"), "verify_calls": st["verify_calls"],
                "accepted_per_verify": round((st["accepted"] + st["sequence_rounds"]) / rounds, 3),
                "acceptance_rate": round(st["accepted"] / st["drafted"], 4) if st["drafted"] else 0.0,
                "drafted_tokens": st["drafted"], "accepted_tokens": st["accepted"],
                "fused_rounds": st["fused_rounds"]}


def _i64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.long)


def _truncate(tree: Tree, n: int) -> Tree:
    """The first ``n`` nodes (parents come before children, so it is still a tree)."""
    out = Tree(tree.tokens[0])
    for i in range(1, n):
        out.add(tree.parent[i], tree.tokens[i], tree.q[i])
    return out
