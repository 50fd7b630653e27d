"""Native CPU kernels for what torch does slowly on a CPU: the linears of decoding and verification.

During decode a linear layer multiplies a few rows of activations by a large weight matrix: a
matrix-vector product, bound by reading the weights; speculative verification and batched decode
multiply 2-16 rows, where MKL's small-matrix path reaches a fraction of the machine's FMA rate.

The float32 route (``linear``) repacks each weight [N, K] once, on first use, into panels of 32
output rows stored [K][32] (``packed``; kept beside the weight for as long as the weight lives).
A tile of up to 12 activation rows then loads each panel column once and multiplies it with every
row's broadcast activation, so the accumulators are whole output rows (no horizontal sums) and a
row costs little more than a few FMAs per weight load. On the 2-core development VM (1 thread) the
panels run at 88-108 GFLOP/s for 8-16 rows against 47-50 for the old row kernel and 57-73 for MKL,
read a single row's weights faster than either, and match MKL at prefill sizes (64-256 rows), so
every float32 linear with a weight of at least ``MIN_WEIGHT_ELEMENTS`` elements takes them. A CPU
runtime replaces each weight that only linears read by its ``PackedWeight`` (``pack_linear_weights``),
so it is held once; a weight also read otherwise (an embedding tied to the vocabulary projection)
keeps its [N, K] tensor and gets its panels beside it. Saving an artifact, the reference executor and
the Triton target unpack (``unpacked``). ``KILN_PACK=0`` turns packing off: the row kernel
``kiln_linear_f32`` then takes up to ``MAX_ROWS`` rows and MKL the rest. Figures and commands:
docs/benchmarks.md and docs/speculative.md.

The kernels are C, in kiln/codegen/csrc (package data; ``sources()``): ``kiln_native.c``, the one
translation unit, includes ``kiln_native.h`` (the instruction-set paths and the exported functions'
declarations) and the parts ``linear_rows.c``, ``quant_rows.c``, ``panels.c`` and ``panels_q4.c``. They are
compiled once per machine with the system C compiler (``$CC``, else ``cc`` or ``gcc``), in one of four
instruction-set variants (``ISAS``), chosen by ``KILN_NATIVE_ISA`` (read once per process) or in code
(``library(isa)``, ``with using(isa): ...``):

- ``native`` (the default; ``auto`` is the same): ``-march=native``, everything this CPU has: the
  AVX-512 intrinsics where it has AVX-512 F/BW/VL, the int4 row kernel's BF16 route where it has
  AVX512-BF16. The figures above are this build's.
- ``avx512``: ``-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512cd -mavx2 -mfma -mf16c``: the
  AVX-512 paths without BF16 (the int4 row kernel takes its value-table route).
- ``avx2``: ``-mavx2 -mfma -mf16c``: what a CPU without AVX-512 runs. The panel kernels are the same C at
  8-float vectors (AVX2 intrinsics for the int8 / int4 / f16 conversions), their tiles sized to its 16
  registers: 6 rows x 16 columns (int4 3 x 16), so no accumulator spills; 1 thread, 2048 x 768 weight,
  on the AVX-512 dev VM: float 12 rows 0.33 ms (AVX-512 0.16, MKL 0.52; 46.6 ms before the tiles were
  sized, when the 16-float code spilled every accumulator), 1 row 0.08 ms; int8 / int4 12 rows 0.32 /
  0.44 ms. The int4 row kernel's generic C loses to dequantization + MKL there (2.2 ms at 1 row), so
  without AVX-512 ``qlinear_int4`` declines and the unpacked int4 route dequantizes.
- ``portable``: no instruction-set flag and ``-DKILN_PORTABLE``, which turns every intrinsic path off:
  the same generic C at 4-float vectors (4 x 8 tiles) for the compiler's default target (SSE2 on
  x86-64; any architecture). Its panels and row kernels lose to torch's GEMM (float 12 rows 1.3 ms vs
  0.5), so ``panels_fast()`` is false for it: nothing is packed, ``linear`` / ``qlinear_int8`` /
  ``qlinear_int4`` decline and torch runs (quantized: native dequantization, then torch's GEMM).
  ``kiln_vector_width()`` (16, 8, 4) tells Python which build it has.

Each is built with ``cc -O3 <its flags> -DKILN_PANEL=32 -fopenmp -fPIC -shared kiln_native.c``
(``flags(isa)``), cached under ``$KILN_CACHE_DIR`` (default ``~/.cache/kiln``) by the hash of every source
file, its flags and the compiler (and the CPU, for ``native``: ``build_key``), and loaded with ctypes, once
per process (``NativeLibrary``); several variants load side by side. A variant that needs CPU flags this
CPU lacks (``/proc/cpuinfo``, else the compiler's ``__builtin_cpu_supports``) is refused, before anything
runs, with ``UnsupportedISA`` (a ``KilnError``: one line from the CLI) naming them; an unknown name
likewise. ``unavailable(isa)`` says in one line why a variant cannot run here (tests/test_native.py skips
with it: its ``native_isa`` fixture runs every kernel in every variant this CPU can run). The kernels share
torch's OpenMP runtime (same soname), so the two thread pools are one. With ``KILN_NATIVE=0`` every variant
is off and everything runs through torch as before; without a C compiler as well, and a one-line note on
stderr says so, once per process (``kiln: note: no C compiler found ...``); a compile that fails logs a
warning.

The boundary between Python and C is stated once. ``EXPORTS`` is the table of the exported functions'
argument and result types (the C declares them in ``kiln_native.h``): the loader types every function from
it, a build that lacks one is an error naming it, and no other name can be called. A constant both sides
use is defined on one: ``PANEL`` (output rows per panel) here, passed to the compiler through ``DEFINES``
(the C does not compile without it, and checks what its tiles need of it); what the C decides per build
(vector width, tile heights, the int4 row kernel's group-size multiple) it reports through functions of no
arguments, which the loader reads into the library's attributes (``lib.vector_width``, ``lib.tile_rows``,
``lib.q4_tile_rows``, ``lib.i4_group_multiple``). tests/test_native_build.py compiles every variant with
``-Wall -Wextra -Wmissing-prototypes -Werror``, checks ``EXPORTS`` against the header and the sources'
packaging.

Numerics: float32 products summed in a different order than MKL's, so results differ from
``F.linear`` by float rounding (relative ~1e-6). ``tests/test_native.py`` bounds the difference.

Quantized weights (``kiln.qlinear``, formats in kiln/ir/ops_quant.py) get panels too. A CPU runtime
repacks each int8 weight into [K][32] code panels and each int4 weight into [K][16]-byte panels (two
rows per byte) with [G][32] f16 scale panels (``PackedQ4``); ``kiln_qlinear_q8_panels`` /
``kiln_qlinear_q4_panels`` convert a column's 32 codes to floats once per tile of up to 12 (int8) or
6 (int4) rows (AVX-512; other variants above), apply int8's row scales once at the end and int4's group scales and offsets once per
group (s_g * sum(code * x) + m_g * sum(x)). Activations stay float32; results differ from the
reference only by float rounding. On the dev VM they beat the earlier per-row kernels at every row
count (``benchmarks/linear.py --shapes 125m --quantized``: 1 row int8 0.74 vs 0.84 ms, int4 0.77 vs
0.92 ms; 12 rows about 2.3x; docs/quantization.md).
A quantized weight also read by another op (an int8 embedding tied to the vocabulary projection)
keeps its layout and gets panels beside it (``quant_panels``). The earlier kernels stay for weights
that are not repacked (``KILN_PACK=0``, tiny weights):
``kiln_qlinear_i8`` (1 byte per weight, four independent AVX-512 FMA chains) and ``kiln_qlinear_i4``
(on CPUs with AVX512-BF16 the 4-bit codes, exact in bf16, meet the activation split into two bf16
parts with ``vdpbf16ps``, otherwise a 16-entry table per group and ``vpermps``; portable C without
AVX-512); ``kiln_dequant_i8`` / ``kiln_dequant_i4`` expand a weight to float32 for prefill-sized
inputs on that route, which then use MKL. ``tests/test_quantize.py`` and ``tests/test_native.py``
check all of them against the reference semantics.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.resources
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path

import torch

from kiln.errors import KilnError
from kiln.ir.match import GEMM_WEIGHT
from kiln.ir.ops_quant import INT4_SYMMETRIC_ZERO

MIN_WEIGHT_ELEMENTS = 1 << 16
MAX_ROWS = 16
PACKED_MAX_ROWS = 1 << 30
PANEL = 32  # output rows per panel of a packed weight: defined here only, passed to the C as KILN_PANEL

# The C sources (package data, kiln/codegen/csrc): kiln_native.c is the one translation unit, including the
# other .c files and kiln_native.h.
CSRC = "csrc"
MAIN_SOURCE = "kiln_native.c"
# constants the Python and the C share, defined here and passed to the compiler as -D flags (flags()):
# the C refuses to compile without them
DEFINES = {"KILN_PANEL": PANEL, "KILN_I4_ZERO": f"({INT4_SYMMETRIC_ZERO!r}f)"}

ISAS = ("native", "avx512", "avx2", "portable")  # the instruction-set variants; "auto" is "native"
_ISA_FLAGS = {
    "native": ["-march=native"],  # everything this CPU has (AVX-512 BF16 included where present)
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512cd", "-mavx2", "-mfma", "-mf16c"],
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    "portable": ["-DKILN_PORTABLE"],  # the compiler's default target, every intrinsic path off
}
# the CPU flags (as /proc/cpuinfo names them) that each variant's instructions need
CPU_FLAGS = {
    "native": (),
    "avx512": ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx2", "fma", "f16c"),
    "avx2": ("avx2", "fma", "f16c"),
    "portable": (),
}
# Every function the C exports (declared in csrc/kiln_native.h): name -> (argument kinds, result kind). A kind is
# "ptr" (a tensor's data_ptr(), or None for NULL), "long" or "int"; the result None for void. _build sets each
# function's ctypes argtypes / restype from this table, and nothing outside it can be called on a build;
# tests/test_native_build.py checks it against the header's declarations.
EXPORTS: dict[str, tuple[tuple[str, ...], str | None]] = {
    # float32: row kernel, packing, panels
    "kiln_linear_f32": (("ptr",) * 4 + ("long",) * 3 + ("int",), None),  # x W b y, M N K, threads
    "kiln_pack_f32": (("ptr",) * 2 + ("long",) * 2 + ("int",), None),  # W Wp, N K, threads
    "kiln_linear_packed": (("ptr",) * 4 + ("long",) * 3 + ("int",), None),  # x Wp b y, M N K, threads
    # int8
    "kiln_qlinear_i8": (("ptr",) * 5 + ("long",) * 3 + ("int",), None),  # x W scale b y, M N K, threads
    "kiln_dequant_i8": (("ptr",) * 3 + ("long",) * 2 + ("int",), None),  # W scale out, N K, threads
    "kiln_pack_q8": (("ptr",) * 2 + ("long",) * 2 + ("int",), None),  # Q Qp, N K, threads
    "kiln_qlinear_q8_panels": (("ptr",) * 5 + ("long",) * 3 + ("int",), None),  # x Qp S b y, M N K, threads
    # int4
    "kiln_qlinear_i4": (("ptr",) * 6 + ("long",) * 4 + ("int",), None),  # x W S O b y, M N K g, threads
    "kiln_dequant_i4": (("ptr",) * 4 + ("long",) * 3 + ("int",), None),  # W S O out, N K g, threads
    "kiln_pack_q4": (("ptr",) * 6 + ("long",) * 3 + ("int",), None),  # Q S O Qp Sp Op, N K g, threads
    "kiln_qlinear_q4_panels": (("ptr",) * 6 + ("long",) * 4 + ("int",), None),  # x Qp Sp Op b y, M N K g, threads
    # the build's constants, defined in the C: each library gets them as attributes (lib.vector_width, ...)
    "kiln_vector_width": ((), "int"),  # floats per panel vector: 16 AVX-512, 8 AVX2, 4 portable
    "kiln_tile_rows": ((), "int"),  # activation rows per full float32 / int8 panel tile: 12, 6, 4
    "kiln_q4_tile_rows": ((), "int"),  # the same for int4 panels: 6, 3, 2
    "kiln_i4_group_multiple": ((), "int"),  # kiln_qlinear_i4 takes group sizes that are multiples of this
}
KERNELS = tuple(name for name, (_, result) in EXPORTS.items() if result is None)  # the rest report constants
_CTYPES = {"ptr": ctypes.c_void_p, "long": ctypes.c_long, "int": ctypes.c_int, None: None}


class UnsupportedISA(KilnError):
    """An instruction-set variant that is not one of ``ISAS``, or that this CPU cannot run."""


def flags(isa: str = "native") -> list[str]:
    """The compiler flags of variant ``isa`` (its build: ``cc <flags> kiln_native.c -o lib.so``)."""
    return ["-O3", *_ISA_FLAGS[_isa_name(isa)], *(f"-D{k}={v}" for k, v in DEFINES.items()), "-fopenmp", "-fPIC",
            "-shared"]


def sources() -> dict[str, str]:
    """The C sources by file name: every .c and .h file of kiln/codegen/csrc (package data)."""
    root = importlib.resources.files("kiln.codegen").joinpath(CSRC)
    files = root.iterdir() if root.is_dir() else ()
    texts = {f.name: f.read_text(encoding="utf-8") for f in files if f.name.endswith((".c", ".h"))}
    if MAIN_SOURCE not in texts:
        raise FileNotFoundError(f"kiln's native kernel sources are missing: no {MAIN_SOURCE} in {root} (an install "
                                "without kiln's package data?)")
    return dict(sorted(texts.items()))


_log = logging.getLogger("kiln")
_lock = threading.Lock()
_libs: dict[str, NativeLibrary | None] = {}  # variant -> its loaded build (None: it could not be built)
_current: NativeLibrary | None = None  # what library() returns: the selected variant's build, once
_selected = False  # resolved (KILN_NATIVE, KILN_NATIVE_ISA) or set by using()
_cpu_flags: frozenset[str] | None = None
_noted = False  # the missing compiler was announced


def cache_dir() -> Path:
    return Path(os.environ.get("KILN_CACHE_DIR") or Path.home() / ".cache" / "kiln")


def _isa_name(isa: str) -> str:
    name = isa.strip().lower()
    name = "native" if name in ("", "auto") else name
    if name not in ISAS:
        raise UnsupportedISA(f"unknown instruction-set variant {isa!r} for kiln's native kernels; choose one of "
                             f"{', '.join(ISAS)} (KILN_NATIVE_ISA)")
    return name


FLAGS = flags("native")


def _compiler() -> str | None:
    cc = os.environ.get("CC")
    return shutil.which(cc) if cc else shutil.which("cc") or shutil.which("gcc")


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags: /proc/cpuinfo's ``flags`` (x86) or ``Features`` (Arm) line, else what the C
    compiler's ``__builtin_cpu_supports`` says of the flags in ``CPU_FLAGS``; empty when neither can tell."""
    global _cpu_flags
    if _cpu_flags is None:
        _cpu_flags = _read_cpu_flags()
    return _cpu_flags


