// Flash attention on bf16 tensor cores (mma.sync m16n8k16, float32
// accumulation), used at bf16 precision for head sizes 16, 32, 64 and 128.
// Scores never reach global memory: the forward pass keeps a running
// maximum and sum per query (online softmax) and saves only the
// log-sum-exp; the backward pass recomputes the probabilities tile by tile,
// once in a kernel per key tile (dK, dV; no atomics: a block owns its keys
// for every query head of the kv group) and once in a kernel per query tile
// (dQ). Tiles wholly masked (causal, packed segments, sliding window) are
// skipped. Layouts are the backend's: q, out, dq [batch, qlen, heads, hd],
// k, v, dk, dv [batch, kvlen, kv_heads, hd], lse and delta [batch, heads,
// qlen], all float32; tiles go to shared memory as bf16 pairs.
//
// Fragments follow PTX's mma.m16n8k16 layouts: lane = 4·group + tig; A
// (16×16, row-major) holds rows group and group+8, columns 2·tig, 2·tig+1
// and those +8; B (16×8) holds column group, rows 2·tig, 2·tig+1 and those
// +8; C (16×8) holds rows group and group+8, columns 2·tig and 2·tig+1. A
// C tile pair of scores therefore is the A fragment of the next product.

#ifndef EFT_EMULATOR
__device__ __forceinline__ void mma16816(float* c, const unsigned* a, const unsigned* b) {
#if __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();
#endif
}
#endif

#define EFT_LOG2E 1.4426950408889634f
#define EFT_LN2 0.6931471805599453f

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    return (unsigned)f2bf(lo) | ((unsigned)f2bf(hi) << 16);
}

// The first key query position p may see (packing segment, window).
__device__ __forceinline__ int flash_first_key(const int* seg, int b, int kvlen, int p, int window) {
    int lo = seg ? seg[(long long)b * kvlen + p] : 0;
    if (window > 0 && p - window + 1 > lo) lo = p - window + 1;
    return lo;
}

// A-fragment pair (row, col..col+1) of a row-major float32 matrix, zero
// outside rows.
__device__ __forceinline__ unsigned flash_pair(const float* m, long long ld, int row, int rows, int col) {
    if (row >= rows) return 0u;
    const float* p = m + (long long)row * ld + col;
    return pack_bf16(p[0], p[1]);
}

// flash_tile_rows stores rows [r0, r0+n) of a float32 matrix (row stride
// ld, hd columns) into sm as [n][hd/2 + 4] bf16 pairs, zero past rows.
template <int HD>
__device__ __forceinline__ void flash_tile_rows(unsigned* sm, int n, const float* m, long long ld, int r0, int rows) {
    const int P = HD / 2 + 4;
    for (int idx = threadIdx.x; idx < n * (HD / 2); idx += blockDim.x) {
        int r = idx / (HD / 2), c = idx % (HD / 2);
        sm[r * P + c] = flash_pair(m, ld, r0 + r, rows, 2 * c);
    }
}

// flash_tile_cols stores the same rows transposed: sm[d][r/2] holds rows r
// and r+1 of column d, as [hd][n/2 + 4].
template <int HD>
__device__ __forceinline__ void flash_tile_cols(unsigned* sm, int n, const float* m, long long ld, int r0, int rows) {
    const int P = n / 2 + 4;
    for (int idx = threadIdx.x; idx < (n / 2) * HD; idx += blockDim.x) {
        int rp = idx / HD, d = idx % HD;
        int r = r0 + 2 * rp;
        float a = r < rows ? m[(long long)r * ld + d] : 0.0f;
        float c = r + 1 < rows ? m[(long long)(r + 1) * ld + d] : 0.0f;
        sm[d * P + rp] = pack_bf16(a, c);
    }
}

// B fragment for column block n0 and k step k0 of a matrix stored as
// [n][k] bf16 pairs with row stride P (in pairs).
__device__ __forceinline__ void flash_bfrag(unsigned* bb, const unsigned* sm, int P, int n0, int k0) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const unsigned* row = sm + (n0 + g) * P + k0 / 2;
    bb[0] = row[t];
    bb[1] = row[4 + t];
}

// Smallest first key over the block's nq queries from q0 (all threads).
__device__ __forceinline__ int flash_block_first_key(const int* seg, int b, int kvlen, int qoff, int window, int q0, int nq,
                                                     int qlen, float* sh) {
    float v = EFT_NEG_INF;
    if ((int)threadIdx.x < nq && q0 + (int)threadIdx.x < qlen)
        v = -(float)flash_first_key(seg, b, kvlen, qoff + q0 + threadIdx.x, window);
    v = block_max(v, sh);
    return v == EFT_NEG_INF ? 0x7fffffff : (int)(-v);
}

