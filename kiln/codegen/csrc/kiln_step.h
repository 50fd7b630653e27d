/* The kernels a generated CPU step calls (kiln/codegen/cstep.py writes one C function per program that
   runs all of that program's ops in order; this header is included at its top, with the same -D flags as
   kiln_native.c).

   Everything here is static: each generated step is its own shared object, with no symbols shared with
   kiln_native.c. The linears are not here: the step calls kiln_native.c's panel kernels through the
   function pointers its kiln_step_bind() receives once (the loaded kernel library's addresses), so a step
   compiles in well under a second.

   Conventions: float32 activations; a tensor argument is a pointer plus the strides (in elements) of the
   dimensions a kernel walks, the last dimension always contiguous; outputs are written whole. A kernel
   that can meet bad data (a token id past the vocabulary, a cache position outside the block table)
   returns the offending index + 1, or 0, and writes nothing past its bounds; the step then returns its
   error code (cstep.py names the op). */
#ifndef KILN_STEP_H
#define KILN_STEP_H

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <omp.h>

typedef void (*ks_linear_f32_fn)(const float *, const float *, const float *, float *, long, long, long, int);
typedef void (*ks_linear_q8_fn)(const float *, const signed char *, const float *, const float *, float *, long,
                                long, long, int);
typedef void (*ks_linear_q4_fn)(const float *, const unsigned char *, const _Float16 *, const _Float16 *,
                                const float *, float *, long, long, long, long, int);
typedef void (*ks_dequant_i8_fn)(const signed char *, const float *, float *, long, long, int);
typedef void (*ks_dequant_i4_fn)(const unsigned char *, const _Float16 *, const _Float16 *, float *, long, long, long,
                                 int);

/* The tunable constants (kiln/codegen/variants.py names them, their candidates and these defaults; a
   generated step defines the ones its configuration changes before including this file):
   KS_PARALLEL_WORK: work (multiply-adds, elements) below which a norm, elementwise loop or attention runs on
   the calling thread (an OpenMP fork costs a few microseconds); KS_ATTN_PARALLEL_WORK: the same for the
   attention; KS_CHUNK: keys per step of the attention's running softmax. */
#ifndef KS_PARALLEL_WORK
#define KS_PARALLEL_WORK 32768L
#endif
#ifndef KS_ATTN_PARALLEL_WORK
#define KS_ATTN_PARALLEL_WORK 32768L
#endif
#ifndef KS_CHUNK
#define KS_CHUNK 64
#endif
/* a sum the compiler may vectorise (in lanes, added up at the end: float rounding differs from a
   left-to-right sum, as torch's own reductions do) */
#define KS_PRAGMA(x) _Pragma(#x)
#define KS_SUM(v) KS_PRAGMA(omp simd reduction(+ : v))
/* a step uses the kernels its program needs: the others are not a warning */
#define KS_FN static __attribute__((unused)) /* keys per step of the attention's running softmax */

/* RMSNorm of R rows of D (row stride xs): y = w * x / sqrt(mean(x^2) + eps), in float32 (Llama's order) */
KS_FN void ks_rms_norm(const float *restrict x, long xs, const float *restrict w, float *restrict y, long R,
                        long D, float eps, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads) if (R * D > KS_PARALLEL_WORK)
    for (long r = 0; r < R; r++) {
        const float *xr = x + r * xs;
        float *yr = y + r * D;
        float ss = 0.f;
        KS_SUM(ss)
        for (long d = 0; d < D; d++) ss += xr[d] * xr[d];
        float inv = 1.f / sqrtf(ss / (float)D + eps);
        for (long d = 0; d < D; d++) yr[d] = w[d] * (xr[d] * inv);
    }
}

/* LayerNorm of R rows of D (row stride xs) with optional weight and bias (NULL) */
KS_FN void ks_layer_norm(const float *restrict x, long xs, const float *restrict w, const float *restrict b,
                          float *restrict y, long R, long D, float eps, int threads) {
    #pragma omp parallel for schedule(static) num_threads(threads) if (R * D > KS_PARALLEL_WORK)
    for (long r = 0; r < R; r++) {
        const float *xr = x + r * xs;
        float *yr = y + r * D;
        float mean = 0.f, var = 0.f;
        KS_SUM(mean)
        for (long d = 0; d < D; d++) mean += xr[d];
        mean /= (float)D;
        KS_SUM(var)
        for (long d = 0; d < D; d++) var += (xr[d] - mean) * (xr[d] - mean);
        float inv = 1.f / sqrtf(var / (float)D + eps);
        for (long d = 0; d < D; d++) {
            float v = (xr[d] - mean) * inv;
            yr[d] = (w ? v * w[d] : v) + (b ? b[d] : 0.f);
        }
    }
}

