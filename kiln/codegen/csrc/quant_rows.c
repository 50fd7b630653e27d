/* Part of kiln_native.c (included there once, after kiln_native.h): the row kernels of quantized weights
   that are not repacked into panels (KILN_PACK=0, tiny weights), and whole-weight dequantization.

   Quantized weights (formats in kiln/ir/ops_quant.py): weight-only, activations stay float32. */

#ifdef KILN_AVX512
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
                      : _mm512_mul_ps(sv, _mm512_set1_ps(KILN_I4_ZERO));
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
        s += sc * d + (O ? (float)O[gi] : KILN_I4_ZERO * sc) * t;
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

/* the group sizes kiln_qlinear_i4 takes: multiples of 32 (the AVX-512 dot_i4_groups reads a group's two
   halves 16 bytes, 32 columns, at a time); native.py reads it back (kiln_i4_group_multiple) */
#define I4_GROUP_MULTIPLE 32

/* int4 in groups of g columns (g a multiple of I4_GROUP_MULTIPLE; the last group may be narrower, its width even):
   W uint8 [N, K/2], S f16 [N, G], O f16 [N, G] or NULL (symmetric: offset = KILN_I4_ZERO * scale).
   A group of width r at column c is bytes c/2 .. c/2 + r/2; byte j holds column c + j (low nibble) and
   c + r/2 + j (high). */
#ifdef KILN_I4_BF16
/* The bf16 route (CPUs with AVX512-BF16): the 4-bit codes 0..15 are exact in bf16, and the activation
   is split into two bf16 parts, x = hi + lo (hi = bf16(x), lo = bf16(x - hi)), which together keep
   about 16 of its 24 mantissa bits. vdpbf16ps then multiplies 32 codes by 32 activations per
   instruction with exact products accumulated in f32: 4 of them per 64 weights, against 4 int-to-float
   conversions and 4 FMAs per 64 weights for int8. */
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
                                       : _mm512_mul_ps(_mm512_set1_ps(KILN_I4_ZERO), _mm512_cvtph_ps(
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
                    float sc = (float)Sn[G - 1], off = On ? (float)On[G - 1] : KILN_I4_ZERO * sc;
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
            float s = (float)S[n * G + gi], o = O ? (float)O[n * G + gi] : KILN_I4_ZERO * s;
            float *d = out + n * K + c;
            #pragma omp simd
            for (long j = 0; j < h; j++) {
                d[j] = (float)(p[j] & 15) * s + o;
                d[h + j] = (float)(p[j] >> 4) * s + o;
            }
        }
}
