"""Running a program on the Triton target: the generated kernels where the ``group-kernels`` pass put
them, torch on the same device for every other op.

``TritonProgram(program, weights, device)`` regenerates the program's Triton source from the IR, writes
it to a private cache directory (Triton's ``@jit`` reads a kernel's source from its file) and imports
it; then it orders the program's kernels and remaining ops (a stable topological order: a kernel runs
where its last input is ready) and runs them. On a machine without a GPU set ``TRITON_INTERPRET=1``
before Triton is imported and use ``device="cpu"``: Triton's interpreter then runs every kernel on CPU
tensors (the tests do this). The ``launch_*`` functions take their outputs from the caller, so tests
can poison them and check that every element is written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kiln.codegen.triton import KINDS, ProgramKernels, generate_program
from kiln.codegen.triton.rowwise import KernelSource, next_pow2
from kiln.codegen.triton.templates import DEFAULTS, head_block
from kiln.errors import KilnError
from kiln.ir.core import IRError, Op, Program
from kiln.ir.interpret import ExecContext, PreparedOp, bind_inputs
from kiln.ir.semantics import TORCH_DTYPE
from kiln.ir.types import eval_dim


def triton_available() -> tuple[bool, str]:
    """(usable, why not): Triton imports, and there is a CUDA GPU or ``TRITON_INTERPRET=1``."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False, "Triton is not installed (pip install triton)"
    if torch.cuda.is_available() or interpreting():
        return True, ""
    return False, "target cuda needs a CUDA GPU, or TRITON_INTERPRET=1 to run its kernels on the CPU (slow)"


def interpreting() -> bool:
    """Kernels run in Triton's interpreter (``TRITON_INTERPRET=1``), on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def load_source(source: str, tag: str) -> Any:
    """Import generated Triton source as a module (written under a private cache dir, named by hash)."""
    root = Path(os.environ.get("KILN_TRITON_CACHE", Path(tempfile.gettempdir()) / f"kiln-triton-{os.getuid()}"))
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    path = root / f"kiln_{tag}_{digest}.py"
    if not path.exists() or path.read_text() != source:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(source)
        tmp.replace(path)
    spec = importlib.util.spec_from_file_location(f"kiln_triton_{tag}_{digest}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# -- launchers ---------------------------------------------------------------------------------------


def launch_rowwise(fn, ks: KernelSource, inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> None:
    width = ks.meta["width"]
    rows = outputs[0].numel() // width if width else 0
    if rows == 0:
        return
    ins = [t.contiguous() for t in inputs]
    fn[(rows,)](*ins, *outputs, BLOCK=ks.meta["BLOCK"], num_warps=ks.meta["num_warps"])


def _launch_matmul(mod, ks: KernelSource, x2: torch.Tensor, weight: list[torch.Tensor], b: torch.Tensor | None,
                   epilogue: list[torch.Tensor], outputs: list[torch.Tensor], kinds: tuple[str, str], upcast: bool,
                   params: dict | None) -> None:
    """The GEMV (``{ks.name}_gemv``, up to ``GEMV_MAX_ROWS`` rows, launch parameters ``DEFAULTS[kinds[0]]``)
    or the tiled kernel (``{ks.name}``, ``DEFAULTS[kinds[1]]``) of a (quantized) linear: x2 [M, K], then the
    weight's tensors as the kernel takes them, bias, epilogue inputs and outputs."""
    n, m = ks.meta["N"], x2.shape[0]
    bias = b if b is not None else weight[0]  # any pointer: HAS_BIAS=False never reads it
    eps = [t.contiguous() for t in epilogue]
    if m <= DEFAULTS["GEMV_MAX_ROWS"]:
        p = {**DEFAULTS[kinds[0]], **(params or {})}
        grid = (m, triton_cdiv(n, p["BLOCK_N"]))
        getattr(mod, f"{ks.name}_gemv")[grid](x2, *weight, bias, *eps, *outputs, m, HAS_BIAS=b is not None,
                                              BLOCK_N=p["BLOCK_N"], BLOCK_K=p["BLOCK_K"], num_warps=p["num_warps"],
                                              num_stages=p["num_stages"])
    else:
        p = {**DEFAULTS[kinds[1]], **(params or {})}
        bm = min(p["BLOCK_M"], max(16, next_pow2(m)))
        grid = (triton_cdiv(m, bm), triton_cdiv(n, p["BLOCK_N"]))
        getattr(mod, ks.name)[grid](x2, *weight, bias, *eps, *outputs, m, HAS_BIAS=b is not None, BLOCK_M=bm,
                                    BLOCK_N=p["BLOCK_N"], BLOCK_K=p["BLOCK_K"], UPCAST=upcast,
                                    num_warps=p["num_warps"], num_stages=p["num_stages"])