/* rows of a [V, D] table picked by n ids (an embedding, or a gather of rows): y [n, D] */
KS_FN long ks_rows(const float *restrict W, long V, long D, const long *restrict ids, long n, float *restrict y) {
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) return i + 1;
    for (long i = 0; i < n; i++) memcpy(y + i * D, W + ids[i] * D, (size_t)D * sizeof(float));
    return 0;
}

/* the rotary tables: out [n, 2 * half] = scale * cos (or sin) (pos * inv_freq), halves repeated */
KS_FN void ks_rope_table(const long *restrict pos, long n, const float *restrict inv, long half, float scale,
                          int is_sin, float *restrict out) {
    for (long i = 0; i < n; i++)
        for (long j = 0; j < half; j++) {
            float a = (float)pos[i] * inv[j];
            float v = (is_sin ? sinf(a) : cosf(a)) * scale;
            out[i * 2 * half + j] = v;
            out[i * 2 * half + half + j] = v;
        }
}

/* rotate-half RoPE of x [B, H, T, D] (strides xb, xh, xt) with tables [B or 1, T, D] (rows contiguous,
   batch stride cb: 0 for one table broadcast over the batch) into y (strides yb, yh, yt) */
KS_FN void ks_rope(const float *restrict x, long xb, long xh, long xt, const float *restrict cs,
                    const float *restrict sn, long cb, float *restrict y, long yb, long yh, long yt, long B, long H,
                    long T, long D) {
    long half = D / 2;
    for (long b = 0; b < B; b++)
        for (long h = 0; h < H; h++)
            for (long t = 0; t < T; t++) {
                const float *xr = x + b * xb + h * xh + t * xt;
                const float *c = cs + b * cb + t * D, *s = sn + b * cb + t * D;
                float *yr = y + b * yb + h * yh + t * yt;
                for (long d = 0; d < half; d++) yr[d] = xr[d] * c[d] + (-xr[d + half]) * s[d];
                for (long d = half; d < D; d++) yr[d] = xr[d] * c[d] + xr[d - half] * s[d];
            }
}

/* Where position p of sequence s lives in a cache pool of NB blocks of BS positions (block table [S, MB]):
   the block's index, or -1 when (s, p) is outside the table or the pool. */
static inline long ks_block(const long *restrict table, long S, long MB, long NB, long BS, long s, long p) {
    if (s < 0 || s >= S || p < 0 || p / BS >= MB) return -1;
    long blk = table[s * MB + p / BS];
    return blk >= 0 && blk < NB ? blk : -1;
}

/* kiln.cache_write: the N tokens' rows x [1, KVH, N, D] (strides xh, xn) into layer `layer` of the cache
   [L, NB, KVH, BS, D] at (seq[n], pos[n]) */
KS_FN long ks_cache_write(float *restrict cache, long NB, long KVH, long BS, long D, long layer,
                           const float *restrict x, long xh, long xn, const long *restrict pos,
                           const long *restrict seq, const long *restrict table, long S, long MB, long N) {
    for (long n = 0; n < N; n++)
        if (ks_block(table, S, MB, NB, BS, seq[n], pos[n]) < 0) return n + 1;
    for (long n = 0; n < N; n++) {
        long blk = ks_block(table, S, MB, NB, BS, seq[n], pos[n]);
        for (long h = 0; h < KVH; h++)
            memcpy(cache + (((layer * NB + blk) * KVH + h) * BS + pos[n] % BS) * D, x + h * xh + n * xn,
                   (size_t)D * sizeof(float));
    }
    return 0;
}

/* a . b over D floats: 8-float vectors (two chains) when D is a multiple of 8, their lanes added once at the
   end; a scalar loop otherwise */
typedef float ks_v8 __attribute__((vector_size(32), aligned(4)));
static inline float ks_dot(const float *restrict a, const float *restrict b, long D) {
    if (D % 16 == 0) {
        ks_v8 s0 = {0}, s1 = {0};
        for (long d = 0; d < D; d += 16) {
            s0 += *(const ks_v8 *)(a + d) * *(const ks_v8 *)(b + d);
            s1 += *(const ks_v8 *)(a + d + 8) * *(const ks_v8 *)(b + d + 8);
        }
        s0 += s1;
        return ((s0[0] + s0[4]) + (s0[1] + s0[5])) + ((s0[2] + s0[6]) + (s0[3] + s0[7]));
    }
    float dot = 0.f;
    for (long d = 0; d < D; d++) dot += a[d] * b[d];
    return dot;
}