def _read_cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    cc = _compiler()
    names = sorted({f for need in CPU_FLAGS.values() for f in need} - {"f16c"})  # not every compiler knows f16c
    if cc is None:
        return frozenset()
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        src.write_text("#include <stdio.h>\nint main(void) {\n    __builtin_cpu_init();\n" + "".join(
            f'    if (__builtin_cpu_supports("{f}")) puts("{f}");\n' for f in names) + "    return 0;\n}\n")
        try:
            if subprocess.run([cc, str(src), "-o", str(exe)], capture_output=True, check=False).returncode:
                return frozenset()  # not an x86 compiler
            found = set(subprocess.run([str(exe)], capture_output=True, text=True, check=False).stdout.split())
        except OSError:
            return frozenset()
    return frozenset(found | ({"f16c"} if "avx2" in found else set()))  # every AVX2 CPU has F16C


def missing_cpu_flags(isa: str) -> list[str]:
    """The CPU flags that variant ``isa`` needs and this CPU lacks ([] when it can run here)."""
    have = cpu_flags()
    return [f for f in CPU_FLAGS[_isa_name(isa)] if f not in have]


def unavailable(isa: str) -> str | None:
    """Why variant ``isa`` cannot be used here, in one line (``KILN_NATIVE=0``, the CPU flags it needs that
    this CPU lacks, no C compiler), or None when it can. Raises ``UnsupportedISA`` for an unknown name."""
    name = _isa_name(isa)
    if os.environ.get("KILN_NATIVE", "1") == "0":
        return "KILN_NATIVE=0: the native kernels are off"
    missing = missing_cpu_flags(name)
    if missing:
        return f"this CPU lacks {', '.join(missing)}, which the {name} variant of kiln's native kernels needs"
    if _compiler() is None:
        return "no C compiler found (cc, gcc or $CC): the native kernels are not built"
    return None


