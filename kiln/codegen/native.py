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

The kernels are C compiled once per machine with the system C compiler (``$CC``, else ``cc`` or
``gcc``), in one of four instruction-set variants (``ISAS``), chosen by ``KILN_NATIVE_ISA`` (read once
per process) or in code (``library(isa)``, ``with using(isa): ...``):

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

Each is built with ``cc -O3 <its flags> -fopenmp -fPIC -shared`` (``flags(isa)``), cached under
``$KILN_CACHE_DIR`` (default ``~/.cache/kiln``) by the hash of the source, its flags and the compiler
(and the CPU, for ``native``), and loaded with ctypes, once per process; several variants load side by
side. A variant that needs CPU flags this CPU lacks (``/proc/cpuinfo``, else the compiler's
``__builtin_cpu_supports``) is refused, before anything runs, with ``UnsupportedISA`` (a ``KilnError``:
one line from the CLI) naming them; an unknown name likewise. ``unavailable(isa)`` says in one line why
a variant cannot run here (tests/test_native.py skips with it: its ``native_isa`` fixture runs every
kernel in every variant this CPU can run). The kernels share torch's OpenMP runtime (same soname), so
the two thread pools are one. With ``KILN_NATIVE=0`` every variant is off and everything runs through
torch as before; without a C compiler as well, and a one-line note on stderr says so, once per process
(``kiln: note: no C compiler found ...``); a compile that fails logs a warning.

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

MIN_WEIGHT_ELEMENTS = 1 << 16
MAX_ROWS = 16
PACKED_MAX_ROWS = 1 << 30
PANEL = 32  # output rows per panel of a packed weight (the C source's PANEL)