def launch_gemm(mod, ks: KernelSource, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                epilogue: list[torch.Tensor], outputs: list[torch.Tensor], params: dict | None = None) -> None:
    x2 = x.reshape(-1, ks.meta["K"]).contiguous()
    if x2.shape[0] == 0:
        return
    _launch_matmul(mod, ks, x2, [w.contiguous()], b, epilogue, outputs, ("gemv", "gemm"), interpreting(), params)


def launch_qgemm(mod, ks: KernelSource, x: torch.Tensor, q: torch.Tensor, s: torch.Tensor, o: torch.Tensor | None,
                 b: torch.Tensor | None, epilogue: list[torch.Tensor], outputs: list[torch.Tensor],
                 params: dict | None = None) -> None:
    """``kiln.qlinear``: x [..., K] with q, scales[, offsets][, bias] as the op takes them -> outputs
    (the linear's result or its epilogue's, [..., N]). GEMV up to ``GEMV_MAX_ROWS`` rows, tiles beyond."""
    x2 = x.reshape(-1, ks.meta["K"]).contiguous()
    if x2.shape[0] == 0:
        return
    q, s = q.contiguous(), s.contiguous()
    o = o.contiguous() if o is not None else s  # any pointer: symmetric kernels never read it
    _launch_matmul(mod, ks, x2, [q, s, o], b, epilogue, outputs, ("qgemv", "qgemm"),
                   interpreting() and x2.dtype != torch.float32, params)


def launch_rope(fn, ks: KernelSource, xs: list[torch.Tensor], cos: torch.Tensor, sin: torch.Tensor,
                outputs: list[torch.Tensor]) -> None:
    b, _, t, _ = xs[0].shape
    if b * t == 0:
        return
    args: list[Any] = []
    for x, o in zip(xs, outputs):
        args += [x, o, *x.stride(), x.shape[1]]
    grid = (b * t, sum(x.shape[1] for x in xs))
    fn[grid](cos.contiguous(), sin.contiguous(), t, *args, BLOCK=ks.meta["BLOCK"],
             num_warps=DEFAULTS["rope"]["num_warps"])


def launch_attention(mod, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor, scale: float,
                     causal: bool, params: dict | None = None) -> None:
    """q [B, H, T, D], k, v [B, KVH, S, D] (last dim contiguous) -> out [B, H, T, D] contiguous."""
    p = {**DEFAULTS["attention"], **(params or {})}
    b, h, t, d = q.shape
    kvh, s = k.shape[1], k.shape[2]
    if b * h * t == 0:
        return
    q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
    bm = min(p["BLOCK_M"], max(16, next_pow2(t)))
    grid = (triton_cdiv(t, bm), b * h)
    mod.flash_attention[grid](q, k, v, out, t, s, float(scale), q.stride(0), q.stride(1), q.stride(2),
                              k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
                              H=h, KVH=kvh, D=d, CAUSAL=bool(causal), IEEE=q.dtype == torch.float32,
                              UPCAST=interpreting() and q.dtype != torch.float32,
                              BLOCK_M=bm, BLOCK_N=p["BLOCK_N"], BLOCK_D=head_block(d), num_warps=p["num_warps"],
                              num_stages=p["num_stages"])