// Forward: grid (ceil(qlen/64), heads, batch), 128 threads; warp w owns
// queries 16w..16w+15 of the block's 64.
template <int HD>
__device__ void flash_fwd(float* out, float* lse, const float* q, const float* k, const float* v, const int* seg, int heads,
                          int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    const int BQ = 64, BK = 64, KP = HD / 2 + 4, VP = BK / 2 + 4;
    __shared__ unsigned ks[BK * KP];
    __shared__ unsigned vt[HD * VP];
    __shared__ float sh[32];
    int b = blockIdx.z, h = blockIdx.y, g = h / (heads / kvheads);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tg = lane & 3;
    long long ldq = (long long)heads * HD, ldk = (long long)kvheads * HD;
    const float* qb = q + (long long)b * qlen * ldq + h * HD;
    const float* kb = k + (long long)b * kvlen * ldk + g * HD;
    const float* vb = v + (long long)b * kvlen * ldk + g * HD;
    int bq0 = blockIdx.x * BQ, q0 = bq0 + warp * 16;
    unsigned qa[HD / 16][4];
    for (int kk = 0; kk < HD / 16; kk++) {
        int c = kk * 16 + 2 * tg;
        qa[kk][0] = flash_pair(qb, ldq, q0 + gr, qlen, c);
        qa[kk][1] = flash_pair(qb, ldq, q0 + gr + 8, qlen, c);
        qa[kk][2] = flash_pair(qb, ldq, q0 + gr, qlen, c + 8);
        qa[kk][3] = flash_pair(qb, ldq, q0 + gr + 8, qlen, c + 8);
    }
    int lo[2], pos[2];
    for (int r = 0; r < 2; r++) {
        int i = q0 + gr + 8 * r;
        pos[r] = qoff + i;
        lo[r] = i < qlen ? flash_first_key(seg, b, kvlen, pos[r], window) : 0x7fffffff;
    }
    float o[HD / 8][4];
    for (int n = 0; n < HD / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {EFT_NEG_INF, EFT_NEG_INF}, l[2] = {0.0f, 0.0f};
    float sl2 = scale * EFT_LOG2E;
    int first = flash_block_first_key(seg, b, kvlen, qoff, window, bq0, BQ, qlen, sh);
    int last = min(qoff + min(bq0 + BQ, qlen) - 1, kvlen - 1);
    for (int k0 = (first / BK) * BK; k0 <= last; k0 += BK) {
        __syncthreads();
        flash_tile_rows<HD>(ks, BK, kb, ldk, k0, kvlen);
        flash_tile_cols<HD>(vt, BK, vb, ldk, k0, kvlen);
        __syncthreads();
        float s[BK / 8][4];
        for (int n = 0; n < BK / 8; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned bb[2];
                flash_bfrag(bb, ks, KP, n * 8, kk * 16);
                mma16816(s[n], qa[kk], bb);
            }
        }
        for (int r = 0; r < 2; r++) {
            float mx = EFT_NEG_INF;
            for (int n = 0; n < BK / 8; n++)
                for (int e = 0; e < 2; e++) {
                    int key = k0 + n * 8 + 2 * tg + e;
                    float x = (key >= lo[r] && key <= pos[r] && key < kvlen) ? s[n][2 * r + e] * sl2 : EFT_NEG_INF;
                    s[n][2 * r + e] = x;
                    mx = fmaxf(mx, x);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float mn = fmaxf(m[r], mx);
            float mu = mn == EFT_NEG_INF ? 0.0f : mn;
            float alpha = exp2f(m[r] - mu);
            m[r] = mn;
            float sum = 0.0f;
            for (int n = 0; n < BK / 8; n++)
                for (int e = 0; e < 2; e++) {
                    float p = exp2f(s[n][2 * r + e] - mu);
                    s[n][2 * r + e] = p;
                    sum += p;
                }
            l[r] = l[r] * alpha + sum;
            for (int n = 0; n < HD / 8; n++) {
                o[n][2 * r] *= alpha;
                o[n][2 * r + 1] *= alpha;
            }
        }
        for (int kk = 0; kk < BK / 16; kk++) {
            unsigned pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            for (int n = 0; n < HD / 8; n++) {
                unsigned bb[2];
                flash_bfrag(bb, vt, VP, n * 8, kk * 16);
                mma16816(o[n], pa, bb);
            }
        }
    }
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        int i = q0 + gr + 8 * r;
        if (i >= qlen) continue;
        float inv = 1.0f / sum;
        float* orow = out + ((long long)b * qlen + i) * ldq + h * HD;
        for (int n = 0; n < HD / 8; n++) {
            orow[n * 8 + 2 * tg] = o[n][2 * r] * inv;
            orow[n * 8 + 2 * tg + 1] = o[n][2 * r + 1] * inv;
        }
        if (tg == 0) lse[((long long)b * heads + h) * qlen + i] = (m[r] + log2f(sum)) * EFT_LN2;
    }
}