/* a += e * v over D floats (8-float vectors when D is a multiple of 8: the compiler would otherwise
   vectorise across the keys' rows, with gathers) */
static inline void ks_axpy(float *restrict a, float e, const float *restrict v, long D) {
    if (D % 8 == 0) {
        for (long d = 0; d < D; d += 8) *(ks_v8 *)(a + d) += e * *(const ks_v8 *)(v + d);
        return;
    }
    for (long d = 0; d < D; d++) a[d] += e * v[d];
}

/* The attention's running softmax over one chunk of cnt <= KS_CHUNK keys (kp[t], vp[t]: key t's rows) for the
   G query heads of one KV head (q: the first head's row, qh apart): scores, then the running max m, sum l and
   weighted values acc [G, D] rescaled and updated. sc: [G, KS_CHUNK] scratch. */
static inline void ks_attend(const float *const *kp, const float *const *vp, long cnt, const float *restrict q,
                             long qh, long G, long D, float scale, float *restrict m, float *restrict l,
                             float *restrict acc, float *restrict sc) {
    for (long i = 0; i < G; i++) {
        const float *qr = q + i * qh;
        for (long t = 0; t < cnt; t++) sc[i * KS_CHUNK + t] = ks_dot(qr, kp[t], D) * scale;
        float mx = m[i];
        for (long t = 0; t < cnt; t++) mx = sc[i * KS_CHUNK + t] > mx ? sc[i * KS_CHUNK + t] : mx;
        float corr = expf(m[i] - mx), sum = 0.f;
        for (long t = 0; t < cnt; t++) {
            float e = expf(sc[i * KS_CHUNK + t] - mx);
            sc[i * KS_CHUNK + t] = e;
            sum += e;
        }
        l[i] = l[i] * corr + sum;
        m[i] = mx;
        float *a = acc + i * D;
        for (long d = 0; d < D; d++) a[d] *= corr;
        for (long t = 0; t < cnt; t++) ks_axpy(a, sc[i * KS_CHUNK + t], vp[t], D);
    }
}

/* the running softmax before the first key: max -inf, sum 0, values 0 */
static inline void ks_attend_start(float *restrict m, float *restrict l, float *restrict acc, long G, long D) {
    for (long i = 0; i < G; i++) {
        m[i] = -INFINITY;
        l[i] = 0.f;
    }
    for (long i = 0; i < G * D; i++) acc[i] = 0.f;
}

/* out rows of the G heads of one KV head: acc / l (a query that saw no key: NaN, as SDPA gives) */
static inline void ks_attend_done(const float *restrict acc, const float *restrict l, long G, long D,
                                  float *restrict o, long oh) {
    for (long i = 0; i < G; i++)
        for (long d = 0; d < D; d++) o[i * oh + d] = l[i] > 0.f ? acc[i * D + d] / l[i] : NAN;
}

/* A K or V cache as the attention reads it: float32 rows [L, NB, KVH, BS, D] (f), or int8 rows (q) with a
   float32 scale per row [L, NB, KVH, BS] (s), dequantized as they are read (int8 * scale, as the
   reference does). */
typedef struct {
    const float *f;
    const signed char *q;
    const float *s;
} ks_cache;

/* row `idx` (((layer * NB + block) * KVH + head) * BS + offset) of a cache: a pointer into it, or its
   dequantized copy in buf */
static inline const float *ks_row(ks_cache c, long idx, long D, float *restrict buf) {
    if (c.f) return c.f + idx * D;
    float sc = c.s[idx];
    for (long d = 0; d < D; d++) buf[d] = (float)c.q[idx * D + d] * sc;
    return buf;
}

/* the rows of positions j0.. (at most KS_CHUNK, up to len) of sequence s, KV head g: kp[t], vp[t] (int8
   caches: dequantized into kbuf, vbuf [KS_CHUNK, D]); a block's positions are adjacent, so the table is read
   once per block */
