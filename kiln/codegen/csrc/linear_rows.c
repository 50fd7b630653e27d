/* Part of kiln_native.c (included there once, after kiln_native.h): the float32 row kernel, for
   weights that are not repacked into panels (KILN_PACK=0). */

/* y[M, N] = x[M, K] @ W[N, K]^T (+ b[N]); x, W, y row-major and contiguous.
   Tiles of 4 weight rows x up to 4 activation rows: each loaded 8-float piece of a weight row is
   multiplied with every activation row of the tile (16 vector accumulators), so a few rows cost
   little more than one; a single row is the plain dot-product loop (bandwidth bound). On the 2-core
   VM the tiles run at 70-100 GFLOP/s for 4-16 rows, ahead of MKL's small-matrix path up to 12 rows
   and level with it at 16 (docs/speculative.md); speculative verification, batched decode and
   short chunks feed such row counts. */
typedef float kv8 __attribute__((vector_size(32), aligned(4)));  /* 8 floats, unaligned loads */

/* always inlined (as -O3 does anyway): a 32-byte vector passed to a function by value has another ABI with
   AVX than without, which GCC reports (-Wpsabi) wherever it compiles such a call: at -O0, in the portable
   variant */
static inline __attribute__((always_inline)) float hsum8(kv8 v) {
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