// dK and dV: grid (ceil(kvlen/64), kv_heads, batch), 128 threads; warp w
// owns keys 16w..16w+15 of the block's 64, for every query head of its kv
// group and every query tile that can see them.
template <int HD>
__device__ void flash_bwd_kv(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout,
                             const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen,
                             int qoff, int window, float scale) {
    const int BK = 64, BQ = HD <= 64 ? 64 : 32, QP = HD / 2 + 4, TP = BQ / 2 + 4;
    __shared__ unsigned qs[BQ * QP], qt[HD * TP], ds[BQ * QP], dt[HD * TP];
    __shared__ float lses[BQ], dels[BQ];
    __shared__ int los[BQ];
    __shared__ float sh[32];
    int b = blockIdx.z, g = blockIdx.y, group = heads / kvheads;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tg = lane & 3;
    long long ldq = (long long)heads * HD, ldk = (long long)kvheads * HD;
    const float* kb = k + (long long)b * kvlen * ldk + g * HD;
    const float* vb = v + (long long)b * kvlen * ldk + g * HD;
    int bk0 = blockIdx.x * BK, key0 = bk0 + warp * 16;
    int lastKey = min(bk0 + BK, kvlen) - 1;
    unsigned ka[HD / 16][4], va[HD / 16][4];
    for (int kk = 0; kk < HD / 16; kk++) {
        int c = kk * 16 + 2 * tg;
        ka[kk][0] = flash_pair(kb, ldk, key0 + gr, kvlen, c);
        ka[kk][1] = flash_pair(kb, ldk, key0 + gr + 8, kvlen, c);
        ka[kk][2] = flash_pair(kb, ldk, key0 + gr, kvlen, c + 8);
        ka[kk][3] = flash_pair(kb, ldk, key0 + gr + 8, kvlen, c + 8);
        va[kk][0] = flash_pair(vb, ldk, key0 + gr, kvlen, c);
        va[kk][1] = flash_pair(vb, ldk, key0 + gr + 8, kvlen, c);
        va[kk][2] = flash_pair(vb, ldk, key0 + gr, kvlen, c + 8);
        va[kk][3] = flash_pair(vb, ldk, key0 + gr + 8, kvlen, c + 8);
    }
    float dka[HD / 8][4], dva[HD / 8][4];
    for (int n = 0; n < HD / 8; n++)
        for (int e = 0; e < 4; e++) dka[n][e] = dva[n][e] = 0.0f;
    float sl2 = scale * EFT_LOG2E;
    // Queries before the block's first key see none of it.
    int qstart = max(0, bk0 - qoff) / BQ * BQ;
    for (int j = 0; j < group; j++) {
        int h = g * group + j;
        const float* qb = q + (long long)b * qlen * ldq + h * HD;
        const float* db = dout + (long long)b * qlen * ldq + h * HD;
        for (int i0 = qstart; i0 < qlen; i0 += BQ) {
            __syncthreads();
            if ((int)threadIdx.x < BQ) {
                int i = i0 + threadIdx.x;
                bool in = i < qlen;
                los[threadIdx.x] = in ? flash_first_key(seg, b, kvlen, qoff + i, window) : 0x7fffffff;
                lses[threadIdx.x] = in ? lse[((long long)b * heads + h) * qlen + i] * EFT_LOG2E : 0.0f;
                dels[threadIdx.x] = in ? delta[((long long)b * heads + h) * qlen + i] : 0.0f;
            }
            if (flash_block_first_key(seg, b, kvlen, qoff, window, i0, BQ, qlen, sh) > lastKey) continue;
            flash_tile_rows<HD>(qs, BQ, qb, ldq, i0, qlen);
            flash_tile_cols<HD>(qt, BQ, qb, ldq, i0, qlen);
            flash_tile_rows<HD>(ds, BQ, db, ldq, i0, qlen);
            flash_tile_cols<HD>(dt, BQ, db, ldq, i0, qlen);
            __syncthreads();
            float pt[BQ / 8][4], dpt[BQ / 8][4];
            for (int n = 0; n < BQ / 8; n++) {
                for (int e = 0; e < 4; e++) pt[n][e] = dpt[n][e] = 0.0f;
                for (int kk = 0; kk < HD / 16; kk++) {
                    unsigned bb[2];
                    flash_bfrag(bb, qs, QP, n * 8, kk * 16);
                    mma16816(pt[n], ka[kk], bb);
                    flash_bfrag(bb, ds, QP, n * 8, kk * 16);
                    mma16816(dpt[n], va[kk], bb);
                }
            }
            // Pᵀ and dSᵀ = Pᵀ ⊙ (dPᵀ − delta) for rows key, columns query.
            for (int n = 0; n < BQ / 8; n++)
                for (int e = 0; e < 4; e++) {
                    int key = key0 + gr + 8 * (e >> 1), qi = n * 8 + 2 * tg + (e & 1), i = i0 + qi;
                    bool vis = i < qlen && key < kvlen && key >= los[qi] && key <= qoff + i;
                    float p = vis ? exp2f(pt[n][e] * sl2 - lses[qi]) : 0.0f;
                    pt[n][e] = p;
                    dpt[n][e] = p * (dpt[n][e] - dels[qi]);
                }
            for (int kk = 0; kk < BQ / 16; kk++) {
                unsigned pa[4] = {pack_bf16(pt[2 * kk][0], pt[2 * kk][1]), pack_bf16(pt[2 * kk][2], pt[2 * kk][3]),
                                  pack_bf16(pt[2 * kk + 1][0], pt[2 * kk + 1][1]), pack_bf16(pt[2 * kk + 1][2], pt[2 * kk + 1][3])};
                unsigned sa[4] = {pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]), pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]),
                                  pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                                  pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
                for (int n = 0; n < HD / 8; n++) {
                    unsigned bb[2];
                    flash_bfrag(bb, dt, TP, n * 8, kk * 16);
                    mma16816(dva[n], pa, bb);
                    flash_bfrag(bb, qt, TP, n * 8, kk * 16);
                    mma16816(dka[n], sa, bb);
                }
            }
        }
    }
    for (int r = 0; r < 2; r++) {
        int key = key0 + gr + 8 * r;
        if (key >= kvlen) continue;
        float* krow = dk + ((long long)b * kvlen + key) * ldk + g * HD;
        float* vrow = dv + ((long long)b * kvlen + key) * ldk + g * HD;
        for (int n = 0; n < HD / 8; n++)
            for (int e = 0; e < 2; e++) {
                krow[n * 8 + 2 * tg + e] = dka[n][2 * r + e] * scale;
                vrow[n * 8 + 2 * tg + e] = dva[n][2 * r + e];
            }
    }
}

