"""What a generic ``kiln.aten`` op may run: an allowlist, argument checks, and a dry run on meta tensors.

An artifact's IR may come from someone else, and ``kiln.aten`` names a torch op to call, so the op
name alone must not decide what runs. Three gates, each a loud ``IRError`` (never a silent fallback):

1. **Static** (``check_aten_op``, run by the verifier, so at compile time and when an artifact
   loads): the target is ``aten::<name>.<overload>`` with ``<name>`` on ``ALLOWED`` (pure, functional
   ops: arithmetic, reductions, shape and indexing ops, creation from sizes); its schema writes to
   no argument (no in-place op, no ``out=`` variant), takes no generator, storage or stream, and is
   not tagged nondeterministic (no random numbers); every argument matches the schema (a tensor
   operand only where the schema takes a tensor, integers within int64, and a string only for the
   few enumerated options such as ``approximate="tanh"``: no free text, so no path).
2. **Dry run** (``dry_run``, at every call): the op runs first on ``meta`` tensors (shapes only, no
   memory), and the result must have the shapes and dtypes the IR declares and fit in the memory
   the machine has; only then does it run on real tensors. A size argument cannot make an op
   allocate more than its declared result.
3. The artifact loader also checks that the generic ops in the IR are the ones the manifest lists.

``aten::from_file`` (maps a named file), ``copy_`` and friends (write an operand), ``rand*``,
``empty*`` (uninitialised memory) and ``_print`` are outside the allowlist. ``docs/security.md``
has the threat model.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from kiln.errors import IRError
from kiln.ir.semantics import TORCH_DTYPE
from kiln.ir.types import DType, Ref, Sym, eval_dim
from kiln.limits import check_fits

# Pure, functional ATen ops (base names; every overload passes the schema checks below or is refused).
_ALLOWED_NAMES = """
abs acos acosh add addcdiv addcmul addmm alias all amax amin any arange argmax argmin asin asinh atan atan2
atanh baddbmm bitwise_and bitwise_not bitwise_or bitwise_xor bmm cat ceil chunk clamp clamp_max clamp_min clone
constant_pad_nd contiguous cos cosh cumprod cumsum detach diff div elu embedding eq erf erfc exp exp2
expand expand_as expm1 eye flatten flip floor floor_divide fmod frac full full_like gather ge gelu glu gt
hardsigmoid hardswish hardtanh index index_select isfinite isinf isnan layer_norm le leaky_relu lerp
lift_fresh_copy linear log log10 log1p log2 log_softmax _log_softmax logical_and logical_not logical_or
logical_xor logsumexp lt masked_fill matmul max maximum mean min minimum mish mm mul nan_to_num narrow
native_layer_norm ne neg new_full new_ones new_zeros norm linalg_vector_norm one_hot ones ones_like pad permute
pow prod reciprocal relu remainder repeat repeat_interleave reshape rms_norm roll round rsqrt rsub
scalar_tensor select sigmoid sign silu sin sinh slice softmax _softmax softplus
sort split split_with_sizes sqrt square squeeze stack std sub sum t tan tanh topk transpose tril triu trunc
type_as unbind unflatten unsqueeze _unsafe_view var var_mean view view_as where zeros zeros_like
_to_copy to
"""
ALLOWED = frozenset(_ALLOWED_NAMES.split())

# The only string arguments an allowed op may take, and their values.
STRING_ARGS: dict[str, Any] = {
    "approximate": {"none", "tanh"},
    "rounding_mode": {"trunc", "floor"},
    "reduce": {"sum", "prod", "mean", "amax", "amin"},
    "side": {"left", "right"},
}
# Left out on purpose: einsum (its intermediates can be far larger than its operands and result, which
# the dry run cannot see), scaled_dot_product_attention (tagged random: dropout), anything with a
# workspace that grows past its result.

INT64 = (-(1 << 63), (1 << 63) - 1)
_FORBIDDEN_TYPES = ("Generator", "Storage", "Stream", "Dimname", "Any")


def resolve_aten(target: str):
    """Find ``torch.ops.aten.<name>.<overload>`` by name; only the aten namespace is reachable."""
    if not target.startswith("aten::"):
        raise IRError(f"kiln.aten: target {target!r} is not an aten op")
    name, _, overload = target[len("aten::"):].partition(".")
    overload = overload or "default"
    if not (name.isidentifier() and overload.isidentifier()) or name.startswith("__") or overload.startswith("_"):
        raise IRError(f"kiln.aten: {target!r} is not an aten op name")
    try:
        op = getattr(getattr(torch.ops.aten, name), overload)
    except (AttributeError, RuntimeError):
        raise IRError(f"kiln.aten: torch has no op {target}") from None
    if not isinstance(op, torch._ops.OpOverload):
        raise IRError(f"kiln.aten: {target!r} is not an aten op")
    return op


def _schema(target: str):
    return resolve_aten(target)


_PASSED: set[str] = set()  # ops that passed check_aten_op, by their printed form (the executor asks per call)


def check_aten_op(target: Any, args: Any, kwargs: Any) -> None:
    """Refuse (IRError) a generic op kiln will not run; see the module docstring for the rules."""
    key = repr((target, args, kwargs))
    if key in _PASSED:
        return
    _check_aten_op(target, args, kwargs)
    if len(_PASSED) < 4096:
        _PASSED.add(key)


def _check_aten_op(target: Any, args: Any, kwargs: Any) -> None:
    if not isinstance(target, str):
        raise IRError(f"kiln.aten: target {target!r} is not a string")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise IRError(f"kiln.aten {target}: args must be a list and kwargs a dict")
    name = target.removeprefix("aten::").partition(".")[0]
    if name not in ALLOWED:
        raise IRError(f"kiln.aten: {target} is not on kiln's allowlist of generic ATen ops "
                      "(pure, functional ops only; see docs/security.md)")
    op = _schema(target)
    if torch.Tag.nondeterministic_seeded in op.tags:
        raise IRError(f"kiln.aten: {target} draws random numbers; generic ops must be deterministic")
    schema = op._schema
    params = list(schema.arguments)
    for p in params:
        if p.alias_info is not None and p.alias_info.is_write:
            raise IRError(f"kiln.aten: {target} writes to its argument {p.name!r} (in-place or out=); "
                          "generic ops must be functional")
        if any(t in str(p.type) for t in _FORBIDDEN_TYPES):
            raise IRError(f"kiln.aten: {target} takes a {p.type} ({p.name!r}), which generic ops may not")
    positional = [p for p in params if not p.kwarg_only]
    if len(args) > len(positional):
        raise IRError(f"kiln.aten {target}: {len(args)} positional arguments, the op takes {len(positional)}")
    by_name = {p.name: p for p in params}
    for i, a in enumerate(args):
        _check_arg(target, positional[i], a)
    for k, a in kwargs.items():
        if k not in by_name:
            raise IRError(f"kiln.aten {target}: no argument named {k!r}")
        _check_arg(target, by_name[k], a)


def _check_arg(target: str, param, value: Any, depth: int = 0) -> None:

    ty = str(param.type)
    where = f"kiln.aten {target}: argument {param.name!r}"
    if depth > 2:
        raise IRError(f"{where} is nested too deeply")
    if isinstance(value, list):
        if "List" not in ty and "[]" not in ty:
            raise IRError(f"{where} is a list, the op takes {ty}")
        for x in value:
            _check_arg(target, param, x, depth + 1)
        return
    if isinstance(value, Ref):
        if "Tensor" not in ty:
            raise IRError(f"{where} is a tensor operand, the op takes {ty}")
        return
    if param.name in ("layout", "memory_format"):  # only the default (strided, contiguous) layout
        if value is not None:
            raise IRError(f"{where} = {value!r}: generic ops run with the default layout only")
        return
    if isinstance(value, DType):  # DType is a str enum: it must be told apart from free text first
        if param.name not in ("dtype", "out_dtype"):
            raise IRError(f"{where} is a dtype, the op takes {ty}")
        return
    if isinstance(value, Sym):
        if any(t in ty for t in ("Tensor", "str", "bool", "float")) and "int" not in ty and "number" not in ty:
            raise IRError(f"{where} is a symbolic size, the op takes {ty}")
        return
    if "Device" in ty:
        if value not in ("$device", None):
            raise IRError(f"{where} = {value!r}: generic ops run on the program's own device only")
        return
    if isinstance(value, str):
        allowed = STRING_ARGS.get(param.name)
        ok = "str" in ty and allowed is not None and (
            allowed.fullmatch(value) is not None if isinstance(allowed, re.Pattern) else value in allowed)
        if not ok:
            raise IRError(f"{where} = {value[:40]!r}: generic ops take strings only for "
                          f"{', '.join(sorted(STRING_ARGS))}, from a fixed set of values")
        return
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise IRError(f"{where} = {value} is outside int64")
        return
    raise IRError(f"{where} has a value of type {type(value).__name__}, which generic ops may not take")


_DRY_RUN_BYTES: dict[tuple, int] = {}  # dry runs that passed, and their results' bytes


def dry_run(fn, call_args: list, call_kwargs: dict, result_types: list, env: dict[str, int], target: str,
            device: str = "cpu") -> None:
    """Run ``fn`` on meta tensors and check its results against the IR's declared types and the
    machine's memory before it runs for real (IRError / KilnError otherwise)."""

    def meta(a):
        if isinstance(a, torch.Tensor):
            return torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device="meta")
        if isinstance(a, torch.device):
            return torch.device("meta")
        if isinstance(a, (list, tuple)):
            return type(a)(meta(x) for x in a)
        return a

    def size(d):  # a dim the environment cannot evaluate is left unchecked; memory is checked regardless
        try:
            return eval_dim(d, env)
        except Exception:  # noqa: BLE001 - unbound symbol or a malformed expression
            return None

    def sig(a):  # what the dry run's outcome depends on
        if isinstance(a, torch.Tensor):
            return ("tensor", tuple(a.shape), a.stride(), str(a.dtype), str(a.device))
        if isinstance(a, (list, tuple)):
            return tuple(sig(x) for x in a)
        return repr(a)

    key = (target, sig(list(call_args)), sig(sorted(call_kwargs.items())), str(device),
           tuple((tuple(size(d) for d in t.shape), t.dtype.value) for t in result_types))
    if key in _DRY_RUN_BYTES:  # this op ran before with the same shapes and arguments: only memory may differ
        if _DRY_RUN_BYTES[key] > 1 << 20:
            check_fits(_DRY_RUN_BYTES[key], f"the result of kiln.aten {target}", str(device))
        return
    m_args, m_kwargs = meta(list(call_args)), {k: meta(v) for k, v in call_kwargs.items()}
    positional = [a.name for a in fn._schema.arguments if not a.kwarg_only]
    if "device" in positional and positional.index("device") < len(m_args):
        m_args[positional.index("device")] = torch.device("meta")
    elif any(a.name == "device" for a in fn._schema.arguments):  # a factory op: make it build on meta
        m_kwargs["device"] = torch.device("meta")
    try:
        out = fn(*m_args, **m_kwargs)
    except NotImplementedError:
        raise IRError(f"kiln.aten {target}: torch cannot check this op's result shape (no meta kernel), "
                      "so kiln will not run it") from None
    except Exception as e:  # noqa: BLE001 - bad arguments: the real call would fail the same way
        raise IRError(f"kiln.aten {target}: its arguments are invalid ({type(e).__name__}: "
                      f"{' '.join(str(e).split())[:200]})") from None
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if len(outs) != len(result_types) or not all(isinstance(o, torch.Tensor) for o in outs):
        raise IRError(f"kiln.aten {target}: returns {len(outs)} value(s), the IR declares {len(result_types)}")
    if any(o.device.type != "meta" for o in outs):  # never expected: the dry run must not have touched memory
        raise IRError(f"kiln.aten {target}: its dry run did not stay on the meta device; kiln will not run it")
    total = 0
    for o, t in zip(outs, result_types):
        want = tuple(size(d) for d in t.shape)
        same = len(want) == o.dim() and all(w is None or w == s for w, s in zip(want, o.shape))
        if not same or o.dtype != TORCH_DTYPE[t.dtype]:
            raise IRError(f"kiln.aten {target}: would return {tuple(o.shape)} {o.dtype}, the IR declares "
                          f"{want} {t.dtype.value}")
        total += o.numel() * o.element_size()
    if any(o.layout != torch.strided for o in outs):
        raise IRError(f"kiln.aten {target}: returns a non-strided (sparse) tensor")
    if total > 1 << 20:  # small results need no look at the machine's memory
        check_fits(total, f"the result of kiln.aten {target}", str(device))
    if len(_DRY_RUN_BYTES) < 4096:
        _DRY_RUN_BYTES[key] = total


def generic_ops(module) -> dict[str, int]:
    """The module's ``kiln.aten`` ops per ATen target, counted in the program that has most of them
    (prefill and decode are rewritten copies of forward, so summing would count one model op thrice)."""
    out: dict[str, int] = {}
    for p in module.programs.values():
        here: dict[str, int] = {}
        for op in p.walk("kiln.aten"):
            here[op.attrs["target"]] = here.get(op.attrs["target"], 0) + 1
        for k, v in here.items():
            out[k] = max(out.get(k, 0), v)
    return out