static inline long ks_chunk_rows(ks_cache kc, ks_cache vc, long NB, long KVH, long BS, long D, long layer,
                                 const long *restrict table, long S, long MB, long s, long g, long j0, long len,
                                 const float **kp, const float **vp, float *kbuf, float *vbuf) {
    long cnt = len - j0 < KS_CHUNK ? len - j0 : KS_CHUNK;
    for (long t = 0; t < cnt;) {
        long j = j0 + t, blk = ks_block(table, S, MB, NB, BS, s, j), off = j % BS;
        long run = BS - off < cnt - t ? BS - off : cnt - t;
        long idx = ((layer * NB + blk) * KVH + g) * BS + off;
        for (long r = 0; r < run; r++, t++) {
            kp[t] = ks_row(kc, idx + r, D, kbuf + t * D);
            vp[t] = ks_row(vc, idx + r, D, vbuf + t * D);
        }
    }
    return cnt;
}

/* kiln.cache_write_q8: as ks_cache_write into an int8 cache, each (token, KV head) row stored as
   round(x / s) clamped to +-127 with s = max|x| / 127 (1 for a zero row) in scales [L, NB, KVH, BS]: the
   reference's arithmetic (float32 division, round half to even) */
KS_FN long ks_cache_write_q8(signed char *restrict cache, float *restrict scales, long NB, long KVH, long BS,
                             long D, long layer, const float *restrict x, long xh, long xn,
                             const long *restrict pos, const long *restrict seq, const long *restrict table, long S,
                             long MB, long N) {
    for (long n = 0; n < N; n++)
        if (ks_block(table, S, MB, NB, BS, seq[n], pos[n]) < 0) return n + 1;
    for (long n = 0; n < N; n++) {
        long blk = ks_block(table, S, MB, NB, BS, seq[n], pos[n]);
        for (long h = 0; h < KVH; h++) {
            const float *r = x + h * xh + n * xn;
            long idx = ((layer * NB + blk) * KVH + h) * BS + pos[n] % BS;
            float amax = 0.f;
            for (long d = 0; d < D; d++) amax = fabsf(r[d]) > amax ? fabsf(r[d]) : amax;
            float sc = amax / 127.0f;
            sc = sc > 0.f ? sc : 1.f;
            for (long d = 0; d < D; d++) {
                float v = nearbyintf(r[d] / sc);
                cache[idx * D + d] = (signed char)(v > 127.f ? 127.f : v < -127.f ? -127.f : v);
            }
            scales[idx] = sc;
        }
    }
    return 0;
}

/* kiln.cache_attention: each query q [1, H, N, D] (strides qh, qn) attends to positions 0..pos[n] of
   sequence seq[n] in layer `layer` of the caches [L, NB, KVH, BS, D]; out [1, H, N, D] (strides oh, on).
   The G = H / KVH query heads of a KV head go together (their keys and values are read once), KS_CHUNK
   keys at a time with a running max and sum (the softmax never holds a whole row). Work items are
   (token, KV head) pairs, spread over the threads. */
KS_FN long ks_cache_attention(const float *restrict q, long qh, long qn, ks_cache kc, ks_cache vc, long NB,
                              long KVH, long BS, long D, long layer,
                              const long *restrict pos, const long *restrict seq, const long *restrict table,
                              long S, long MB, long N, long H, float scale, float *restrict out, long oh,
                              long on, int threads) {
    long G = H / KVH;
    for (long n = 0; n < N; n++) {  /* every block a query reads exists (a negative position is an error) */
        if (pos[n] < 0) return n + 1;
        for (long p = 0; p <= pos[n]; p += BS)
            if (ks_block(table, S, MB, NB, BS, seq[n], p) < 0) return n + 1;
    }
    long work = 0;
    for (long n = 0; n < N; n++) work += (pos[n] + 1) * H * D;
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(threads) if (work > KS_ATTN_PARALLEL_WORK && N * KVH > 1)
    for (long n = 0; n < N; n++)
        for (long g = 0; g < KVH; g++) {
            long len = pos[n] + 1;
            float m[G], l[G], acc[G * D], sc[G * KS_CHUNK];
            const float *kp[KS_CHUNK], *vp[KS_CHUNK];
            float kbuf[kc.f ? 1 : KS_CHUNK * D], vbuf[vc.f ? 1 : KS_CHUNK * D];
            ks_attend_start(m, l, acc, G, D);
            for (long j0 = 0; j0 < len; j0 += KS_CHUNK) {
                long cnt = ks_chunk_rows(kc, vc, NB, KVH, BS, D, layer, table, S, MB, seq[n], g, j0, len, kp, vp,
                                         kbuf, vbuf);
                ks_attend(kp, vp, cnt, q + g * G * qh + n * qn, qh, G, D, scale, m, l, acc, sc);
            }
            ks_attend_done(acc, l, G, D, out + g * G * oh + n * on, oh);
        }
    return 0;
}