SOURCE = r"""
#include <stddef.h>
#include <omp.h>

/* The instruction-set paths (see the module docstring: one source, built per variant). KILN_AVX512: the
   AVX-512 intrinsics (F, BW and VL), taken when the compiler targets them; otherwise GCC's generic vector
   code, which the compiler lowers to AVX2 + FMA, SSE2 or plain scalars as its target allows. KILN_PORTABLE
   (the portable variant) turns every intrinsic path off whatever the compiler's target. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && !defined(KILN_PORTABLE)
#define KILN_AVX512 1
#endif

/* y[M, N] = x[M, K] @ W[N, K]^T (+ b[N]); x, W, y row-major and contiguous.
   Tiles of 4 weight rows x up to 4 activation rows: each loaded 8-float piece of a weight row is
   multiplied with every activation row of the tile (16 vector accumulators), so a few rows cost
   little more than one; a single row is the plain dot-product loop (bandwidth bound). On the 2-core
   VM the tiles run at 70-100 GFLOP/s for 4-16 rows, ahead of MKL's small-matrix path up to 12 rows
   and level with it at 16 (docs/speculative.md); speculative verification, batched decode and
   short chunks feed such row counts. */
typedef float kv8 __attribute__((vector_size(32), aligned(4)));  /* 8 floats, unaligned loads */

static inline float hsum8(kv8 v) {
    float s = 0.f;
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}

static inline void tile_f32(const float *restrict x, const float *restrict W, const float *restrict b,
                            float *restrict y, long m0, int mr, long n0, long N, long K) {
    kv8 acc[4][4];
    const float *w[4], *xr[4];
    for (int r = 0; r < 4; r++) w[r] = W + (n0 + r) * K;
    for (int i = 0; i < 4; i++) xr[i] = x + (m0 + (i < mr ? i : 0)) * K;
    #pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc[i][r] = (kv8){0};
    long K8 = K - K % 8;
    for (long k = 0; k < K8; k += 8) {
        kv8 u[4];
        #pragma GCC unroll 4
        for (int i = 0; i < 4; i++) u[i] = *(const kv8 *)(xr[i] + k);
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            kv8 v = *(const kv8 *)(w[r] + k);
            #pragma GCC unroll 4
            for (int i = 0; i < 4; i++) acc[i][r] += u[i] * v;
        }
    }
    for (int i = 0; i < mr; i++)
        for (int r = 0; r < 4; r++) {
            float s = hsum8(acc[i][r]);
            for (long k = K8; k < K; k++) s += w[r][k] * xr[i][k];
            y[(m0 + i) * N + n0 + r] = s + (b ? b[n0 + r] : 0.f);
        }
}

void kiln_linear_f32(const float *restrict x, const float *restrict W, const float *restrict b,
                     float *restrict y, long M, long N, long K, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long n0 = 0; n0 < N; n0 += 4) {
        long nn = N - n0 < 4 ? N - n0 : 4;
        long m = 0;
        if (nn == 4 && M > 1)
            for (; m < M; m += 4) tile_f32(x, W, b, y, m, M - m < 4 ? (int)(M - m) : 4, n0, N, K);
        for (; m < M; m++) {
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

/* Quantized weights (formats in kiln/ir/ops_quant.py): weight-only, activations stay float32. */

#ifdef KILN_AVX512
#include <immintrin.h>
/* sum_k w[k] x[k] for int8 w: four independent 16-lane FMA chains (one chain is FMA-latency bound) */
static inline float dot_i8(const signed char *restrict w, const float *restrict x, long K) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    long k = 0;
    for (; k + 64 <= K; k += 64) {
        __m512i v = _mm512_loadu_si512((const void *)(w + k));
        __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_castsi512_si128(v)));
        __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 1)));
        __m512 w2 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 2)));
        __m512 w3 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 3)));
        a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + k), a0);
        a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + k + 16), a1);
        a2 = _mm512_fmadd_ps(w2, _mm512_loadu_ps(x + k + 32), a2);
        a3 = _mm512_fmadd_ps(w3, _mm512_loadu_ps(x + k + 48), a3);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; k < K; k++) s += (float)w[k] * x[k];
    return s;
}

/* sum over the first `full` groups (g columns each, g a multiple of 32) of sum_j w_j x_j, w = code * s + o.
   Per group a 16-entry table of its dequantized values (code * s + o) is built once; vpermps picks
   each weight from it by the low 4 bits of its dword, so one permute replaces the mask, the int to
   float conversion and the scaling. */
static inline float dot_i4_groups(const unsigned char *restrict wb, const float *restrict xr,
                                  const _Float16 *restrict S, const _Float16 *restrict O, long full, long g) {
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    long h = g / 2;
    for (long g0 = 0; g0 < full; g0 += 16) {
        long n16 = full - g0 < 16 ? full - g0 : 16;
        __mmask16 mk = (__mmask16)((1u << n16) - 1);
        __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const void *)(S + g0)));
        __m512 ov = O ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const void *)(O + g0)))
                      : _mm512_mul_ps(sv, _mm512_set1_ps(-8.f));
        for (long i = 0; i < n16; i++) {
            __m512i sel = _mm512_set1_epi32((int)i);
            __m512 tbl = _mm512_fmadd_ps(iota, _mm512_permutexvar_ps(sel, sv), _mm512_permutexvar_ps(sel, ov));
            const unsigned char *p = wb + (g0 + i) * h;
            const float *xa = xr + (g0 + i) * g;
            for (long j = 0; j < h; j += 16) {
                __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + j)));
                __m512 lo = _mm512_permutexvar_ps(v, tbl);  /* uses the low 4 bits: the low nibble */
                __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), tbl);
                if (i & 1) {
                    a2 = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xa + j), a2);
                    a3 = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xa + h + j), a3);
                } else {
                    a0 = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xa + j), a0);
                    a1 = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xa + h + j), a1);
                }
            }
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
#else
static inline float dot_i8(const signed char *restrict w, const float *restrict x, long K) {
    float s = 0.f;
    #pragma omp simd reduction(+:s)
    for (long k = 0; k < K; k++) s += (float)w[k] * x[k];
    return s;
}

static inline float dot_i4_groups(const unsigned char *restrict wb, const float *restrict xr,
                                  const _Float16 *restrict S, const _Float16 *restrict O, long full, long g) {
    float s = 0.f;
    long h = g / 2;
    for (long gi = 0; gi < full; gi++) {
        const unsigned char *p = wb + gi * h;
        const float *xa = xr + gi * g;
        float d = 0.f, t = 0.f, sc = (float)S[gi];
        #pragma omp simd reduction(+:d, t)
        for (long j = 0; j < h; j++) {
            d += (float)(p[j] & 15) * xa[j] + (float)(p[j] >> 4) * xa[h + j];
            t += xa[j] + xa[h + j];
        }
        s += sc * d + (O ? (float)O[gi] : -8.f * sc) * t;
    }
    return s;
}
#endif

/* int8 per output channel: y[m, n] = scale[n] * sum_k W[n, k] x[m, k] (+ b[n]); W int8 [N, K]. */
void kiln_qlinear_i8(const float *restrict x, const signed char *restrict W, const float *restrict scale,
                     const float *restrict b, float *restrict y, long M, long N, long K, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long n0 = 0; n0 < N; n0 += 4) {
        long nn = N - n0 < 4 ? N - n0 : 4;
        for (long m = 0; m < M; m++) {
            const float *xr = x + m * K;
            for (long r = 0; r < nn; r++) {
                float s = dot_i8(W + (n0 + r) * K, xr, K);
                y[m * N + n0 + r] = s * scale[n0 + r] + (b ? b[n0 + r] : 0.f);
            }
        }
    }
}

/* int4 in groups of g columns (g a multiple of 32; the last group may be narrower, its width even):
   W uint8 [N, K/2], S f16 [N, G], O f16 [N, G] or NULL (symmetric: offset = -8 * scale).
   A group of width r at column c is bytes c/2 .. c/2 + r/2; byte j holds column c + j (low nibble) and
   c + r/2 + j (high). */
#if defined(KILN_AVX512) && defined(__AVX512BF16__)
/* The bf16 route (CPUs with AVX512-BF16): the 4-bit codes 0..15 are exact in bf16, and the activation
   is split into two bf16 parts, x = hi + lo (hi = bf16(x), lo = bf16(x - hi)), which together keep
   about 16 of its 24 mantissa bits. vdpbf16ps then multiplies 32 codes by 32 activations per
   instruction with exact products accumulated in f32: 4 of them per 64 weights, against 4 int-to-float
   conversions and 4 FMAs per 64 weights for int8. */
#define KILN_I4_BF16 1
static inline unsigned short to_bf16(float f) {
    unsigned int u;
    __builtin_memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);  /* round to nearest even */
    return (unsigned short)(u >> 16);
}

/* x row -> per 32-byte chunk of the packed row, 4 x 32 bf16: the activation at the chunk's low-nibble
   columns (hi part, lo part), then at its high-nibble columns (hi part, lo part); and xs[gi], the sum
   of x over each group (for the offsets). Vectorised: this runs once per call and row of x. */
static inline __m512i split_bf16(__m512 a, __m512 *rest) {
    __m256i h = (__m256i)_mm512_cvtneps_pbh(a);
    __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    *rest = _mm512_sub_ps(a, back);
    return _mm512_castsi256_si512(h);
}

static void i4_prep_x(const float *restrict x, unsigned short *restrict xp, float *restrict xs, long fast, long g) {
    long h = g / 2;
    for (long gi = 0; gi < fast; gi++) {
        __m512 sum = _mm512_setzero_ps();
        for (long j0 = 0; j0 < h; j0 += 16) {
            long b = gi * h + j0;
            unsigned short *d = xp + (b >> 5) * 128 + (b & 31);
            __m512 a = _mm512_loadu_ps(x + gi * g + j0), c = _mm512_loadu_ps(x + gi * g + h + j0), ra, rc;
            sum = _mm512_add_ps(sum, _mm512_add_ps(a, c));
            _mm256_storeu_si256((__m256i *)d, _mm512_castsi512_si256(split_bf16(a, &ra)));
            _mm256_storeu_si256((__m256i *)(d + 32), (__m256i)_mm512_cvtneps_pbh(ra));
            _mm256_storeu_si256((__m256i *)(d + 64), _mm512_castsi512_si256(split_bf16(c, &rc)));
            _mm256_storeu_si256((__m256i *)(d + 96), (__m256i)_mm512_cvtneps_pbh(rc));
        }
        xs[gi] = _mm512_reduce_add_ps(sum);
    }
}

/* for two rows at once (sharing the activation loads and the per-chunk lane -> group index): the sum
   over their first nb bytes (whole groups, nb a multiple of 32, g = 2^(log2h + 1)) of s_g * code * x */
static void dot_i4_bf16x2(const unsigned char *restrict w0, const unsigned char *restrict w1,
                          const unsigned short *restrict xp, const _Float16 *restrict S0,
                          const _Float16 *restrict S1, long nb, long h, int log2h, __m512i tbl, float *out) {
    const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    long per16 = 16 * h;  /* bytes of 16 groups */
    for (long gb = 0; gb < nb; gb += per16) {
        long ng = (nb - gb) / h < 16 ? (nb - gb) / h : 16;
        __mmask16 mk = (__mmask16)((1u << ng) - 1);
        __m512 sv0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const void *)(S0 + gb / h)));
        __m512 sv1 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const void *)(S1 + gb / h)));
        long end = gb + per16 < nb ? gb + per16 : nb;
        for (long b0 = gb; b0 < end; b0 += 32) {
            __m512i gidx = _mm512_srli_epi32(_mm512_add_epi32(_mm512_set1_epi32((int)(b0 - gb)), lane2), log2h);
            const unsigned short *d = xp + (b0 / 32) * 128;
            __m512bh xh0 = (__m512bh)_mm512_loadu_si512(d), xl0 = (__m512bh)_mm512_loadu_si512(d + 32);
            __m512bh xh1 = (__m512bh)_mm512_loadu_si512(d + 64), xl1 = (__m512bh)_mm512_loadu_si512(d + 96);
            __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(w0 + b0)));
            __m512i u = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(w1 + b0)));
            __m512bh cl = (__m512bh)_mm512_permutexvar_epi16(v, tbl);  /* low 5 bits: a table of bf16(i & 15) */
            __m512bh ch = (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(v, 4), tbl);
            __m512bh dl = (__m512bh)_mm512_permutexvar_epi16(u, tbl);
            __m512bh dh = (__m512bh)_mm512_permutexvar_epi16(_mm512_srli_epi16(u, 4), tbl);
            __m512 t = _mm512_dpbf16_ps(_mm512_setzero_ps(), cl, xh0);
            __m512 r = _mm512_dpbf16_ps(_mm512_setzero_ps(), dl, xh0);
            t = _mm512_dpbf16_ps(t, cl, xl0);
            r = _mm512_dpbf16_ps(r, dl, xl0);
            t = _mm512_dpbf16_ps(t, ch, xh1);
            r = _mm512_dpbf16_ps(r, dh, xh1);
            t = _mm512_dpbf16_ps(t, ch, xl1);
            r = _mm512_dpbf16_ps(r, dh, xl1);
            a0 = _mm512_fmadd_ps(t, _mm512_permutexvar_ps(gidx, sv0), a0);
            a1 = _mm512_fmadd_ps(r, _mm512_permutexvar_ps(gidx, sv1), a1);
        }
    }
    out[0] = _mm512_reduce_add_ps(a0);
    out[1] = _mm512_reduce_add_ps(a1);
}

static float dot_i4_bf16(const unsigned char *restrict wb, const unsigned short *restrict xp,
                         const _Float16 *restrict S, long nb, long h, int log2h, __m512i tbl) {
    float out[2];
    dot_i4_bf16x2(wb, wb, xp, S, S, nb, h, log2h, tbl, out);  /* one row: compute it twice, keep one */
    return out[0];
}
#endif

void kiln_qlinear_i4(const float *restrict x, const unsigned char *restrict W, const _Float16 *restrict S,
                     const _Float16 *restrict O, const float *restrict b, float *restrict y,
                     long M, long N, long K, long g, int threads) {
    long G = (K + g - 1) / g, full = K / g, fast = 0;
#ifdef KILN_I4_BF16
    /* the bf16 route covers whole groups in 32-byte chunks; the rest (an odd last 16-byte group, the
       narrower last group) takes the float route below */
    int log2h = 0;
    while ((1L << log2h) < g / 2) log2h++;
    if ((1L << log2h) == g / 2 && g >= 32) fast = ((full * (g / 2)) / 32 * 32) / (g / 2);
    long nbf = fast * (g / 2);
    unsigned short *xp = nbf ? (unsigned short *)__builtin_malloc((size_t)(M * (nbf / 32) * 128 + 1) * 2) : 0;
    float *xs = (float *)__builtin_malloc((size_t)(M * G + 1) * sizeof(float));
    unsigned short tb[32];
    for (int e = 0; e < 32; e++) tb[e] = to_bf16((float)(e & 15));
    const __m512i tbl = _mm512_loadu_si512((const void *)tb);
    for (long m = 0; m < M; m++)
        if (nbf) i4_prep_x(x + m * K, xp + m * (nbf / 32) * 128, xs + m * G, fast, g);
#endif
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long n0 = 0; n0 < N; n0 += 4) {
        long nn = N - n0 < 4 ? N - n0 : 4;
        float pair[2] = {0.f, 0.f};
        (void)pair;
        for (long m = 0; m < M; m++)
            for (long r = 0; r < nn; r++) {
                long n = n0 + r;
                const unsigned char *wb = W + n * (K / 2);
                const float *xr = x + m * K;
                const _Float16 *Sn = S + n * G, *On = O ? O + n * G : 0;
                float acc = 0.f;
#ifdef KILN_I4_BF16
                if (fast) {
                    if (r + 1 < nn && !(r & 1)) {  /* rows n and n + 1 together */
                        dot_i4_bf16x2(wb, wb + K / 2, xp + m * (nbf / 32) * 128, Sn, Sn + G, nbf, g / 2, log2h, tbl, pair);
                        acc = pair[0];
                    } else if (r & 1) {
                        acc = pair[1];
                    } else {
                        acc = dot_i4_bf16(wb, xp + m * (nbf / 32) * 128, Sn, nbf, g / 2, log2h, tbl);
                    }
                    __m512 ao = _mm512_setzero_ps();  /* + sum_g offset_g * sum(x over g), 16 groups at a time */
                    for (long g0 = 0; g0 < fast; g0 += 16) {
                        __mmask16 mk = (__mmask16)((1u << (fast - g0 < 16 ? fast - g0 : 16)) - 1);
                        __m512 ov = On ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, (const void *)(On + g0)))
                                       : _mm512_mul_ps(_mm512_set1_ps(-8.f), _mm512_cvtph_ps(
                                             _mm256_maskz_loadu_epi16(mk, (const void *)(Sn + g0))));
                        ao = _mm512_fmadd_ps(ov, _mm512_maskz_loadu_ps(mk, xs + m * G + g0), ao);
                    }
                    acc += _mm512_reduce_add_ps(ao);
                }
#endif
                long c0 = fast * g;
                acc += dot_i4_groups(wb + c0 / 2, xr + c0, Sn + fast, On ? On + fast : 0, full - fast, g);
                if (full < G) {  /* the narrower last group */
                    long c = full * g, hr = (K - c) / 2;
                    const unsigned char *p = wb + c / 2;
                    float sc = (float)Sn[G - 1], off = On ? (float)On[G - 1] : -8.f * sc;
                    for (long j = 0; j < hr; j++)
                        acc += ((float)(p[j] & 15) * sc + off) * xr[c + j] + ((float)(p[j] >> 4) * sc + off) * xr[c + hr + j];
                }
                y[m * N + n] = acc + (b ? b[n] : 0.f);
            }
    }
#ifdef KILN_I4_BF16
    __builtin_free(xp);
    __builtin_free(xs);
#endif
}

/* Dequantize a whole weight to float32 (for prefill-sized inputs, which then use torch's GEMM). */
void kiln_dequant_i8(const signed char *restrict W, const float *restrict scale, float *restrict out,
                     long N, long K, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long n = 0; n < N; n++) {
        float s = scale[n];
        #pragma omp simd
        for (long k = 0; k < K; k++) out[n * K + k] = (float)W[n * K + k] * s;
    }
}

void kiln_dequant_i4(const unsigned char *restrict W, const _Float16 *restrict S, const _Float16 *restrict O,
                     float *restrict out, long N, long K, long g, int threads) {
    long G = (K + g - 1) / g;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long n = 0; n < N; n++)
        for (long gi = 0; gi < G; gi++) {
            long c = gi * g, r = K - c < g ? K - c : g, h = r / 2;
            const unsigned char *p = W + n * (K / 2) + c / 2;
            float s = (float)S[n * G + gi], o = O ? (float)O[n * G + gi] : -8.f * s;
            float *d = out + n * K + c;
            #pragma omp simd
            for (long j = 0; j < h; j++) {
                d[j] = (float)(p[j] & 15) * s + o;
                d[h + j] = (float)(p[j] >> 4) * s + o;
            }
        }
}

/* Float32 weights repacked into panels (the runtime's layout for every float linear that takes this
   path): panel p holds output rows 32p..32p+31 as [K][32], zero-padded past N. A k step loads a
   panel column's weights once and multiplies them with x[m, k] broadcast for every activation row of
   the tile, so the accumulators hold whole output rows and need no horizontal sums.

   The tiles are sized to each instruction set's register file, so that no accumulator spills: a
   vector holds VW floats (AVX-512 16, AVX2 8, otherwise 4: SSE2, NEON or whatever the compiler's
   target has) and a tile covers CW = 2 vectors of the panel's 32 columns (AVX-512: the whole panel;
   AVX2: two halves of 16; portable: four quarters of 8) for up to TILE_MR activation rows: AVX-512
   12 rows (24 of its 32 registers), AVX2 6 (12 of 16), portable 4 (8 of 16). A single row takes the
   whole panel per k step, k split into 8 / (32 / VW) ways: 8 independent FMA chains, enough to stream
   the weights. */
#if defined(KILN_AVX512)
#define VW 16
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && !defined(KILN_PORTABLE)
#define KILN_AVX2 1
#include <immintrin.h>
#define VW 8
#else
#define VW 4
#endif
typedef float kvf __attribute__((vector_size(VW * 4), aligned(4)));  /* VW floats, unaligned loads */
#define PANEL 32
#define NVP (PANEL / VW)  /* vectors per panel column */
#define CV 2              /* vectors per tile column: a tile covers CW of the panel's columns */
#define CW (CV * VW)
#define RU (8 / NVP)      /* the 1-row kernels' k ways */

/* VW results for output rows n.. of one activation row */
static inline void store_vec(float *restrict yr, kvf a, const float *restrict b, long n, long N) {
    if (!b && n + VW <= N) {
        *(kvf *)(yr + n) = a;
        return;
    }
    for (int j = 0; j < VW && n + j < N; j++) yr[n + j] = a[j] + (b ? b[n + j] : 0.f);
}

/* row scales (int8 weights) of output rows n..n+VW-1; ones for float weights (S NULL) */
static inline kvf load_scales(const float *restrict s, long n, long N) {
    kvf v;
    for (int j = 0; j < VW; j++) v[j] = !s ? 1.f : n + j < N ? s[n + j] : 0.f;
    return v;
}

/* the column loaders: VW weights of panel column c, from its column j (a multiple of VW) on */
static inline kvf f32_column(const float *restrict c, int j) {
    return *(const kvf *)(c + j);
}

#if defined(KILN_AVX512)  /* GCC's generic conversions of byte vectors go through scalars: use the instructions */
static inline kvf q8_column(const signed char *restrict c, int j) {
    return (kvf)_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(c + j))));
}

static inline kvf q4_column(const unsigned char *restrict c, int j) {  /* j < 16: low nibbles, else high */
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(c + (j & 15))));
    return (kvf)_mm512_cvtepi32_ps(j & 16 ? _mm512_srli_epi32(v, 4) : _mm512_and_si512(v, _mm512_set1_epi32(15)));
}

static inline kvf h16_to_f32(const _Float16 *restrict h) {
    return (kvf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}
#elif defined(KILN_AVX2)
static inline kvf q8_column(const signed char *restrict c, int j) {
    return (kvf)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + j))));
}

static inline kvf q4_column(const unsigned char *restrict c, int j) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c + (j & 15))));
    return (kvf)_mm256_cvtepi32_ps(j & 16 ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, _mm256_set1_epi32(15)));
}

static inline kvf h16_to_f32(const _Float16 *restrict h) {
    return (kvf)_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}
#else  /* whole-vector conversions (element by element, GCC goes through scalars) */
typedef signed char kvb __attribute__((vector_size(VW), aligned(1)));
typedef unsigned char kvu __attribute__((vector_size(VW), aligned(1)));
typedef int kvi __attribute__((vector_size(VW * 4)));
static inline kvf q8_column(const signed char *restrict c, int j) {
    return __builtin_convertvector(__builtin_convertvector(*(const kvb *)(c + j), kvi), kvf);
}

static inline kvf q4_column(const unsigned char *restrict c, int j) {
    kvi v = __builtin_convertvector(*(const kvu *)(c + (j & 15)), kvi);
    return __builtin_convertvector(j & 16 ? v >> 4 : v & 15, kvf);
}

static inline kvf h16_to_f32(const _Float16 *restrict h) {
    kvf v;
    for (int l = 0; l < VW; l++) v[l] = (float)h[l];
    return v;
}
#endif

/* The panel kernels of one weight type T: COLUMN(column, j) gives VW floats of a panel column (PANEL
   elements of T); S, when given, are row scales applied once to the results. NAME_tile##MR: a tile of
   up to MR activation rows, CW columns at a time (columns past N skipped); NAME_row: one row, the
   whole panel per k step, k split RU ways; NAME_panels: every panel (parallel) and row. */
#define COL_TILE(NAME, MR, T, COLUMN) \
static inline void NAME(const float *restrict x, const T *restrict P, const float *restrict S, \
                        const float *restrict b, float *restrict y, long m0, int mr, long n0, long N, long K) { \
    const float *xr[MR]; \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) xr[i] = x + (m0 + (i < mr ? i : 0)) * K; \
    for (int j0 = 0; j0 < PANEL && n0 + j0 < N; j0 += CW) { \
        kvf a[MR][CV]; \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) a[i][v] = (kvf){0}; \
        for (long k = 0; k < K; k++) { \
            kvf w[CV]; \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) w[v] = COLUMN(P + k * PANEL, j0 + v * VW); \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) { \
                float s = xr[i][k]; \
                _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) a[i][v] += s * w[v]; } \
        } \
        _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) { \
            kvf sc = load_scales(S, n0 + j0 + v * VW, N); \
            for (int i = 0; i < mr; i++) store_vec(y + (m0 + i) * N, a[i][v] * sc, b, n0 + j0 + v * VW, N); } \
    } \
}

#define COL_ROW(NAME, T, COLUMN) \
static inline void NAME(const float *restrict x, const T *restrict P, const float *restrict S, \
                        const float *restrict b, float *restrict y, long m, long n0, long N, long K) { \
    kvf a[RU][NVP]; \
    _Pragma("GCC unroll 8") for (int u = 0; u < RU; u++) \
        _Pragma("GCC unroll 8") for (int v = 0; v < NVP; v++) a[u][v] = (kvf){0}; \
    const float *xr = x + m * K; \
    long k = 0; \
    for (; k + RU <= K; k += RU) { \
        _Pragma("GCC unroll 8") for (int u = 0; u < RU; u++) \
            _Pragma("GCC unroll 8") for (int v = 0; v < NVP; v++) \
                a[u][v] += xr[k + u] * COLUMN(P + (k + u) * PANEL, v * VW); \
    } \
    for (; k < K; k++) \
        _Pragma("GCC unroll 8") for (int v = 0; v < NVP; v++) a[0][v] += xr[k] * COLUMN(P + k * PANEL, v * VW); \
    _Pragma("GCC unroll 8") for (int v = 0; v < NVP; v++) { \
        kvf t = a[0][v]; \
        _Pragma("GCC unroll 8") for (int u = 1; u < RU; u++) t += a[u][v]; \
        store_vec(y + m * N, t * load_scales(S, n0 + v * VW, N), b, n0 + v * VW, N); } \
}

/* the tiles each variant builds: TILE_MR rows at a time, and the heights its remainders take */
#if defined(KILN_AVX512)
#define TILE_MR 12
#define COL_TILES(NAME, T, COLUMN) \
COL_TILE(NAME##_tile12, 12, T, COLUMN) COL_TILE(NAME##_tile8, 8, T, COLUMN) \
COL_TILE(NAME##_tile4, 4, T, COLUMN) COL_TILE(NAME##_tile2, 2, T, COLUMN)
#define COL_REST(NAME, r, ...) \
    if (r > 8) NAME##_tile12(__VA_ARGS__); else if (r > 4) NAME##_tile8(__VA_ARGS__); \
    else if (r > 2) NAME##_tile4(__VA_ARGS__); else NAME##_tile2(__VA_ARGS__);
#elif defined(KILN_AVX2)
#define TILE_MR 6
#define COL_TILES(NAME, T, COLUMN) \
COL_TILE(NAME##_tile6, 6, T, COLUMN) COL_TILE(NAME##_tile4, 4, T, COLUMN) COL_TILE(NAME##_tile2, 2, T, COLUMN)
#define COL_REST(NAME, r, ...) \
    if (r > 4) NAME##_tile6(__VA_ARGS__); else if (r > 2) NAME##_tile4(__VA_ARGS__); else NAME##_tile2(__VA_ARGS__);
#else
#define TILE_MR 4
#define COL_TILES(NAME, T, COLUMN) COL_TILE(NAME##_tile4, 4, T, COLUMN) COL_TILE(NAME##_tile2, 2, T, COLUMN)
#define COL_REST(NAME, r, ...) \
    if (r > 2) NAME##_tile4(__VA_ARGS__); else NAME##_tile2(__VA_ARGS__);
#endif
#define TILE_FULL_(NAME, MR) NAME##_tile##MR
#define TILE_FULL(NAME, MR) TILE_FULL_(NAME, MR)

#define COL_KERNELS(NAME, T, COLUMN) \
COL_TILES(NAME, T, COLUMN) \
COL_ROW(NAME##_row, T, COLUMN) \
static void NAME##_panels(const float *restrict x, const T *restrict Wp, const float *restrict S, \
                          const float *restrict b, float *restrict y, long M, long N, long K, int threads) { \
    long np = (N + PANEL - 1) / PANEL; \
    _Pragma("omp parallel for schedule(static) num_threads(threads)") \
    for (long p = 0; p < np; p++) { \
        const T *P = Wp + p * K * PANEL; \
        long n0 = p * PANEL, m = 0; \
        for (; m + TILE_MR <= M; m += TILE_MR) TILE_FULL(NAME, TILE_MR)(x, P, S, b, y, m, TILE_MR, n0, N, K); \
        int r = (int)(M - m); \
        if (r == 1) NAME##_row(x, P, S, b, y, m, n0, N, K); \
        else if (r > 1) { COL_REST(NAME, r, x, P, S, b, y, m, r, n0, N, K) } \
    } \
}

COL_KERNELS(f32, float, f32_column)

/* floats per vector of this build's panel kernels (16 AVX-512, 8 AVX2, 4 portable): Python routes by it
   (panels_fast) */
int kiln_vector_width(void) { return VW; }

void kiln_pack_f32(const float *restrict W, float *restrict Wp, long N, long K, int threads) {
    long np = (N + PANEL - 1) / PANEL;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long p = 0; p < np; p++)
        for (long k = 0; k < K; k++)
            for (int j = 0; j < PANEL; j++) {
                long n = p * PANEL + j;
                Wp[(p * K + k) * PANEL + j] = n < N ? W[n * K + k] : 0.f;
            }
}

void kiln_linear_packed(const float *restrict x, const float *restrict Wp, const float *restrict b,
                        float *restrict y, long M, long N, long K, int threads) {
    f32_panels(x, Wp, 0, b, y, M, N, K, threads);
}

/* Quantized weights in panels (a runtime's layout for kiln.qlinear, like the float panels above):
   int8: panel p holds the codes of rows 32p..32p+31 as [K][32] int8; the per-row scales stay [N].
   int4: panel p holds [K][16] bytes, byte j of column k = code(row 32p + j) | code(row 32p + 16 + j) << 4,
   and its scales (and offsets) as [G][32] f16. A k step turns the tile's codes of a column into float
   vectors once and FMAs them against every tile row's broadcast activation. int8 applies the row
   scales once at the end (x . q s = (x . q) s); int4 sums code * x per group, then adds
   s_g * (that sum) + m_g * (the group's sum of x), so dequantization costs two FMAs per group per
   row instead of one per weight. int4 tiles hold twice the accumulators (the group's and the total),
   so half the rows: Q4_MR. */
COL_KERNELS(q8, signed char, q8_column)

#define Q4_TILE(NAME, MR) \
static inline void NAME(const float *restrict x, const float *restrict xs, const unsigned char *restrict P, \
                        const _Float16 *restrict Sp, const _Float16 *restrict Op, const float *restrict b, \
                        float *restrict y, long m0, int mr, long n0, long N, long K, long g, long G) { \
    const float *xr[MR]; \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) xr[i] = x + (m0 + (i < mr ? i : 0)) * K; \
    for (int j0 = 0; j0 < PANEL && n0 + j0 < N; j0 += CW) { \
        kvf a[MR][CV]; \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) a[i][v] = (kvf){0}; \
        for (long gi = 0; gi < G; gi++) { \
            long c0 = gi * g, c1 = c0 + g < K ? c0 + g : K; \
            kvf t[MR][CV]; \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) \
                _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) t[i][v] = (kvf){0}; \
            for (long k = c0; k < c1; k++) { \
                kvf w[CV]; \
                _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) w[v] = q4_column(P + k * (PANEL / 2), j0 + v * VW); \
                _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) { \
                    float s = xr[i][k]; \
                    _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) t[i][v] += s * w[v]; } \
            } \
            _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) { \
                kvf sc = h16_to_f32(Sp + gi * PANEL + j0 + v * VW); \
                kvf of = Op ? h16_to_f32(Op + gi * PANEL + j0 + v * VW) : -8.f * sc; \
                _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) \
                    a[i][v] += t[i][v] * sc + xs[(m0 + (i < mr ? i : 0)) * G + gi] * of; } \
        } \
        _Pragma("GCC unroll 4") for (int v = 0; v < CV; v++) \
            for (int i = 0; i < mr; i++) store_vec(y + (m0 + i) * N, a[i][v], b, n0 + j0 + v * VW, N); \
    } \
}

#if defined(KILN_AVX512)
Q4_TILE(q4_tile6, 6)
Q4_TILE(q4_tile4, 4)
#define Q4_MR 6
#define Q4_FULL q4_tile6
#elif defined(KILN_AVX2)
Q4_TILE(q4_tile3, 3)
Q4_TILE(q4_tile2, 2)
#define Q4_MR 3
#define Q4_FULL q4_tile3
#else
Q4_TILE(q4_tile2, 2)
#define Q4_MR 2
#define Q4_FULL q4_tile2
#endif

/* one activation row: the whole panel per k step, k split RU ways within each group */
static inline void q4_row(const float *restrict x, const float *restrict xs, const unsigned char *restrict P,
                          const _Float16 *restrict Sp, const _Float16 *restrict Op, const float *restrict b,
                          float *restrict y, long m, long n0, long N, long K, long g, long G) {
    kvf a[NVP];
    #pragma GCC unroll 8
    for (int v = 0; v < NVP; v++) a[v] = (kvf){0};
    const float *xr = x + m * K;
    for (long gi = 0; gi < G; gi++) {
        long c0 = gi * g, c1 = c0 + g < K ? c0 + g : K, k = c0;
        kvf t[RU][NVP];
        #pragma GCC unroll 8
        for (int u = 0; u < RU; u++)
            #pragma GCC unroll 8
            for (int v = 0; v < NVP; v++) t[u][v] = (kvf){0};
        for (; k + RU <= c1; k += RU)
            #pragma GCC unroll 8
            for (int u = 0; u < RU; u++)
                #pragma GCC unroll 8
                for (int v = 0; v < NVP; v++) t[u][v] += xr[k + u] * q4_column(P + (k + u) * (PANEL / 2), v * VW);
        for (; k < c1; k++)
            #pragma GCC unroll 8
            for (int v = 0; v < NVP; v++) t[0][v] += xr[k] * q4_column(P + k * (PANEL / 2), v * VW);
        float sx = xs[m * G + gi];
        #pragma GCC unroll 8
        for (int v = 0; v < NVP; v++) {
            kvf s = t[0][v], sc = h16_to_f32(Sp + gi * PANEL + v * VW);
            #pragma GCC unroll 8
            for (int u = 1; u < RU; u++) s += t[u][v];
            a[v] += s * sc + sx * (Op ? h16_to_f32(Op + gi * PANEL + v * VW) : -8.f * sc);
        }
    }
    #pragma GCC unroll 8
    for (int v = 0; v < NVP; v++) store_vec(y + m * N, a[v], b, n0 + v * VW, N);
}

void kiln_pack_q8(const signed char *restrict Q, signed char *restrict Qp, long N, long K, int threads) {
    long np = (N + PANEL - 1) / PANEL;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long p = 0; p < np; p++)
        for (long k = 0; k < K; k++)
            for (int j = 0; j < PANEL; j++) {
                long n = p * PANEL + j;
                Qp[(p * K + k) * PANEL + j] = n < N ? Q[n * K + k] : 0;
            }
}

/* the code of (row n, column c) in kiln's int4 layout: groups of g columns, byte j of a group of width r
   holds column j (low nibble) and column r/2 + j (high nibble) */
static inline int q4_code(const unsigned char *restrict Q, long n, long c, long K, long g) {
    long c0 = c / g * g, r = K - c0 < g ? K - c0 : g, j = c - c0;
    unsigned char byte = Q[n * (K / 2) + c0 / 2 + (j < r / 2 ? j : j - r / 2)];
    return j < r / 2 ? byte & 15 : byte >> 4;
}

void kiln_pack_q4(const unsigned char *restrict Q, const _Float16 *restrict S, const _Float16 *restrict O,
                  unsigned char *restrict Qp, _Float16 *restrict Sp, _Float16 *restrict Op,
                  long N, long K, long g, int threads) {
    long np = (N + PANEL - 1) / PANEL, G = (K + g - 1) / g;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long p = 0; p < np; p++) {
        for (long k = 0; k < K; k++)
            for (int j = 0; j < PANEL / 2; j++) {
                long lo = p * PANEL + j, hi = lo + PANEL / 2;
                int a = lo < N ? q4_code(Q, lo, k, K, g) : 0, c = hi < N ? q4_code(Q, hi, k, K, g) : 0;
                Qp[(p * K + k) * (PANEL / 2) + j] = (unsigned char)(a | (c << 4));
            }
        for (long gi = 0; gi < G; gi++)
            for (int j = 0; j < PANEL; j++) {
                long n = p * PANEL + j;
                Sp[(p * G + gi) * PANEL + j] = n < N ? S[n * G + gi] : (_Float16)0;
                if (O) Op[(p * G + gi) * PANEL + j] = n < N ? O[n * G + gi] : (_Float16)0;
            }
    }
}

void kiln_qlinear_q8_panels(const float *restrict x, const signed char *restrict Qp, const float *restrict S,
                            const float *restrict b, float *restrict y, long M, long N, long K, int threads) {
    q8_panels(x, Qp, S, b, y, M, N, K, threads);
}

void kiln_qlinear_q4_panels(const float *restrict x, const unsigned char *restrict Qp, const _Float16 *restrict Sp,
                            const _Float16 *restrict Op, const float *restrict b, float *restrict y,
                            long M, long N, long K, long g, int threads) {
    long np = (N + PANEL - 1) / PANEL, G = (K + g - 1) / g;
    float *xs = (float *)__builtin_malloc((size_t)(M * G + 1) * sizeof(float));  /* each group's sum of x */
    for (long m = 0; m < M; m++)
        for (long gi = 0; gi < G; gi++) {
            float t = 0.f;
            for (long c = gi * g; c < K && c < (gi + 1) * g; c++) t += x[m * K + c];
            xs[m * G + gi] = t;
        }
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (long p = 0; p < np; p++) {
        const unsigned char *P = Qp + p * K * (PANEL / 2);
        const _Float16 *SP = Sp + p * G * PANEL, *OP = Op ? Op + p * G * PANEL : 0;
        long n0 = p * PANEL, m = 0;
        for (; m + Q4_MR <= M; m += Q4_MR) Q4_FULL(x, xs, P, SP, OP, b, y, m, Q4_MR, n0, N, K, g, G);
        int r = (int)(M - m);
        if (r == 1) q4_row(x, xs, P, SP, OP, b, y, m, n0, N, K, g, G);
#ifdef KILN_AVX512
        else if (r > 4) q4_tile6(x, xs, P, SP, OP, b, y, m, r, n0, N, K, g, G);
        else if (r > 1) q4_tile4(x, xs, P, SP, OP, b, y, m, r, n0, N, K, g, G);
#else
        else if (r > 1) q4_tile2(x, xs, P, SP, OP, b, y, m, r, n0, N, K, g, G);
#endif
    }
    __builtin_free(xs);
}
"""
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
# every exported kernel: (pointer arguments, long arguments), then the thread count (int)
KERNELS = {
    "kiln_linear_f32": (4, 3), "kiln_pack_f32": (2, 2), "kiln_linear_packed": (4, 3),
    "kiln_pack_q8": (2, 2), "kiln_pack_q4": (6, 3), "kiln_qlinear_q8_panels": (5, 3),
    "kiln_qlinear_q4_panels": (6, 4), "kiln_qlinear_i8": (5, 3), "kiln_qlinear_i4": (6, 4),
    "kiln_dequant_i8": (3, 2), "kiln_dequant_i4": (4, 3),
}