def library(isa: str | None = None) -> NativeLibrary | None:
    """The compiled kernels, or None when they are off (``KILN_NATIVE=0``) or cannot be built.

    Without ``isa``: the selected variant, the one every function of this module calls (``using`` changes
    it; otherwise ``KILN_NATIVE_ISA``, read once, default "native"). With ``isa``: that variant, built and
    loaded once per process beside the others. Raises ``UnsupportedISA`` for an unknown variant or one that
    needs CPU flags this CPU lacks (running it would die on an illegal instruction)."""
    global _current, _selected
    if isa is None:
        if not _selected:
            off = os.environ.get("KILN_NATIVE", "1") == "0"
            _current = None if off else _variant(os.environ.get("KILN_NATIVE_ISA", "native"))
            _selected = True
        return _current
    return None if os.environ.get("KILN_NATIVE", "1") == "0" else _variant(isa)


@contextlib.contextmanager
def using(isa: str):
    """Within the block, every function of this module runs variant ``isa``'s kernels (process-wide, not
    per thread); yields its library (None when the kernels are off or cannot be built). Raises like
    ``library(isa)``. Panels made by ``packed`` / ``pack_linear_weights`` suit every variant."""
    global _current, _selected
    lib = library(isa)
    saved = _current, _selected
    _current, _selected = lib, True
    try:
        yield lib
    finally:
        _current, _selected = saved


