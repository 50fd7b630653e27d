/* Part of kiln_native.c (included there once, after kiln_native.h): the panel kernels' vectors and tiles,
   and the float32 and int8 panels.

   Float32 weights repacked into panels (the runtime's layout for every float linear that takes this
   path): panel p holds output rows 32p..32p+31 as [K][32] (32: PANEL, which native.PANEL defines),
   zero-padded past N. A k step loads a panel column's weights once and multiplies them with x[m, k]
   broadcast for every activation row of the tile, so the accumulators hold whole output rows and need no
   horizontal sums.

   The tiles are sized to each instruction set's register file, so that no accumulator spills: a
   vector holds VW floats (AVX-512 16, AVX2 8, otherwise 4: SSE2, NEON or whatever the compiler's
   target has) and a tile covers CW = 2 vectors of the panel's 32 columns (AVX-512: the whole panel;
   AVX2: two halves of 16; portable: four quarters of 8) for up to TILE_MR activation rows: AVX-512
   12 rows (24 of its 32 registers), AVX2 6 (12 of 16), portable 4 (8 of 16). A single row takes the
   whole panel per k step, k split into 8 / (32 / VW) ways: 8 independent FMA chains, enough to stream
   the weights. */
#if defined(KILN_AVX512)
#define VW 16
#elif defined(KILN_AVX2)
#define VW 8
#else
#define VW 4
#endif
typedef float kvf __attribute__((vector_size(VW * 4), aligned(4)));  /* VW floats, unaligned loads */
#define NVP (PANEL / VW)  /* vectors per panel column */
#define CV 2              /* vectors per tile column: a tile covers CW of the panel's columns */
#define CW (CV * VW)
#define RU (8 / NVP)      /* the 1-row kernels' k ways */
/* what these kernels assume of PANEL (native.PANEL): whole tiles and whole vectors per panel, at least one
   k way for the 1-row kernels, and an int4 panel column's low-nibble half (PANEL / 2 rows) a power of two
   and whole vectors (q4_column) */
_Static_assert(PANEL % CW == 0 && NVP <= 8, "PANEL (native.PANEL): 2 to 8 vectors, a multiple of 2");
_Static_assert((PANEL & (PANEL - 1)) == 0 && PANEL / 2 >= VW, "PANEL (native.PANEL): a power of two");

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

static inline kvf q4_column(const unsigned char *restrict c, int j) {  /* j < PANEL / 2: low nibbles, else high */
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(c + (j & (PANEL / 2 - 1)))));
    return (kvf)_mm512_cvtepi32_ps(j & (PANEL / 2) ? _mm512_srli_epi32(v, 4)
                                                   : _mm512_and_si512(v, _mm512_set1_epi32(15)));
}

static inline kvf h16_to_f32(const _Float16 *restrict h) {
    return (kvf)_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}
#elif defined(KILN_AVX2)
static inline kvf q8_column(const signed char *restrict c, int j) {
    return (kvf)_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(c + j))));
}

static inline kvf q4_column(const unsigned char *restrict c, int j) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(c + (j & (PANEL / 2 - 1)))));
    return (kvf)_mm256_cvtepi32_ps(j & (PANEL / 2) ? _mm256_srli_epi32(v, 4)
                                                   : _mm256_and_si256(v, _mm256_set1_epi32(15)));
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
    kvi v = __builtin_convertvector(*(const kvu *)(c + (j & (PANEL / 2 - 1))), kvi);
    return __builtin_convertvector(j & (PANEL / 2) ? v >> 4 : v & 15, kvf);
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

void kiln_qlinear_q8_panels(const float *restrict x, const signed char *restrict Qp, const float *restrict S,
                            const float *restrict b, float *restrict y, long M, long N, long K, int threads) {
    q8_panels(x, Qp, S, b, y, M, N, K, threads);
}