// dQ: grid (ceil(qlen/64), heads, batch), 128 threads; warp w owns
// queries 16w..16w+15 of the block's 64.
template <int HD>
__device__ void flash_bwd_q(float* dq, const float* q, const float* k, const float* v, const float* dout, const float* lse,
                            const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window,
                            float scale) {
    const int BQ = 64, BK = HD <= 64 ? 64 : 32, KP = HD / 2 + 4, TP = BK / 2 + 4;
    __shared__ unsigned ks[BK * KP], vs[BK * KP], kt[HD * TP];
    __shared__ float sh[32];
    int b = blockIdx.z, h = blockIdx.y, g = h / (heads / kvheads);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tg = lane & 3;
    long long ldq = (long long)heads * HD, ldk = (long long)kvheads * HD;
    const float* qb = q + (long long)b * qlen * ldq + h * HD;
    const float* db = dout + (long long)b * qlen * ldq + h * HD;
    const float* kb = k + (long long)b * kvlen * ldk + g * HD;
    const float* vb = v + (long long)b * kvlen * ldk + g * HD;
    int bq0 = blockIdx.x * BQ, q0 = bq0 + warp * 16;
    unsigned qa[HD / 16][4], da[HD / 16][4];
    for (int kk = 0; kk < HD / 16; kk++) {
        int c = kk * 16 + 2 * tg;
        qa[kk][0] = flash_pair(qb, ldq, q0 + gr, qlen, c);
        qa[kk][1] = flash_pair(qb, ldq, q0 + gr + 8, qlen, c);
        qa[kk][2] = flash_pair(qb, ldq, q0 + gr, qlen, c + 8);
        qa[kk][3] = flash_pair(qb, ldq, q0 + gr + 8, qlen, c + 8);
        da[kk][0] = flash_pair(db, ldq, q0 + gr, qlen, c);
        da[kk][1] = flash_pair(db, ldq, q0 + gr + 8, qlen, c);
        da[kk][2] = flash_pair(db, ldq, q0 + gr, qlen, c + 8);
        da[kk][3] = flash_pair(db, ldq, q0 + gr + 8, qlen, c + 8);
    }
    int lo[2], pos[2];
    float ls[2], de[2];
    for (int r = 0; r < 2; r++) {
        int i = q0 + gr + 8 * r;
        bool in = i < qlen;
        pos[r] = qoff + i;
        lo[r] = in ? flash_first_key(seg, b, kvlen, pos[r], window) : 0x7fffffff;
        ls[r] = in ? lse[((long long)b * heads + h) * qlen + i] * EFT_LOG2E : 0.0f;
        de[r] = in ? delta[((long long)b * heads + h) * qlen + i] : 0.0f;
    }
    float dqa[HD / 8][4];
    for (int n = 0; n < HD / 8; n++) dqa[n][0] = dqa[n][1] = dqa[n][2] = dqa[n][3] = 0.0f;
    float sl2 = scale * EFT_LOG2E;
    int first = flash_block_first_key(seg, b, kvlen, qoff, window, bq0, BQ, qlen, sh);
    int last = min(qoff + min(bq0 + BQ, qlen) - 1, kvlen - 1);
    for (int k0 = (first / BK) * BK; k0 <= last; k0 += BK) {
        __syncthreads();
        flash_tile_rows<HD>(ks, BK, kb, ldk, k0, kvlen);
        flash_tile_rows<HD>(vs, BK, vb, ldk, k0, kvlen);
        flash_tile_cols<HD>(kt, BK, kb, ldk, k0, kvlen);
        __syncthreads();
        float s[BK / 8][4], dp[BK / 8][4];
        for (int n = 0; n < BK / 8; n++) {
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned bb[2];
                flash_bfrag(bb, ks, KP, n * 8, kk * 16);
                mma16816(s[n], qa[kk], bb);
                flash_bfrag(bb, vs, KP, n * 8, kk * 16);
                mma16816(dp[n], da[kk], bb);
            }
        }
        for (int n = 0; n < BK / 8; n++)
            for (int e = 0; e < 4; e++) {
                int r = e >> 1, key = k0 + n * 8 + 2 * tg + (e & 1);
                bool vis = key >= lo[r] && key <= pos[r] && key < kvlen;
                float p = vis ? exp2f(s[n][e] * sl2 - ls[r]) : 0.0f;
                s[n][e] = p * (dp[n][e] - de[r]);
            }
        for (int kk = 0; kk < BK / 16; kk++) {
            unsigned sa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            for (int n = 0; n < HD / 8; n++) {
                unsigned bb[2];
                flash_bfrag(bb, kt, TP, n * 8, kk * 16);
                mma16816(dqa[n], sa, bb);
            }
        }
    }
    for (int r = 0; r < 2; r++) {
        int i = q0 + gr + 8 * r;
        if (i >= qlen) continue;
        float* row = dq + ((long long)b * qlen + i) * ldq + h * HD;
        for (int n = 0; n < HD / 8; n++) {
            row[n * 8 + 2 * tg] = dqa[n][2 * r] * scale;
            row[n * 8 + 2 * tg + 1] = dqa[n][2 * r + 1] * scale;
        }
    }
}

// Entry points per head size (the host picks by name).
extern "C" __global__ void flash_fwd_16(float* out, float* lse, const float* q, const float* k, const float* v, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_fwd<16>(out, lse, q, k, v, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_kv_16(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_kv<16>(dk, dv, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_q_16(float* dq, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_q<16>(dq, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_fwd_32(float* out, float* lse, const float* q, const float* k, const float* v, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_fwd<32>(out, lse, q, k, v, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_kv_32(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_kv<32>(dk, dv, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_q_32(float* dq, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_q<32>(dq, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_fwd_64(float* out, float* lse, const float* q, const float* k, const float* v, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_fwd<64>(out, lse, q, k, v, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_kv_64(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_kv<64>(dk, dv, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_q_64(float* dq, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_q<64>(dq, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_fwd_128(float* out, float* lse, const float* q, const float* k, const float* v, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_fwd<128>(out, lse, q, k, v, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_kv_128(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_kv<128>(dk, dv, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
extern "C" __global__ void flash_bwd_q_128(float* dq, const float* q, const float* k, const float* v, const float* dout,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qoff, int window, float scale) {
    flash_bwd_q<128>(dq, q, k, v, dout, lse, delta, seg, heads, kvheads, qlen, kvlen, qoff, window, scale);
}