def _variant(isa: str) -> NativeLibrary | None:
    name = _isa_name(isa)
    missing = missing_cpu_flags(name)
    if missing:
        raise UnsupportedISA(f"the {name} variant of kiln's native kernels needs CPU flags this CPU lacks: "
                             f"{', '.join(missing)}; choose another with KILN_NATIVE_ISA "
                             f"({', '.join(v for v in ISAS if not missing_cpu_flags(v))})")
    with _lock:
        if name not in _libs:
            try:
                _libs[name] = _build(name)
            except OSError as e:
                _log.warning("could not load kiln's native kernels (%s): decode linears run through torch", e)
                _libs[name] = None
        return _libs[name]


def _note_no_compiler() -> None:
    global _noted
    if not _noted:
        _noted = True
        cc = os.environ.get("CC")
        what = f"the C compiler CC={cc!r} was not found" if cc else "no C compiler found (cc, gcc or $CC)"
        sys.stderr.write(f"kiln: note: {what}: native kernels off, linears run through torch\n")


class NativeLibrary(ctypes.CDLL):
    """A loaded build of the kernels: the functions of ``EXPORTS``, typed from it (asking for any other name
    is an ``AttributeError`` that says so), the build's constants as attributes (``vector_width``, ``tile_rows``,
    ``q4_tile_rows``, ``i4_group_multiple``) and its variant (``kiln_isa``)."""

    kiln_isa: str
    vector_width: int
    tile_rows: int
    q4_tile_rows: int
    i4_group_multiple: int

    def __init__(self, path: str | os.PathLike, isa: str):
        super().__init__(str(path))
        self.kiln_isa = isa
        for name, (args, result) in EXPORTS.items():
            try:
                fn = self[name]
            except AttributeError:
                raise RuntimeError(f"kiln's native library {path} does not export {name}, which native.EXPORTS "
                                   f"lists: the C sources (kiln/codegen/csrc) and the table disagree") from None
            fn.argtypes, fn.restype = [_CTYPES[a] for a in args], _CTYPES[result]
            setattr(self, name, fn)
            if not args:  # a constant of this build
                setattr(self, name.removeprefix("kiln_"), fn())

    def __getattr__(self, name: str):
        raise AttributeError(f"kiln's native library has no function {name!r}: native.EXPORTS lists what it exports")