class UnsupportedISA(KilnError):
    """An instruction-set variant that is not one of ``ISAS``, or that this CPU cannot run."""


def flags(isa: str = "native") -> list[str]:
    """The compiler flags of variant ``isa``."""
    return ["-O3", *_ISA_FLAGS[_isa_name(isa)], "-fopenmp", "-fPIC", "-shared"]


_log = logging.getLogger("kiln")
_lock = threading.Lock()
_libs: dict[str, ctypes.CDLL | None] = {}  # variant -> its loaded build (None: it could not be built)
_current: ctypes.CDLL | None = None  # what library() returns: the selected variant's build, once
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


def library(isa: str | None = None) -> ctypes.CDLL | None:
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


def _variant(isa: str) -> ctypes.CDLL | None:
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


def _build(isa: str = "native") -> ctypes.CDLL | None:
    cc = _compiler()
    if cc is None:
        _note_no_compiler()
        return None
    fl = flags(isa)
    # -march=native: that binary is for this CPU only, so the CPU is part of its key (a shared cache directory
    # must never hand one machine another's build); another variant is one binary for every CPU it runs on
    sig = _cpu_signature() if isa == "native" else ""
    key = hashlib.sha256((SOURCE + " ".join(fl) + cc + sig).encode()).hexdigest()[:16]
    out = cache_dir() / "native" / key / "libkiln_native.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            src = Path(tmp) / "kernels.c"
            src.write_text(SOURCE)
            so = Path(tmp) / "lib.so"
            r = subprocess.run([cc, *fl, str(src), "-o", str(so)], capture_output=True, text=True, check=False)
            if r.returncode != 0:
                _log.warning("could not compile the %s variant of kiln's native kernels (%s): decode linears run "
                             "through torch", isa, (r.stderr.strip().splitlines() or ["unknown error"])[-1][:200])
                return None
            os.replace(so, out)  # atomic: a concurrent build of the same key writes the same bytes
    lib = ctypes.CDLL(str(out))
    for name, (ptrs, longs) in KERNELS.items():
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_void_p] * ptrs + [ctypes.c_long] * longs + [ctypes.c_int]
        fn.restype = None
    lib.kiln_vector_width.argtypes, lib.kiln_vector_width.restype = [], ctypes.c_int
    lib.kiln_isa = isa
    lib.vector_width = lib.kiln_vector_width()
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


