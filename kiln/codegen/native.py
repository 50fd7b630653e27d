"""Native CPU kernels for what torch does slowly on a CPU: the matrix-vector products of decoding.

During decode a linear layer multiplies a few rows of activations by a large weight matrix. That is
a matrix-vector product, bound by reading the weights. MKL, through ``F.linear``, reads them at
12-18 GB/s on the 2-core development VM. The kernel below reads them at 25-34 GB/s: each output is
a dot product of one contiguous weight row with the activation row, vectorised by the compiler,
with OpenMP splitting the rows across torch's thread count. The figures and the command that
measures them are in docs/benchmarks.md.

The kernel is C compiled once per machine with the system C compiler (``cc -O3 -march=native
-fopenmp``). The result is cached under ``$KILN_CACHE_DIR`` (default ``~/.cache/kiln``) by the hash
of its source and flags, and loaded with ctypes. It shares torch's OpenMP runtime (same soname), so
the two thread pools are one. Without a compiler, or with ``KILN_NATIVE=0``, everything runs
through torch as before and a note is logged once.

Numerics: float32 products summed in a different order than MKL's, so results differ from
``F.linear`` by float rounding (relative ~1e-6). ``tests/test_native.py`` bounds the difference.
Only weights of at least ``MIN_WEIGHT_ELEMENTS`` elements, and at most ``MAX_ROWS`` activation rows,
take this path; prefill's large row counts stay with MKL's matrix-matrix product, which is
efficient there.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

MIN_WEIGHT_ELEMENTS = 1 << 16
MAX_ROWS = 16

SOURCE = r"""
#include <stddef.h>
#include <omp.h>

/* y[M, N] = x[M, K] @ W[N, K]^T (+ b[N]); x, W, y row-major and contiguous. */
void kiln_linear_f32(const float *restrict x, const float *restrict W, const float *restrict b,
                     float *restrict y, long M, long N, long K, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long n0 = 0; n0 < N; n0 += 4) {
        long nn = N - n0 < 4 ? N - n0 : 4;
        for (long m = 0; m < M; m++) {
            const float *xr = x + m * K;
            for (long r = 0; r < nn; r++) {
                const float *w = W + (n0 + r) * K;
                float s = 0.f;
                #pragma omp simd reduction(+:s)
                for (long k = 0; k < K; k++) s += w[k] * xr[k];
                y[m * N + n0 + r] = s + (b ? b[n0 + r] : 0.f);
            }
        }
    }
}
"""
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fPIC", "-shared"]

_log = logging.getLogger("kiln")
_lib: ctypes.CDLL | None = None
_tried = False


def cache_dir() -> Path:
    return Path(os.environ.get("KILN_CACHE_DIR") or Path.home() / ".cache" / "kiln")


def _build() -> ctypes.CDLL | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        _log.info("no C compiler found: decode linears run through torch")
        return None
    # -march=native: the binary is for this CPU only, so the CPU is part of the key (a shared cache
    # directory must never hand one machine another's build)
    key = hashlib.sha256((SOURCE + " ".join(FLAGS) + cc + _cpu_signature()).encode()).hexdigest()[:16]
    out = cache_dir() / "native" / key / "libkiln_native.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            src = Path(tmp) / "kernels.c"
            src.write_text(SOURCE)
            so = Path(tmp) / "lib.so"
            r = subprocess.run([cc, *FLAGS, str(src), "-o", str(so)], capture_output=True, text=True, check=False)
            if r.returncode != 0:
                _log.warning("could not compile kiln's native kernels (%s): decode linears run through torch",
                             (r.stderr.strip().splitlines() or ["unknown error"])[-1][:200])
                return None
            os.replace(so, out)  # atomic: a concurrent build of the same key writes the same bytes
    lib = ctypes.CDLL(str(out))
    fn = lib.kiln_linear_f32
    fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_long] * 3 + [ctypes.c_int]
    fn.restype = None
    return lib


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


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None when they are disabled or cannot be built."""
    global _lib, _tried
    if not _tried:
        _tried = True
        if os.environ.get("KILN_NATIVE", "1") != "0":
            try:
                _lib = _build()
            except OSError as e:
                _log.warning("could not load kiln's native kernels (%s): decode linears run through torch", e)
                _lib = None
    return _lib


def usable_weight(w: torch.Tensor) -> bool:
    return (w.dtype == torch.float32 and w.dim() == 2 and w.is_contiguous() and w.device.type == "cpu"
            and w.numel() >= MIN_WEIGHT_ELEMENTS)


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor | None:
    """``F.linear(x, w, b)`` through the native kernel, or None when it does not apply."""
    lib = library()
    if lib is None or x.dtype != torch.float32 or x.device.type != "cpu" or not usable_weight(w):
        return None
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad)):
        return None  # autograd needs torch's op
    n, k = w.shape
    if x.shape[-1] != k or x.numel() // max(k, 1) > MAX_ROWS or x.numel() == 0:
        return None
    if b is not None and (b.dtype != torch.float32 or b.dim() != 1 or b.shape[0] != n or b.device.type != "cpu"):
        return None
    xc = x.contiguous()
    bc = b.contiguous() if b is not None else None
    y = torch.empty(*x.shape[:-1], n, dtype=torch.float32)
    lib.kiln_linear_f32(xc.data_ptr(), w.data_ptr(), bc.data_ptr() if bc is not None else None, y.data_ptr(),
                        xc.numel() // k, n, k, torch.get_num_threads())
    return y