def build_key(isa: str, cc: str, src: dict[str, str]) -> str:
    """The cache key of variant ``isa``'s build by compiler ``cc`` from sources ``src`` (``sources()``): a hash of
    every source file's name and text, the variant's flags (``DEFINES`` included) and the compiler, so that
    editing any of them builds anew."""
    h = hashlib.sha256()
    for name, text in sorted(src.items()):
        h.update(f"{name}\0{len(text)}\0{text}\0".encode())
    # -march=native: that binary is for this CPU only, so the CPU is part of its key (a shared cache directory
    # must never hand one machine another's build); another variant is one binary for every CPU it runs on
    sig = _cpu_signature() if _isa_name(isa) == "native" else ""
    h.update("\0".join([*flags(isa), cc, sig]).encode())
    return h.hexdigest()[:16]


def _build(isa: str = "native") -> NativeLibrary | None:
    cc = _compiler()
    if cc is None:
        _note_no_compiler()
        return None
    fl = flags(isa)
    src = sources()
    out = cache_dir() / "native" / build_key(isa, cc, src) / "libkiln_native.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            for name, text in src.items():  # the very texts build_key hashed, whatever happens to the package meanwhile
                (Path(tmp) / name).write_text(text, encoding="utf-8")
            so = Path(tmp) / "lib.so"
            r = subprocess.run([cc, *fl, str(Path(tmp) / MAIN_SOURCE), "-o", str(so)], capture_output=True, text=True,
                               check=False)
            if r.returncode != 0:
                lines = r.stderr.strip().splitlines() or ["unknown error"]
                why = next((line for line in lines if "error" in line), lines[-1])  # the first error, else the end
                _log.warning("could not compile the %s variant of kiln's native kernels (%s): decode linears run "
                             "through torch", isa, why[:200])
                return None
            os.replace(so, out)  # atomic: a concurrent build of the same key writes the same bytes
    return NativeLibrary(out, isa)


def _cpu_signature() -> str:
    import platform

    sig = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags", "Features", "CPU part")):
                    sig += line.strip()
                if line.strip() == "":  # the first processor is enough
                    break
    except OSError:
        sig += platform.processor()
    return sig


def panels_fast(lib: NativeLibrary | None = None) -> bool:
    """Whether the panel kernels of build ``lib`` (default: the selected one) beat torch: with AVX-512 or
    AVX2 vectors (``kiln_vector_width`` 16 or 8). A portable build's 4-float panels lose to torch's GEMM
    beyond a row or two, so with it nothing is packed and linears run through torch."""
    lib = library() if lib is None else lib
    return lib is not None and lib.vector_width >= 8


def usable_weight(w: torch.Tensor) -> bool:
    return (w.dtype == torch.float32 and w.dim() == 2 and w.is_contiguous() and w.device.type == "cpu"
            and w.numel() >= MIN_WEIGHT_ELEMENTS)


_packed: dict[int, tuple[weakref.ref, torch.Tensor]] = {}  # id(weight) -> (the weight, its panels)


class PackedWeight(torch.Tensor):
    """A weight [N, K] (float32, or int8 codes) held only in the panel layout (flat): what a runtime
    keeps in place of a weight that nothing but linears read (``pack_linear_weights``). ``unpack()``
    rebuilds [N, K]."""

    __torch_function__ = torch._C._disabled_torch_function_impl
    logical_shape: tuple[int, int]

    @staticmethod
    def wrap(panels: torch.Tensor, n: int, k: int) -> PackedWeight:
        t = torch.Tensor._make_subclass(PackedWeight, panels)
        t.logical_shape = (n, k)
        return t

    def unpack(self) -> torch.Tensor:
        n, k = self.logical_shape
        flat = torch.Tensor(self)  # a plain tensor on the same storage
        return flat.view(-1, k, PANEL).permute(0, 2, 1).reshape(-1, k)[:n].contiguous()