def panels_fast(lib: ctypes.CDLL | None = None) -> bool:
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
            ok = all(user.name in ("kiln.linear", "kiln.qlinear") and i == 1 for user, i in op.result.uses)
            only[name] = only.get(name, True) and ok
        for op in prog.walk("kiln.qlinear"):
            names = [v.owner.attrs["name"] if v.owner is not None and v.owner.name == "kiln.weight" else None
                     for v in op.operands[1:4]]
            has_off = op.attrs["format"] == "int4" and not op.attrs["symmetric"]
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


def _pack_quantized(q: torch.Tensor, s: torch.Tensor | None, o: torch.Tensor | None, attrs: dict
                    ) -> PackedWeight | None:
    lib = library()
    if s is None or q.dim() != 2 or not q.is_contiguous() or q.device.type != "cpu" or q.numel() < MIN_WEIGHT_ELEMENTS // 2:
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


def quant_panels(q: torch.Tensor, s: torch.Tensor, o: torch.Tensor | None, attrs: dict) -> PackedWeight | None:
    """The panels of a quantized weight a runtime could not swap for them (one also read by another op,
    like an int8 embedding tied to the vocabulary projection), made on first use and kept beside it
    for as long as it lives; None when packing is off, the panels are not fast in this build (``panels_fast``)
    or the weight does not qualify."""
    if library() is None or os.environ.get("KILN_PACK", "1") == "0" or not panels_fast():
        return None
    hit = _packed.get(id(q))
    if hit is not None and hit[0]() is q:
        return hit[1]
    p = _pack_quantized(q, s, o, attrs)
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
            or group_size % 32):
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