/* kiln.cache_tree_attention (speculative verification): node n of a packed token tree q [1, H, N, D]
   (strides qh, qn) sees its sequence's committed slots (below the smallest slot of its run of adjacent
   tokens) and the slots of the nodes m of its run with mask[n, m] (its ancestors and itself), in layer
   `layer` of the caches; out [1, H, N, D] (strides oh, on). Same running softmax as ks_cache_attention,
   over the committed slots first, then the allowed nodes. */
KS_FN long ks_tree_attention(const float *restrict q, long qh, long qn, ks_cache kc, ks_cache vc, long NB,
                             long KVH, long BS, long D, long layer,
                             const long *restrict slot, const long *restrict seq, const long *restrict table,
                             long S, long MB, long N, const unsigned char *restrict mask, long H, float scale,
                             float *restrict out, long oh, long on, int threads) {
    long G = H / KVH;
    for (long n = 0; n < N; n++) {
        if (slot[n] < 0) return n + 1;
        for (long p = 0; p <= slot[n]; p += BS)
            if (ks_block(table, S, MB, NB, BS, seq[n], p) < 0) return n + 1;
        if (ks_block(table, S, MB, NB, BS, seq[n], slot[n]) < 0) return n + 1;
    }
    #pragma omp parallel for collapse(2) schedule(dynamic, 1) num_threads(threads) if (N * KVH > 1 && N * H * D * 64 > KS_ATTN_PARALLEL_WORK)
    for (long n = 0; n < N; n++)
        for (long g = 0; g < KVH; g++) {
            long s = seq[n], r0 = n, r1 = n + 1;
            while (r0 > 0 && seq[r0 - 1] == s) r0--;
            while (r1 < N && seq[r1] == s) r1++;
            long base = slot[r0];
            for (long m = r0; m < r1; m++) base = slot[m] < base ? slot[m] : base;
            float mx[G], l[G], acc[G * D], sc[G * KS_CHUNK];
            const float *kp[KS_CHUNK], *vp[KS_CHUNK];
            float kbuf[kc.f ? 1 : KS_CHUNK * D], vbuf[vc.f ? 1 : KS_CHUNK * D];
            ks_attend_start(mx, l, acc, G, D);
            const float *qn0 = q + g * G * qh + n * qn;
            for (long j0 = 0; j0 < base; j0 += KS_CHUNK) {  /* the committed slots */
                long cnt = ks_chunk_rows(kc, vc, NB, KVH, BS, D, layer, table, S, MB, s, g, j0, base, kp, vp, kbuf,
                                         vbuf);
                ks_attend(kp, vp, cnt, qn0, qh, G, D, scale, mx, l, acc, sc);
            }
            long cnt = 0;  /* the nodes the mask allows, KS_CHUNK at a time */
            for (long m = r0; m < r1; m++) {
                if (!mask[n * N + m]) continue;
                long j = slot[m], blk = ks_block(table, S, MB, NB, BS, s, j);
                long idx = ((layer * NB + blk) * KVH + g) * BS + j % BS;
                kp[cnt] = ks_row(kc, idx, D, kbuf + cnt * D);
                vp[cnt] = ks_row(vc, idx, D, vbuf + cnt * D);
                if (++cnt == KS_CHUNK) {
                    ks_attend(kp, vp, cnt, qn0, qh, G, D, scale, mx, l, acc, sc);
                    cnt = 0;
                }
            }
            if (cnt) ks_attend(kp, vp, cnt, qn0, qh, G, D, scale, mx, l, acc, sc);
            ks_attend_done(acc, l, G, D, out + g * G * oh + n * on, oh);
        }
    return 0;
}

/* ---- speculative decoding's bookkeeping, greedy (temperature 0): the generated step takes these ops only
   when the call's sampling temperature is 0; sampled steps run them in the interpreter (torch's RNG). */

/* index of the largest of x[0..V-1], the first one on ties; a NaN wins (as torch.argmax) */
static inline long ks_argmax(const float *restrict x, long V) {
    long best = 0;
    for (long i = 0; i < V; i++) {
        if (x[i] != x[i]) return i;
        if (x[i] > x[best]) best = i;
    }
    return best;
}