class PackedQ4(PackedWeight):
    """An int4 weight (kiln's group layout, see kiln/ir/ops_quant.py) held in the int4 panel layout:
    [P][K][16] bytes, with its scales (and offsets) as [P][G][32] f16 in ``scales_p`` / ``offsets_p``."""

    scales_p: torch.Tensor
    offsets_p: torch.Tensor | None
    group_size: int

    def unpack(self) -> torch.Tensor:
        from kiln.ir.ops_quant import _pack_group, groups

        n, k = self.logical_shape
        b = torch.Tensor(self).view(-1, k, PANEL // 2)
        codes = torch.cat([b & 15, b >> 4], dim=-1).permute(0, 2, 1).reshape(-1, k)[:n].to(torch.int64)
        return torch.cat([_pack_group(codes[:, c:c + r]) for c, r in groups(k, self.group_size)], dim=1).contiguous()


def unpacked(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a plain [N, K] tensor (a copy for a ``PackedWeight``, ``t`` itself otherwise)."""
    return t.unpack() if isinstance(t, PackedWeight) else t


def pack_linear_weights(module) -> int:
    """Replace every weight of ``module`` that only linears read (as their weight, in every program) by
    its panel layout, so that a runtime holds it once: float32 weights of kiln.linear, int8 and int4
    weights of kiln.qlinear (``PackedWeight`` / ``PackedQ4``). Returns how many were replaced; nothing
    happens without the kernels, with ``KILN_PACK=0`` or with a build whose panels lose to torch
    (``panels_fast``: the portable variant)."""
    if library() is None or os.environ.get("KILN_PACK", "1") == "0" or not panels_fast():
        return 0
    only: dict[str, bool] = {}  # weight name -> read only as a (q)linear's weight
    quant: dict[str, tuple[dict, str, str | None]] = {}  # int weights -> (attrs, scales, offsets)
    for prog in module.programs.values():
        for op in prog.walk("kiln.weight"):
            name = op.attrs["name"]
            ok = all(user.name in GEMM_WEIGHT and i == user.operand_index(GEMM_WEIGHT[user.name])
                     for user, i in op.result.uses)
            only[name] = only.get(name, True) and ok
        for op in prog.walk("kiln.qlinear"):
            names = [v.owner.attrs["name"] if v is not None and v.owner is not None and v.owner.name == "kiln.weight"
                     else None for v in (op.operand("q"), op.operand("scales"), op.operand("offsets"))]
            has_off = op.operand("offsets") is not None
            if names[0] is None or names[1] is None or (has_off and names[2] is None):
                if names[0] is not None:
                    only[names[0]] = False
                continue
            quant[names[0]] = (dict(op.attrs), names[1], names[2] if has_off else None)
    done = 0
    for name, ok in only.items():
        w = module.weights.get(name)
        if not ok or w is None or isinstance(w, PackedWeight):
            continue
        if name in quant:
            attrs, sname, oname = quant[name]
            new = _pack_quantized(w, module.weights.get(sname), module.weights.get(oname) if oname else None, attrs)
        else:
            new = PackedWeight.wrap(packed(w, force=True), *w.shape) if usable_weight(w) else None
            _packed.pop(id(w), None)
        if new is not None:
            module.weights[name] = new
            done += 1
    return done


def _pack_quantized(q: torch.Tensor, s: torch.Tensor | None, o: torch.Tensor | None, attrs: dict,
                    force: bool = False) -> PackedWeight | None:
    lib = library()
    if s is None or q.dim() != 2 or not q.is_contiguous() or q.device.type != "cpu" or \
            (q.numel() < MIN_WEIGHT_ELEMENTS // 2 and not force):
        return None
    n = q.shape[0]
    pn = -(-n // PANEL) * PANEL
    if attrs["format"] == "int8" and q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == (n,):
        k = q.shape[1]
        qp = torch.empty(pn * k, dtype=torch.int8)
        lib.kiln_pack_q8(q.data_ptr(), qp.data_ptr(), n, k, torch.get_num_threads())
        return PackedWeight.wrap(qp, n, k)
    g, k = attrs["group_size"], 2 * q.shape[1]
    ng = -(-k // g)
    if attrs["format"] != "int4" or q.dtype != torch.uint8 or s.dtype != torch.float16 or s.shape != (n, ng) or \
            (o is not None and (o.dtype != torch.float16 or o.shape != s.shape)):
        return None
    qp = torch.empty(pn * k // 2, dtype=torch.uint8)
    sp = torch.empty(pn * ng, dtype=torch.float16)
    op = torch.empty(pn * ng, dtype=torch.float16) if o is not None else None
    lib.kiln_pack_q4(q.data_ptr(), s.contiguous().data_ptr(), o.contiguous().data_ptr() if o is not None else None,
                     qp.data_ptr(), sp.data_ptr(), op.data_ptr() if op is not None else None, n, k, g,
                     torch.get_num_threads())
    t = torch.Tensor._make_subclass(PackedQ4, qp)
    t.logical_shape, t.scales_p, t.offsets_p, t.group_size = (n, k), sp, op, g
    return t


def quant_panels(q: torch.Tensor, s: torch.Tensor, o: torch.Tensor | None, attrs: dict, force: bool = False
                 ) -> PackedWeight | None:
    """The panels of a quantized weight a runtime could not swap for them (one also read by another op,
    like an int8 embedding tied to the vocabulary projection), made on first use and kept beside it
    for as long as it lives; None when packing is off, the panels are not fast in this build (``panels_fast``)
    or the weight does not qualify. ``force``: whenever the kernels are built, whatever its size (the
    generated CPU step, kiln/codegen/cstep.py, runs every quantized linear on panels)."""
    if library() is None or (not force and (os.environ.get("KILN_PACK", "1") == "0" or not panels_fast())):
        return None
    hit = _packed.get(id(q))
    if hit is not None and hit[0]() is q:
        return hit[1]
    p = _pack_quantized(q, s, o, attrs, force)
    if p is not None:
        key = id(q)
        _packed[key] = (weakref.ref(q, lambda _, key=key: _packed.pop(key, None)), p)
    return p


def qlinear_packed(x: torch.Tensor, q: PackedWeight, s: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor | None:
    """A kiln.qlinear whose weight a runtime holds in panels (int8: ``s`` are its row scales; int4: the
    panels carry theirs); None when the kernels do not take these inputs."""
    lib = library()
    n, k = q.logical_shape
    if lib is None or x.dtype != torch.float32 or x.device.type != "cpu" or x.shape[-1] != k or \
            (b is not None and (b.dtype != torch.float32 or b.shape != (n,))):
        return None
    xc = x.contiguous()
    bc = b.contiguous() if b is not None else None
    y = torch.empty(*x.shape[:-1], n, dtype=torch.float32)
    rows = xc.numel() // k if k else 0
    if rows == 0:
        return y
    bp = bc.data_ptr() if bc is not None else None
    if isinstance(q, PackedQ4):
        lib.kiln_qlinear_q4_panels(xc.data_ptr(), q.data_ptr(), q.scales_p.data_ptr(),
                                   q.offsets_p.data_ptr() if q.offsets_p is not None else None, bp, y.data_ptr(),
                                   rows, n, k, q.group_size, torch.get_num_threads())
    else:
        sc = s.contiguous()
        lib.kiln_qlinear_q8_panels(xc.data_ptr(), q.data_ptr(), sc.data_ptr(), bp, y.data_ptr(), rows, n, k,
                                   torch.get_num_threads())
    return y


def packed(w: torch.Tensor, force: bool = False) -> torch.Tensor | None:
    """The panel layout of a float32 weight [N, K] (see the C source), made on first use and kept as
    long as the weight lives; None when the kernels are not built, packing is off (``KILN_PACK=0``) or the
    build's panels lose to torch (``panels_fast``); ``force`` makes them all the same."""
    lib = library()
    if lib is None or (not force and (os.environ.get("KILN_PACK", "1") == "0" or not panels_fast(lib))):
        return None
    hit = _packed.get(id(w))
    if hit is not None and hit[0]() is w:
        return hit[1]
    n, k = w.shape
    wp = torch.empty(-(-n // PANEL) * PANEL * k, dtype=torch.float32)
    lib.kiln_pack_f32(w.data_ptr(), wp.data_ptr(), n, k, torch.get_num_threads())
    key = id(w)
    _packed[key] = (weakref.ref(w, lambda _, key=key: _packed.pop(key, None)), wp)
    return wp


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, force: bool = False
           ) -> torch.Tensor | None:
    """``F.linear(x, w, b)`` through the native kernels, or None when they do not apply: the panel
    kernel for up to ``PACKED_MAX_ROWS`` rows (when packing is on), else the row kernel for up to
    ``MAX_ROWS``. In a build whose panels lose to torch (``panels_fast`` false: the portable variant)
    None, so torch runs, unless ``force`` (tests: the row kernel then takes up to ``MAX_ROWS`` rows)."""
    lib = library()
    if isinstance(w, PackedWeight):  # held only packed: this is its one route
        return _linear_packed(x, w, b)
    if lib is None or x.dtype != torch.float32 or x.device.type != "cpu" or not usable_weight(w):
        return None
    if not force and not panels_fast(lib):
        return None
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad)):
        return None  # autograd needs torch's op
    n, k = w.shape
    rows = x.numel() // max(k, 1)
    if x.shape[-1] != k or x.numel() == 0 or rows > max(MAX_ROWS, PACKED_MAX_ROWS):
        return None
    if b is not None and (b.dtype != torch.float32 or b.dim() != 1 or b.shape[0] != n or b.device.type != "cpu"):
        return None
    wp = packed(w) if rows <= PACKED_MAX_ROWS else None
    if wp is None and rows > MAX_ROWS:
        return None
    xc = x.contiguous()
    bc = b.contiguous() if b is not None else None
    y = torch.empty(*x.shape[:-1], n, dtype=torch.float32)
    fn = lib.kiln_linear_packed if wp is not None else lib.kiln_linear_f32
    fn(xc.data_ptr(), (wp if wp is not None else w).data_ptr(), bc.data_ptr() if bc is not None else None,
       y.data_ptr(), rows, n, k, torch.get_num_threads())
    return y


def _linear_packed(x: torch.Tensor, w: PackedWeight, b: torch.Tensor | None) -> torch.Tensor:
    n, k = w.logical_shape
    lib = library()
    if lib is None or x.dtype != torch.float32 or x.device.type != "cpu" or x.shape[-1] != k or \
            (b is not None and (b.dtype != torch.float32 or b.shape != (n,))):
        return torch.nn.functional.linear(x, w.unpack().to(x.dtype), b)  # not a shape the kernel takes
    xc = x.contiguous()
    bc = b.contiguous() if b is not None else None
    y = torch.empty(*x.shape[:-1], n, dtype=torch.float32)
    if x.numel():
        lib.kiln_linear_packed(xc.data_ptr(), w.data_ptr(), bc.data_ptr() if bc is not None else None, y.data_ptr(),
                               xc.numel() // k, n, k, torch.get_num_threads())
    return y


def _rows(x: torch.Tensor, k: int) -> int | None:
    """Activation rows of a decode-sized float32 CPU input of width k, or None."""
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.shape[-1] != k or x.numel() == 0:
        return None
    if torch.is_grad_enabled() and x.requires_grad:
        return None
    m = x.numel() // k
    return m if m <= MAX_ROWS else None


def _bias_ok(b: torch.Tensor | None, n: int) -> bool:
    return b is None or (b.dtype == torch.float32 and b.dim() == 1 and b.shape[0] == n and b.device.type == "cpu")


def qlinear_int8(x: torch.Tensor, q: torch.Tensor, s: torch.Tensor, b: torch.Tensor | None = None,
                 force: bool = False) -> torch.Tensor | None:
    """``x @ (q * s[:, None])^T + b`` for int8 q [N, K] and f32 s [N], natively; None when it does not apply,
    and in a portable build (``panels_fast`` false: dequantization + torch's GEMM is faster) unless ``force``."""
    lib = library()
    if lib is None or q.dtype != torch.int8 or q.dim() != 2 or not q.is_contiguous() or q.device.type != "cpu":
        return None
    if not force and not panels_fast(lib):
        return None
    n, k = q.shape
    m = _rows(x, k)
    if m is None or s.dtype != torch.float32 or not s.is_contiguous() or not _bias_ok(b, n):
        return None
    xc = x.contiguous()
    bc = b.contiguous() if b is not None else None
    y = torch.empty(*x.shape[:-1], n, dtype=torch.float32)
    lib.kiln_qlinear_i8(xc.data_ptr(), q.data_ptr(), s.data_ptr(), bc.data_ptr() if bc is not None else None,
                        y.data_ptr(), m, n, k, torch.get_num_threads())
    return y


def qlinear_int4(x: torch.Tensor, q: torch.Tensor, s: torch.Tensor, o: torch.Tensor | None, group_size: int,
                 b: torch.Tensor | None = None, force: bool = False) -> torch.Tensor | None:
    """The int4 linear of kiln/ir/ops_quant.py natively (group size a multiple of 32); None when it does not
    apply, and in a build without AVX-512 (its generic C loses to dequantization + torch's GEMM) unless
    ``force``."""
    lib = library()
    if (lib is None or q.dtype != torch.uint8 or q.dim() != 2 or not q.is_contiguous() or q.device.type != "cpu"
            or group_size % lib.i4_group_multiple):
        return None
    if not force and lib.vector_width < 16:
        return None
    n, k = q.shape[0], 2 * q.shape[1]
    m = _rows(x, k)
    g_count = -(-k // group_size)
    if m is None or not _bias_ok(b, n) or s.dtype != torch.float16 or s.shape != (n, g_count) or not s.is_contiguous():
        return None
    if o is not None and (o.dtype != torch.float16 or o.shape != s.shape or not o.is_contiguous()):
        return None
    xc = x.contiguous()
    bc = b.contiguous() if b is not None else None
    y = torch.empty(*x.shape[:-1], n, dtype=torch.float32)
    lib.kiln_qlinear_i4(xc.data_ptr(), q.data_ptr(), s.data_ptr(), o.data_ptr() if o is not None else None,
                        bc.data_ptr() if bc is not None else None, y.data_ptr(), m, n, k,
                        group_size, torch.get_num_threads())
    return y


_scratch = threading.local()


def _buffer(n: int, k: int) -> torch.Tensor:
    """A float32 [n, k] view of a per-thread scratch buffer that only grows: a fresh allocation of a weight's
    size per call would cost more in page faults than the dequantization itself."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.numel() < n * k:
        buf = _scratch.buf = torch.empty(n * k, dtype=torch.float32)
    return buf[: n * k].view(n, k)


def dequantize(q: torch.Tensor, s: torch.Tensor, o: torch.Tensor | None, format: str, group_size: int,
               scratch: bool = False) -> torch.Tensor | None:
    """The float32 [N, K] weight of a quantized one (kiln/ir/ops_quant.py formats), natively; None when
    the kernels are not built or the tensors are not the CPU layouts they expect. ``scratch=True``
    writes into a reused per-thread buffer, valid until the next such call on this thread."""
    lib = library()
    if lib is None or q.dim() != 2 or not q.is_contiguous() or q.device.type != "cpu" or not s.is_contiguous():
        return None
    n = q.shape[0]
    if format == "int8" and q.dtype == torch.int8 and s.dtype == torch.float32 and s.shape == (n,):
        out = _buffer(n, q.shape[1]) if scratch else torch.empty(n, q.shape[1], dtype=torch.float32)
        lib.kiln_dequant_i8(q.data_ptr(), s.data_ptr(), out.data_ptr(), n, q.shape[1], torch.get_num_threads())
        return out
    k = 2 * q.shape[1]
    if (format != "int4" or q.dtype != torch.uint8 or s.dtype != torch.float16 or group_size < 2 or group_size % 2
            or s.shape != (n, -(-k // group_size))):
        return None
    if o is not None and (o.dtype != torch.float16 or o.shape != s.shape or not o.is_contiguous()):
        return None
    out = _buffer(n, k) if scratch else torch.empty(n, k, dtype=torch.float32)
    lib.kiln_dequant_i4(q.data_ptr(), s.data_ptr(), o.data_ptr() if o is not None else None, out.data_ptr(), n, k,
                        group_size, torch.get_num_threads())
    return out