def _split_attention(mod, q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, scales: tuple | None,
                     pos: torch.Tensor, seq: torch.Tensor, table: torch.Tensor, out: torch.Tensor, layer: int,
                     scale: float, params: dict | None) -> None:
    """Launches ``cache_attention_split`` (with ``scales`` = (ks, vs): over an int8 cache) and the
    log-sum-exp merge."""
    p = {**DEFAULTS["cache_attention"], **(params or {})}
    _, h, n, d = q.shape
    _, _, kvh, bs, _ = kc.shape
    if n == 0:
        return
    q = q.contiguous()
    kc, vc = kc.contiguous(), vc.contiguous()  # the pool is allocated contiguous: no copy
    if scales is None:  # never read when SCALED is off
        ks, vs, t_strides = kc, vc, [0, 0, 0]
    else:
        ks, vs = (t.contiguous() for t in scales)
        t_strides = list(ks.stride()[:3])
    mb = table.shape[1]
    splits = max(1, triton_cdiv(mb * bs, p["CHUNK"]))
    o_part = torch.empty(n, h, splits, d, dtype=torch.float32, device=q.device)
    m_part = torch.empty(n, h, splits, dtype=torch.float32, device=q.device)
    l_part = torch.empty(n, h, splits, dtype=torch.float32, device=q.device)
    bd = next_pow2(d)
    mod.cache_attention_split[(n, h, splits)](
        q, kc, ks, vc, vs, pos, seq, table.contiguous(), o_part, m_part, l_part, n, mb, float(scale), layer,
        *kc.stride()[:4], *t_strides, H=h, KVH=kvh, D=d, BS=bs, SCALED=scales is not None, CHUNK=p["CHUNK"],
        BLOCK_N=p["BLOCK_N"], BLOCK_D=bd, num_warps=p["num_warps"], num_stages=p["num_stages"])
    mod.cache_attention_merge[(n, h)](o_part, m_part, l_part, out, n, splits, H=h, D=d, BLOCK_S=next_pow2(splits),
                                      BLOCK_D=bd, num_warps=1)


def launch_cache_attention(mod, q: torch.Tensor, kc: torch.Tensor, vc: torch.Tensor, pos: torch.Tensor,
                           seq: torch.Tensor, table: torch.Tensor, out: torch.Tensor, layer: int, scale: float,
                           params: dict | None = None) -> None:
    """q [1, H, N, D]; caches [L, NB, KVH, BS, D]; out [1, H, N, D]. The number of splits depends only on
    the table's shape (MB * BS / CHUNK), never on the data, so a captured CUDA graph stays valid."""
    _split_attention(mod, q, kc, vc, None, pos, seq, table, out, layer, scale, params)


def launch_cache_attention_q8(mod, q: torch.Tensor, kc: torch.Tensor, ks: torch.Tensor, vc: torch.Tensor,
                              vs: torch.Tensor, pos: torch.Tensor, seq: torch.Tensor, table: torch.Tensor,
                              out: torch.Tensor, layer: int, scale: float, params: dict | None = None) -> None:
    """``launch_cache_attention`` over the int8 cache: caches i8 [L, NB, KVH, BS, D] with f32 scales
    [L, NB, KVH, BS] (ks for K, vs for V)."""
    _split_attention(mod, q, kc, vc, (ks, vs), pos, seq, table, out, layer, scale, params)