/* kiln.draft_pick, greedy: tok[b] = argmax of logits row b; the draft distribution q [B, V] is zeros */
KS_FN void ks_pick_greedy(const float *restrict logits, long B, long V, long *restrict tok, float *restrict q) {
    for (long b = 0; b < B; b++) tok[b] = ks_argmax(logits + b * V, V);
    memset(q, 0, (size_t)(B * V) * sizeof(float));
}

/* kiln.chain_tree: sequence b's root and its K drafted tokens as a chain of K + 1 nodes (node i of
   sequence b is packed at b * (K + 1) + i): ids, pos (= slot), seq, a lower-triangular mask per
   sequence, parent (-1 at roots) and the draft distributions (zeros at roots) */
KS_FN void ks_chain_tree(const long *restrict roots, const long *restrict root_pos, const long *restrict seqs,
                         const long *const *toks, const float *const *qs, long B, long K, long V,
                         long *restrict ids, long *restrict pos, long *restrict seq, long *restrict slot,
                         unsigned char *restrict mask, long *restrict parent, float *restrict dq) {
    long N = B * (K + 1);
    memset(mask, 0, (size_t)(N * N));
    for (long b = 0; b < B; b++)
        for (long i = 0; i <= K; i++) {
            long n = b * (K + 1) + i;
            ids[n] = i == 0 ? roots[b] : toks[i - 1][b];
            pos[n] = slot[n] = root_pos[b] + i;
            seq[n] = seqs[b];
            parent[n] = i == 0 ? -1 : n - 1;
            for (long j = 0; j <= i; j++) mask[n * N + b * (K + 1) + j] = 1;
            if (i == 0) memset(dq + n * V, 0, (size_t)V * sizeof(float));
            else memcpy(dq + n * V, qs[i - 1] + b * V, (size_t)V * sizeof(float));
        }
}

/* kiln.tree_accept, greedy: per run of a sequence's nodes, walk from its root to the child whose token is
   the argmax of the current node's logits (children in packed order) while there is one; accepted[n] = 1
   on the path, next[n] = the argmax at the node where the walk stops (-1 elsewhere). A parent that is not an
   earlier node of the same run is an error (node index + 1). */
KS_FN long ks_accept_greedy(const float *restrict logits, long V, const long *restrict tokens,
                            const long *restrict parent, const long *restrict seq, long N,
                            long *restrict accepted, long *restrict next) {
    for (long n = 0; n < N; n++) {
        accepted[n] = 0;
        next[n] = -1;
    }
    for (long i = 0; i < N;) {
        long j = i + 1;
        while (j < N && seq[j] == seq[i]) j++;
        for (long n = i; n < j; n++)
            if (parent[n] >= 0 ? !(parent[n] >= i && parent[n] < n) : n != i) return n + 1;
        long u = i;
        accepted[u] = 1;
        for (;;) {
            long best = ks_argmax(logits + u * V, V), hit = -1;
            for (long c = u + 1; c < j; c++)
                if (parent[c] == u && tokens[c] == best) {
                    hit = c;
                    break;
                }
            if (hit < 0) {
                next[u] = best;
                break;
            }
            u = hit;
            accepted[u] = 1;
        }
        i = j;
    }
    return 0;
}

/* kiln.cache_commit: every layer's rows (`row` bytes: D floats, D int8 codes, or one scale) of the accepted
   nodes move from their slot to their position, in packed order (a node's position is never a later node's
   slot: depth <= index) */
KS_FN long ks_cache_commit(char *restrict cache, long L, long NB, long KVH, long BS, long row,
                           const long *restrict accepted, const long *restrict slot, const long *restrict pos,
                           const long *restrict seq, const long *restrict table, long S, long MB, long N) {
    for (long n = 0; n < N; n++)
        if (accepted[n] && (ks_block(table, S, MB, NB, BS, seq[n], slot[n]) < 0 ||
                            ks_block(table, S, MB, NB, BS, seq[n], pos[n]) < 0)) return n + 1;
    for (long n = 0; n < N; n++) {
        if (!accepted[n] || slot[n] == pos[n]) continue;
        long src = ks_block(table, S, MB, NB, BS, seq[n], slot[n]), dst = ks_block(table, S, MB, NB, BS, seq[n], pos[n]);
        for (long l = 0; l < L; l++)
            for (long h = 0; h < KVH; h++)
                memmove(cache + (((l * NB + dst) * KVH + h) * BS + pos[n] % BS) * row,
                        cache + (((l * NB + src) * KVH + h) * BS + slot[n] % BS) * row, (size_t)row);
    }
    return 0;
}

#endif
