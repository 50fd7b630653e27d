/* Part of kiln_native.c (included there once, after kiln_native.h and panels.c): the int4 panels (layout
   and arithmetic in panels.c's comment on quantized panels). */

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
                kvf of = Op ? h16_to_f32(Op + gi * PANEL + j0 + v * VW) : KILN_I4_ZERO * sc; \
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
            a[v] += s * sc + sx * (Op ? h16_to_f32(Op + gi * PANEL + v * VW) : KILN_I4_ZERO * sc);
        }
    }
    #pragma GCC unroll 8
    for (int v = 0; v < NVP; v++) store_vec(y + m * N, a[v], b, n0 + v * VW, N);
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