def launch_cache_write(mod, xs: list[torch.Tensor], caches: list[torch.Tensor], pos: torch.Tensor,
                       seq: torch.Tensor, table: torch.Tensor, layer: int) -> None:
    """Writes x [1, KVH, N, D] (one or two: K and V) into its cache [L, NB, KVH, BS, D], in place."""
    _, kvh, n, d = xs[0].shape
    if n == 0:
        return
    xs = [x if x.stride(-1) == 1 else x.contiguous() for x in xs]
    x1, c1 = (xs[1], caches[1]) if len(xs) > 1 else (xs[0], caches[0])
    for c in caches:
        if not c.is_contiguous():
            raise KilnError("the KV cache must be contiguous for the Triton cache write")
    mod.cache_write[(n, kvh)](xs[0], caches[0], x1, c1, pos, seq, table.contiguous(), table.shape[1], layer,
                              xs[0].stride(1), xs[0].stride(2), x1.stride(1), x1.stride(2), *caches[0].stride()[:4],
                              D=d, BS=caches[0].shape[3], TWO=len(xs) > 1, BLOCK_D=next_pow2(d), num_warps=1)


def launch_cache_write_q8(mod, xs: list[torch.Tensor], caches: list[torch.Tensor], scales: list[torch.Tensor],
                          pos: torch.Tensor, seq: torch.Tensor, table: torch.Tensor, layer: int) -> None:
    """Quantizes x [1, KVH, N, D] (one or two: K and V) row by row to int8 and writes the codes into its
    cache [L, NB, KVH, BS, D] and the scales into [L, NB, KVH, BS], in place."""
    _, kvh, n, d = xs[0].shape
    if n == 0:
        return
    xs = [x if x.stride(-1) == 1 else x.contiguous() for x in xs]
    for t in (*caches, *scales):
        if not t.is_contiguous():
            raise KilnError("the int8 KV cache and its scales must be contiguous for the Triton cache write")
    two = len(xs) > 1
    x1, c1, s1 = (xs[1], caches[1], scales[1]) if two else (xs[0], caches[0], scales[0])
    mod.cache_write_q8[(n, kvh)](xs[0], caches[0], scales[0], x1, c1, s1, pos, seq, table.contiguous(), table.shape[1],
                                 layer, xs[0].stride(1), xs[0].stride(2), x1.stride(1), x1.stride(2),
                                 *caches[0].stride()[:4], *scales[0].stride()[:3], D=d, BS=caches[0].shape[3],
                                 TWO=two, BLOCK_D=next_pow2(d), num_warps=1)


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


# -- the program -------------------------------------------------------------------------------------


def guard_cache_indices(label: str, caches: list[torch.Tensor], tokens: list[torch.Tensor], pos: torch.Tensor,
                        seq: torch.Tensor, table: torch.Tensor, layer: int, reads_history: bool,
                        checked: set | None = None) -> None:
    """Refuse (IRError), before a cache kernel launches, indices that would take it outside its tensors.

    The kernels address the pool with raw offsets (``layer``, ``table[seq, pos // BS]``, ``pos % BS``)
    and no bounds masks, and an artifact's IR may compute ``pos``/``seq``/``table`` itself, so every
    index is checked on the host first: the layer within every cache, one ``pos``/``seq`` per token,
    sequences within the table, positions within a table row, and every block the kernel touches
    (the token's own, or with ``reads_history`` every block up to it) within the pool. The index
    ranges (a synchronisation on a GPU) are checked once per set of index tensors: ``checked``, kept
    for one program call, remembers those already seen (every layer's kernels share them)."""
    where = f"kernel {label}"
    for c in caches:
        if c.dim() != 5 or not 0 <= layer < c.shape[0]:
            raise IRError(f"{where}: layer {layer} is outside the cache {tuple(c.shape)}")
        if c.shape[1] != caches[0].shape[1] or c.shape[3] != caches[0].shape[3]:
            raise IRError(f"{where}: its caches disagree in blocks or block size")
    n = pos.numel()
    if pos.dim() != 1 or seq.shape != pos.shape or any(t.dim() != 4 or t.shape[2] != n for t in tokens):
        raise IRError(f"{where}: pos {tuple(pos.shape)}, seq {tuple(seq.shape)} and the tokens "
                      f"{[tuple(t.shape) for t in tokens]} disagree")
    nb, bs = caches[0].shape[1], caches[0].shape[3]
    key = (id(pos), id(seq), id(table), nb, bs, reads_history)
    if n == 0 or (checked is not None and key in checked):
        return
    rows, width = table.shape
    if int(seq.min()) < 0 or int(seq.max()) >= rows or int(pos.min()) < 0 or int(pos.max()) >= width * bs:
        raise IRError(f"{where}: a token's sequence or position is outside the block table [{rows}, {width}] "
                      f"of blocks of {bs}")
    last = pos // bs
    if reads_history:
        touched = table[seq][torch.arange(width, device=table.device)[None, :] <= last[:, None]]
    else:
        touched = table[seq, last]
    if touched.numel() and (int(touched.min()) < 0 or int(touched.max()) >= nb):
        raise IRError(f"{where}: the block table points outside the pool of {nb} blocks")
    if checked is not None:
        checked.add(key)


