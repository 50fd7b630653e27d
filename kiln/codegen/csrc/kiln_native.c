/* kiln's native CPU kernels: the one translation unit kiln/codegen/native.py compiles, once per
   instruction-set variant (cc -O3 <the variant's flags> -DKILN_PANEL=... -fopenmp -fPIC -shared; native.flags).
   The parts below are included once each, in this order (each uses what the ones before it define). */
#include "kiln_native.h"

#include "linear_rows.c"  /* float32 row kernel: kiln_linear_f32 */
#include "quant_rows.c"   /* int8 / int4 row kernels and dequantization: kiln_qlinear_i8/_i4, kiln_dequant_i8/_i4 */
#include "panels.c"       /* panel vectors and tiles; float32 and int8 panels: kiln_pack_f32/_q8, kiln_linear_packed,
                             kiln_qlinear_q8_panels */
#include "panels_q4.c"    /* int4 panels: kiln_pack_q4, kiln_qlinear_q4_panels */

/* This build's constants, read back once per build by native.py (as lib.vector_width, lib.tile_rows, ...). */

/* floats per vector of this build's panel kernels (16 AVX-512, 8 AVX2, 4 portable): Python routes by it
   (panels_fast) */
int kiln_vector_width(void) { return VW; }

/* activation rows per full tile of the float32 / int8 panels (AVX-512 12, AVX2 6, portable 4) and of the
   int4 panels (6, 3, 2); the tests check every tile height and remainder with them */
int kiln_tile_rows(void) { return TILE_MR; }
int kiln_q4_tile_rows(void) { return Q4_MR; }

/* kiln_qlinear_i4 takes group sizes that are multiples of this */
int kiln_i4_group_multiple(void) { return I4_GROUP_MULTIPLE; }
