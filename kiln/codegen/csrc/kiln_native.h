/* kiln's native CPU kernels: what every part of kiln_native.c shares (the instruction-set paths, the
   constants kiln/codegen/native.py passes) and the functions the library exports.

   kiln/codegen/native.py compiles kiln_native.c, one translation unit that includes the other .c files of
   this directory, once per instruction-set variant (its docstring has the variants and their flags). Its
   table native.EXPORTS gives each function declared at the end of this file its ctypes argument and result
   types; tests/test_native_build.py checks that table against these declarations, and compiles every
   variant with -Wall -Wextra -Wmissing-prototypes -Werror (so an exported function missing here fails). */
#ifndef KILN_NATIVE_H
#define KILN_NATIVE_H

#include <stddef.h>
#include <omp.h>

/* Constants defined once, in native.py (native.DEFINES), and passed as -D flags. */
#ifndef KILN_PANEL
#error "KILN_PANEL (output rows per panel of a packed weight) is passed by kiln/codegen/native.py: -DKILN_PANEL=..."
#endif
#define PANEL KILN_PANEL
#ifndef KILN_I4_ZERO
#error "KILN_I4_ZERO (symmetric int4's zero point, kiln/ir/ops_quant.py) is passed by kiln/codegen/native.py"
#endif

/* The instruction-set paths (see native.py's docstring: one source, built per variant). KILN_AVX512: the
   AVX-512 intrinsics (F, BW and VL), taken when the compiler targets them; KILN_AVX2: AVX2 + FMA + F16C
   intrinsics for the panel kernels' conversions; otherwise GCC's generic vector code, which the compiler
   lowers to SSE2, NEON or plain scalars as its target allows. KILN_PORTABLE (the portable variant) turns
   every intrinsic path off whatever the compiler's target. KILN_I4_BF16: the int4 row kernel's bf16 route
   (AVX-512 CPUs with AVX512-BF16, quant_rows.c). */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && !defined(KILN_PORTABLE)
#define KILN_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && !defined(KILN_PORTABLE)
#define KILN_AVX2 1
#endif
#if defined(KILN_AVX512) && defined(__AVX512BF16__)
#define KILN_I4_BF16 1
#endif
#if defined(KILN_AVX512) || defined(KILN_AVX2)
#include <immintrin.h>
#endif

/* The exported functions. Pointers are tensors' data (row-major, contiguous), NULL where optional (b, O,
   Op); M activation rows, N output rows, K columns, g the int4 group size; threads: OpenMP threads. */

/* float32 (linear_rows.c, panels.c) */
void kiln_linear_f32(const float *restrict x, const float *restrict W, const float *restrict b,
                     float *restrict y, long M, long N, long K, int threads);
void kiln_pack_f32(const float *restrict W, float *restrict Wp, long N, long K, int threads);
void kiln_linear_packed(const float *restrict x, const float *restrict Wp, const float *restrict b,
                        float *restrict y, long M, long N, long K, int threads);

/* int8 (quant_rows.c, panels.c) */
void kiln_qlinear_i8(const float *restrict x, const signed char *restrict W, const float *restrict scale,
                     const float *restrict b, float *restrict y, long M, long N, long K, int threads);
void kiln_dequant_i8(const signed char *restrict W, const float *restrict scale, float *restrict out,
                     long N, long K, int threads);
void kiln_pack_q8(const signed char *restrict Q, signed char *restrict Qp, long N, long K, int threads);
void kiln_qlinear_q8_panels(const float *restrict x, const signed char *restrict Qp, const float *restrict S,
                            const float *restrict b, float *restrict y, long M, long N, long K, int threads);

/* int4 (quant_rows.c, panels_q4.c) */
void kiln_qlinear_i4(const float *restrict x, const unsigned char *restrict W, const _Float16 *restrict S,
                     const _Float16 *restrict O, const float *restrict b, float *restrict y,
                     long M, long N, long K, long g, int threads);
void kiln_dequant_i4(const unsigned char *restrict W, const _Float16 *restrict S, const _Float16 *restrict O,
                     float *restrict out, long N, long K, long g, int threads);
void kiln_pack_q4(const unsigned char *restrict Q, const _Float16 *restrict S, const _Float16 *restrict O,
                  unsigned char *restrict Qp, _Float16 *restrict Sp, _Float16 *restrict Op,
                  long N, long K, long g, int threads);
void kiln_qlinear_q4_panels(const float *restrict x, const unsigned char *restrict Qp, const _Float16 *restrict Sp,
                            const _Float16 *restrict Op, const float *restrict b, float *restrict y,
                            long M, long N, long K, long g, int threads);

/* This build's constants, defined in the C (kiln_native.c) and read back by native.py once per build. */
int kiln_vector_width(void);
int kiln_tile_rows(void);
int kiln_q4_tile_rows(void);
int kiln_i4_group_multiple(void);

#endif