class TritonProgram:
    """A program ready to run on the Triton target: ``outputs = prog(*tensors)``. ``poison=True`` fills
    every kernel output with NaN before the launch (tests: an element a kernel fails to write shows)."""

    def __init__(self, program: Program, weights: dict[str, torch.Tensor], device: str = "cpu",
                 poison: bool = False):
        ok, why = triton_available()
        if not ok:
            raise KilnError(why)
        self.program = program
        self.device = device
        self.poison = poison
        from kiln.codegen.native import unpacked

        self.weights = {k: unpacked(v).to(device) for k, v in weights.items()}  # a CPU runtime may hold them packed
        self.kernels: ProgramKernels = generate_program(program)
        self.module = load_source(self.kernels.source, program.name) if self.kernels.kernels else None
        self.schedule = self._schedule()
        self.launched: dict[str, int] = {}  # kernel kind -> launches (for tests and stats)
        # each kernel op's operands by declared name, resolved once: launchers read them per launch
        self.named: dict[int, dict[str, Any]] = {id(o): o.operand_map() for ops in self.kernels.groups.values()
                                                 for o in ops}
        # the ops outside kernels, prepared once for the torch fallback (kiln/ir/interpret.py)
        self.fallback = {id(ops[0]): PreparedOp(ops[0]) for label, ops in self.schedule if label is None}

    def _schedule(self) -> list[tuple[str | None, list[Op]]]:
        """Kernels and single ops in a stable topological order (each unit as soon as its inputs exist,
        ties broken by program order)."""
        label_of = {id(o): lab for lab, ops in self.kernels.groups.items() for o in ops}
        units: list[tuple[str | None, list[Op]]] = []
        seen: set[str] = set()
        for op in self.program.ops:
            if op.name == "kiln.return":
                continue
            lab = label_of.get(id(op))
            if lab is None:
                units.append((None, [op]))
            elif lab not in seen:
                seen.add(lab)
                units.append((lab, self.kernels.groups[lab]))
        unit_of = {id(o): i for i, (_, ops) in enumerate(units) for o in ops}
        deps = [set() for _ in units]
        for i, (_, ops) in enumerate(units):
            for o in ops:
                for v in o.operands:
                    if v.owner is not None and unit_of[id(v.owner)] != i:
                        deps[i].add(unit_of[id(v.owner)])
        import heapq

        users: list[list[int]] = [[] for _ in units]
        for i, d in enumerate(deps):
            for j in d:
                users[j].append(i)
        count = [len(d) for d in deps]
        ready = [i for i, c in enumerate(count) if c == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(units[i])
            for u in users[i]:
                count[u] -= 1
                if count[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(units):
            raise IRError(f"program {self.program.name!r}: its kernel groups form a cycle (re-run group-kernels)")
        return order

    def __call__(self, *args: torch.Tensor) -> list[torch.Tensor]:
        p = self.program
        env = bind_inputs(p, args)  # checks ranks, dtypes and symbolic sizes like the CPU target
        vals: dict[int, Any] = {id(a): t.to(self.device) for a, t in zip(p.args, args)}
        ctx = ExecContext(env, self.weights, self.device)
        where = f"program {p.name!r}"  # for the fallback's errors
        self.checked_indices: set = set()  # index tensors of this call already checked by guard_cache_indices
        for label, ops in self.schedule:
            if label is None:
                op = ops[0]
                outs = self.fallback[id(op)].execute(ctx, [vals[id(v)] for v in op.operands], where)
                for r, t in zip(op.results, outs):
                    vals[id(r)] = t
                continue
            self._run_kernel(label, ops, vals, env)
        return [vals[id(v)] for v in p.outputs]

    def empty(self, v, env) -> torch.Tensor:
        """A new tensor for value ``v`` at sizes ``env`` on this program's device (NaN-filled when poisoned:
        tests then see any element a kernel fails to write)."""
        shape = [eval_dim(d, env) if isinstance(d, str) else d for d in v.type.shape]
        if self.poison:
            return torch.full(shape, float("nan"), dtype=TORCH_DTYPE[v.type.dtype], device=self.device)
        return torch.empty(shape, dtype=TORCH_DTYPE[v.type.dtype], device=self.device)

    def _run_kernel(self, label: str, ops: list[Op], vals: dict[int, Any], env: dict[str, int]) -> None:
        ks = self.kernels.kernels[label]
        kind = ks.meta["kind"]
        launch = LAUNCHERS.get(kind)
        if launch is None:
            raise IRError(f"kernel {label}: unknown kind {kind!r}")
        self.launched[kind] = self.launched.get(kind, 0) + 1
        outs = launch(self, label, ops, ks, vals, env)
        for v, t in zip(ks.outputs, outs):
            vals[id(v)] = t


# kind -> launcher(program, label, ops, kernel source, values by id, sizes) -> the kernel's outputs; one per
# kind of the target's registry (kiln.codegen.triton.KINDS), which a test checks
Launcher = Callable[["TritonProgram", str, list[Op], KernelSource, dict[int, Any], dict[str, int]], list]
LAUNCHERS: dict[str, Launcher] = {}


def launcher(kind: str):
    def register(fn: Launcher) -> Launcher:
        if kind not in KINDS:
            raise IRError(f"launcher for {kind!r}: no such kernel kind in kiln.codegen.triton.KINDS")
        LAUNCHERS[kind] = fn
        return fn
    return register


@launcher("rowwise")
def _launch_rowwise(tp, label, ops, ks, vals, env):
    outs = [tp.empty(v, env) for v in ks.outputs]
    launch_rowwise(getattr(tp.module, label), ks, [vals[id(i.value)] for i in ks.inputs], outs)
    return outs


def _args(tp, op, vals, *names):
    """The tensors of ``op``'s operands ``names`` (None for an absent optional one)."""
    o = tp.named[id(op)]
    return [None if o[n] is None else vals[id(o[n])] for n in names]


@launcher("gemm")
def _launch_gemm(tp, label, ops, ks, vals, env):
    x, w, b = _args(tp, ops[0], vals, "x", "weight", "bias")
    outs = [tp.empty(v, env) for v in ks.outputs]
    launch_gemm(tp.module, ks, x, w, b, [vals[id(i.value)] for i in ks.inputs], outs)
    return outs


@launcher("qgemm")
def _launch_qgemm(tp, label, ops, ks, vals, env):
    x, q, sc, o, b = _args(tp, ops[0], vals, "x", "q", "scales", "offsets", "bias")
    outs = [tp.empty(v, env) for v in ks.outputs]
    launch_qgemm(tp.module, ks, x, q, sc, o, b, [vals[id(i.value)] for i in ks.inputs], outs)
    return outs


@launcher("rope")
def _launch_rope(tp, label, ops, ks, vals, env):
    cos, sin = _args(tp, ops[0], vals, "cos", "sin")
    outs = [tp.empty(v, env) for v in ks.outputs]
    launch_rope(getattr(tp.module, label), ks, [_args(tp, o, vals, "x")[0] for o in ops], cos, sin, outs)
    return outs


@launcher("attention")
def _launch_attention(tp, label, ops, ks, vals, env):
    op = ops[0]
    q, k, v = _args(tp, op, vals, "q", "k", "v")
    outs = [tp.empty(op.result, env)]
    launch_attention(tp.module, q, k, v, outs[0], op.attrs["scale"], op.attrs.get("causal", False))
    return outs


@launcher("cache_attention")
def _launch_cache_attention(tp, label, ops, ks, vals, env):
    op = ops[0]
    q, kc, vc, pos, seq, table = _args(tp, op, vals, "q", "k_cache", "v_cache", "pos", "seq", "table")
    guard_cache_indices(label, [kc, vc], [q], pos, seq, table, op.attrs["layer"], True, tp.checked_indices)
    outs = [tp.empty(op.result, env)]
    launch_cache_attention(tp.module, q, kc, vc, pos, seq, table, outs[0], op.attrs["layer"], op.attrs["scale"])
    return outs


@launcher("cache_attention_q8")
def _launch_cache_attention_q8(tp, label, ops, ks, vals, env):
    op = ops[0]
    q, kc, kscale, vc, vscale, pos, seq, table = _args(tp, op, vals, "q", "k_cache", "k_scales", "v_cache",
                                                       "v_scales", "pos", "seq", "table")
    guard_cache_indices(label, [kc, vc], [q], pos, seq, table, op.attrs["layer"], True, tp.checked_indices)
    if kscale.shape != kc.shape[:4] or vscale.shape != vc.shape[:4]:
        raise IRError(f"kernel {label}: the cache scales do not match the caches")
    outs = [tp.empty(op.result, env)]
    launch_cache_attention_q8(tp.module, q, kc, kscale, vc, vscale, pos, seq, table, outs[0], op.attrs["layer"],
                              op.attrs["scale"])
    return outs


@launcher("cache_write_q8")
def _launch_cache_write_q8(tp, label, ops, ks, vals, env):  # in place: the results are the caches and scales
    outs = [t for op in ops for t in _args(tp, op, vals, "cache", "scales")]
    pos, seq, table = _args(tp, ops[0], vals, "pos", "seq", "table")
    xs = [_args(tp, op, vals, "x")[0] for op in ops]
    guard_cache_indices(label, outs[0::2], xs, pos, seq, table, ops[0].attrs["layer"], False, tp.checked_indices)
    if any(sc.shape != c.shape[:4] for c, sc in zip(outs[0::2], outs[1::2])):
        raise IRError(f"kernel {label}: the cache scales do not match the caches")
    launch_cache_write_q8(tp.module, xs, outs[0::2], outs[1::2], pos, seq, table, ops[0].attrs["layer"])
    return outs


@launcher("cache_write")
def _launch_cache_write(tp, label, ops, ks, vals, env):  # in place: the results are the caches themselves
    outs = [_args(tp, op, vals, "cache")[0] for op in ops]
    pos, seq, table = _args(tp, ops[0], vals, "pos", "seq", "table")
    xs = [_args(tp, op, vals, "x")[0] for op in ops]
    guard_cache_indices(label, outs, xs, pos, seq, table, ops[0].attrs["layer"], False, tp.checked_indices)
    launch_cache_write(tp.module, xs, outs, pos, seq, table, ops[0].attrs["layer"])
    return outs


__all__ = ["TritonProgram", "launch_attention", "launch_cache_attention", "launch_cache_attention_q8",
           "launch_cache_write", "launch_cache_write_q8", "launch_gemm", "launch_qgemm", "launch_rope",
           "launch_rowwise", "load_source", "triton_available"]
