// Flash attention on bf16 tensor cores (mma.sync m16n8k16, float32
// accumulation), used at bf16 precision for head sizes 16, 32, 64 and 128.
// Scores never reach global memory: the forward pass keeps a running
// maximum and sum per query (online softmax) and saves only the
// log-sum-exp; the backward pass recomputes the probabilities tile by tile,
// once in a kernel per key tile (dK, dV; no atomics: a block owns its keys
// for every query head of the kv group) and once in a kernel per query tile
// (dQ). Tiles wholly masked (causal, packed segments, sliding window) are
// skipped, and tiles wholly visible to a warp skip the mask. A softcap
// above 0 (Gemma-2) turns each scaled score s into softcap·tanh(s/softcap)
// before the mask, and the backward kernels multiply dS by its derivative
// 1 − tanh², recomputed with the probabilities.
//
// The backend's tensors are float32 [batch, len, heads, hd] (q, k, v, out,
// dout, dq, dk, dv) and [batch, heads, qlen] (lse, delta). flash_prep first
// copies each operand to bf16 head-major rows [batch, heads, lp, hd] (lp:
// len rounded up to 64, zero-filled), so every tile is a 16-byte-vector
// copy into shared memory; B fragments come out of it with ldmatrix (its
// .trans form where the product wants the tile transposed).
//
// Fragments follow PTX's mma.m16n8k16 layouts: lane = 4·group + tig; A
// (16×16, row-major) holds rows group and group+8, columns 2·tig, 2·tig+1
// and those +8; B (16×8) holds column group, rows 2·tig, 2·tig+1 and those
// +8; C (16×8) holds rows group and group+8, columns 2·tig and 2·tig+1. Two
// C tiles of scores side by side are the A fragment of the next product.

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
#define EFT_NO_KEY 0x7fffffff

// The first key query position p may see (packing segment, window).
__device__ __forceinline__ int flash_first_key(const int* seg, int b, int kvlen, int p, int window) {
    int lo = seg ? seg[(long long)b * kvlen + p] : 0;
    if (window > 0 && p - window + 1 > lo) lo = p - window + 1;
    return lo;
}

// flash_cap caps a raw score x (before scale) and returns it unscaled again,
// so the kernels' scale·log2(e) exponent stays as it is; th receives
// tanh(scale·x/softcap) for the derivative.
__device__ __forceinline__ float flash_cap(float x, float scale, float softcap, float* th) {
    *th = tanhf(x * scale / softcap);
    return softcap * *th / scale;
}

__device__ __forceinline__ int warp_max_int(int v) {
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// flash_prep copies src [batch, len, heads, HD] float32 to bf16 rows
// [batch, heads, lp, HD], zero past len. Grid (lp/64, heads, batch), 128
// threads.
template <int HD>
__device__ void flash_prep(bf16_t* rows, const float* src, int len, int heads, int lp) {
    int t0 = blockIdx.x * 64, h = blockIdx.y, b = blockIdx.z;
    long long ld = (long long)heads * HD;
    const float* s = src + (long long)b * len * ld + h * HD;
    unsigned* out = (unsigned*)(rows + (((long long)b * heads + h) * lp + t0) * HD);
    for (int idx = threadIdx.x; idx < 64 * HD / 2; idx += blockDim.x) {
        int r = idx / (HD / 2), c = idx % (HD / 2), t = t0 + r;
        out[idx] = t < len ? pack_bf16(s[t * ld + 2 * c], s[t * ld + 2 * c + 1]) : 0u;
    }
}

// flash_load copies n rows of w bf16 (w a multiple of 8) from global (row
// stride ld elements) to shared memory (row stride P 32-bit words).
__device__ __forceinline__ void flash_load(unsigned* sm, int P, const bf16_t* g, long long ld, int n, int w) {
    int per = w / 8;
    for (int idx = threadIdx.x; idx < n * per; idx += blockDim.x) {
        int r = idx / per, c = idx % per;
        *(uint4*)(sm + r * P + c * 4) = *(const uint4*)(g + r * ld + c * 8);
    }
}

// A fragment of rows r0..r0+15 at k step k0 of a bf16 matrix (row stride
// ld elements), from global or shared memory.
__device__ __forceinline__ void flash_afrag(unsigned* a, const bf16_t* m, long long ld, int r0, int k0) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const bf16_t* p0 = m + (long long)(r0 + g) * ld + k0 + 2 * t;
    const bf16_t* p1 = p0 + 8 * ld;
    a[0] = *(const unsigned*)p0;
    a[1] = *(const unsigned*)p1;
    a[2] = *(const unsigned*)(p0 + 8);
    a[3] = *(const unsigned*)(p1 + 8);
}

#ifndef EFT_EMULATOR
// ldsm4 / ldsm4t: ldmatrix.x4 (.trans): lane l gives the address of row l%8
// of 8×8 bf16 matrix l/8 (16 bytes, in shared memory); r[i] receives lane
// l's pair of matrix i: row l/4, columns 2(l%4) and +1, or with .trans
// column l/4, rows 2(l%4) and +1.
__device__ __forceinline__ unsigned flash_smem_addr(const void* p) {
    unsigned long long a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(p));
    return (unsigned)a;
}
__device__ __forceinline__ void ldsm4(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(flash_smem_addr(p)));
}
__device__ __forceinline__ void ldsm4t(unsigned* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(flash_smem_addr(p)));
}
#endif

// B fragments of n tiles n0 and n0+8 at k step k0 (b[0..1] and b[2..3])
// of a matrix stored in shared memory as rows of P 32-bit words: as [n][k]
// (flash_b_nk: K for Q·Kᵀ) or as [k][n] (flash_b_kn, transposing: V for
// P·V). One ldmatrix.x4 each.
__device__ __forceinline__ void flash_b_nk(unsigned* b, const unsigned* sm, int P, int n0, int k0) {
    int lane = threadIdx.x & 31, m = lane >> 3;
    ldsm4(b, sm + (n0 + 8 * (m >> 1) + (lane & 7)) * P + (k0 + 8 * (m & 1)) / 2);
}
__device__ __forceinline__ void flash_b_kn(unsigned* b, const unsigned* sm, int P, int k0, int n0) {
    int lane = threadIdx.x & 31, m = lane >> 3;
    ldsm4t(b, sm + (k0 + 8 * (m & 1) + (lane & 7)) * P + (n0 + 8 * (m >> 1)) / 2);
}

// Smallest first key over the block's nq queries from q0 (all threads).
__device__ __forceinline__ int flash_block_first_key(const int* seg, int b, int kvlen, int qoff, int window, int q0, int nq,
                                                     int qlen, float* sh) {
    float v = EFT_NEG_INF;
    if ((int)threadIdx.x < nq && q0 + (int)threadIdx.x < qlen)
        v = -(float)flash_first_key(seg, b, kvlen, qoff + q0 + threadIdx.x, window);
    v = block_max(v, sh);
    return v == EFT_NEG_INF ? EFT_NO_KEY : (int)(-v);
}

// Forward: grid (ceil(qlen/64), heads, batch), 128 threads; warp w owns
// queries 16w..16w+15 of the block's 64. qr, kr, vr: Q, K and V rows
// (flash_prep); qlp, klp their padded lengths.
template <int HD>
__device__ void flash_fwd(float* out, float* lse, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const int* seg, int heads,
                          int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff, int window, float scale, float softcap) {
    const int BQ = 64, BK = 64, KP = HD / 2 + 4;
    __shared__ __align__(16) unsigned ks[BK * KP];
    __shared__ __align__(16) unsigned vs[BK * KP];
    __shared__ float sh[32];
    int b = blockIdx.z, h = blockIdx.y, g = h / (heads / kvheads);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tg = lane & 3;
    const bf16_t* qb = qr + ((long long)b * heads + h) * qlp * HD;
    const bf16_t* kb = kr + ((long long)b * kvheads + g) * klp * HD;
    const bf16_t* vb = vr + ((long long)b * kvheads + g) * klp * HD;
    int bq0 = blockIdx.x * BQ, q0 = bq0 + warp * 16;
    unsigned qa[HD / 16][4];
    for (int kk = 0; kk < HD / 16; kk++) flash_afrag(qa[kk], qb, HD, q0, kk * 16);
    int lo[2], pos[2];
    for (int r = 0; r < 2; r++) {
        int i = q0 + gr + 8 * r;
        pos[r] = qoff + i;
        lo[r] = i < qlen ? flash_first_key(seg, b, kvlen, pos[r], window) : EFT_NO_KEY;
    }
    // A tile no row of this warp masks: keys from the largest first key to
    // the first row's own position, all rows real.
    int loAll = warp_max_int(max(lo[0], lo[1]));
    bool rowsReal = q0 + 15 < qlen;
    float o[HD / 8][4];
    for (int n = 0; n < HD / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {EFT_NEG_INF, EFT_NEG_INF}, l[2] = {0.0f, 0.0f};
    float sl2 = scale * EFT_LOG2E;
    int first = flash_block_first_key(seg, b, kvlen, qoff, window, bq0, BQ, qlen, sh);
    int last = min(qoff + min(bq0 + BQ, qlen) - 1, kvlen - 1);
    for (int k0 = (first / BK) * BK; k0 <= last; k0 += BK) {
        __syncthreads();
        flash_load(ks, KP, kb + (long long)k0 * HD, HD, BK, HD);
        flash_load(vs, KP, vb + (long long)k0 * HD, HD, BK, HD);
        __syncthreads();
        float s[BK / 8][4];
        for (int n = 0; n < BK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        for (int n = 0; n < BK / 8; n += 2)
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned bb[4];
                flash_b_nk(bb, ks, KP, n * 8, kk * 16);
                mma16816(s[n], qa[kk], bb);
                mma16816(s[n + 1], qa[kk], bb + 2);
            }
        if (softcap > 0.0f) {
            float th;
            for (int n = 0; n < BK / 8; n++)
                for (int e = 0; e < 4; e++) s[n][e] = flash_cap(s[n][e], scale, softcap, &th);
        }
        bool whole = rowsReal && k0 >= loAll && k0 + BK - 1 <= qoff + q0 && k0 + BK <= kvlen;
        for (int r = 0; r < 2; r++) {
            float mx = EFT_NEG_INF;
            if (whole) {
                for (int n = 0; n < BK / 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * r], s[n][2 * r + 1]));
            } else {
                for (int n = 0; n < BK / 8; n++)
                    for (int e = 0; e < 2; e++) {
                        int key = k0 + n * 8 + 2 * tg + e;
                        if (key < lo[r] || key > pos[r] || key >= kvlen) s[n][2 * r + e] = EFT_NEG_INF;
                        mx = fmaxf(mx, s[n][2 * r + e]);
                    }
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float mn = fmaxf(m[r], mx * sl2);
            float mu = mn == EFT_NEG_INF ? 0.0f : mn;
            float alpha = exp2f(m[r] - mu);
            m[r] = mn;
            float sum = 0.0f;
            for (int n = 0; n < BK / 8; n++)
                for (int e = 0; e < 2; e++) {
                    float p = exp2f(s[n][2 * r + e] * sl2 - mu);
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
            for (int n = 0; n < HD / 8; n += 2) {
                unsigned bb[4];
                flash_b_kn(bb, vs, KP, kk * 16, n * 8);
                mma16816(o[n], pa, bb);
                mma16816(o[n + 1], pa, bb + 2);
            }
        }
    }
    long long ldo = (long long)heads * HD;
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        int i = q0 + gr + 8 * r;
        if (i >= qlen) continue;
        float inv = 1.0f / sum;
        float* orow = out + ((long long)b * qlen + i) * ldo + h * HD;
        for (int n = 0; n < HD / 8; n++) {
            orow[n * 8 + 2 * tg] = o[n][2 * r] * inv;
            orow[n * 8 + 2 * tg + 1] = o[n][2 * r + 1] * inv;
        }
        if (tg == 0) lse[((long long)b * heads + h) * qlen + i] = (m[r] + log2f(sum)) * EFT_LN2;
    }
}

// dK and dV: grid (ceil(kvlen/64), kv_heads, batch), 128 threads; warp w
// owns keys 16w..16w+15 of the block's 64, for every query head of its kv
// group and every query tile that can see them. qr, kr, vr, dr: Q, K, V
// and dO rows.
template <int HD>
__device__ void flash_bwd_kv(float* dk, float* dv, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const bf16_t* dr,
                             const float* lse, const float* delta, const int* seg, int heads,
                             int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff, int window, float scale, float softcap) {
    const int BK = 64, BQ = HD <= 64 ? 64 : 32, QP = HD / 2 + 4;
    __shared__ __align__(16) unsigned qs[BQ * QP];
    __shared__ __align__(16) unsigned ds[BQ * QP];
    __shared__ float lses[BQ], dels[BQ];
    __shared__ int los[BQ];
    int b = blockIdx.z, g = blockIdx.y, group = heads / kvheads;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tg = lane & 3;
    const bf16_t* kb = kr + ((long long)b * kvheads + g) * klp * HD;
    const bf16_t* vb = vr + ((long long)b * kvheads + g) * klp * HD;
    int bk0 = blockIdx.x * BK, key0 = bk0 + warp * 16;
    int lastKey = min(bk0 + BK, kvlen) - 1;
    float dka[HD / 8][4], dva[HD / 8][4];
    for (int n = 0; n < HD / 8; n++)
        for (int e = 0; e < 4; e++) dka[n][e] = dva[n][e] = 0.0f;
    float sl2 = scale * EFT_LOG2E;
    // Queries before the block's first key see none of it.
    int qstart = max(0, bk0 - qoff) / BQ * BQ;
    for (int j = 0; j < group; j++) {
        int h = g * group + j;
        long long head = (long long)b * heads + h;
        for (int i0 = qstart; i0 < qlen; i0 += BQ) {
            __syncthreads();
            if ((int)threadIdx.x < BQ) {
                int i = i0 + threadIdx.x;
                bool in = i < qlen;
                los[threadIdx.x] = in ? flash_first_key(seg, b, kvlen, qoff + i, window) : EFT_NO_KEY;
                lses[threadIdx.x] = in ? lse[head * qlen + i] * EFT_LOG2E : 0.0f;
                dels[threadIdx.x] = in ? delta[head * qlen + i] : 0.0f;
            }
            __syncthreads();
            // The tile's smallest and largest first key, from shared memory
            // by every warp alike (so the skip is uniform over the block).
            int loMin = EFT_NO_KEY, loMax = 0;
            for (int x = lane; x < BQ; x += 32) {
                loMin = min(loMin, los[x]);
                loMax = max(loMax, los[x]);
            }
            loMin = -warp_max_int(-loMin);
            loMax = warp_max_int(loMax);
            if (loMin > lastKey) continue;
            // No key of this warp is masked for any query of the tile.
            bool whole = loMax <= key0 && key0 + 15 <= qoff + i0 && i0 + BQ <= qlen && key0 + 16 <= kvlen;
            flash_load(qs, QP, qr + (head * qlp + i0) * HD, HD, BQ, HD);
            flash_load(ds, QP, dr + (head * qlp + i0) * HD, HD, BQ, HD);
            __syncthreads();
            float pt[BQ / 8][4], dpt[BQ / 8][4];
            for (int n = 0; n < BQ / 8; n++)
                for (int e = 0; e < 4; e++) pt[n][e] = dpt[n][e] = 0.0f;
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned ka[4], va[4];
                flash_afrag(ka, kb, HD, key0, kk * 16);
                flash_afrag(va, vb, HD, key0, kk * 16);
                for (int n = 0; n < BQ / 8; n += 2) {
                    unsigned bb[4];
                    flash_b_nk(bb, qs, QP, n * 8, kk * 16);
                    mma16816(pt[n], ka, bb);
                    mma16816(pt[n + 1], ka, bb + 2);
                    flash_b_nk(bb, ds, QP, n * 8, kk * 16);
                    mma16816(dpt[n], va, bb);
                    mma16816(dpt[n + 1], va, bb + 2);
                }
            }
            // Pᵀ and dSᵀ = Pᵀ ⊙ (dPᵀ − delta): rows keys, columns queries.
            for (int n = 0; n < BQ / 8; n++)
                for (int e = 0; e < 4; e++) {
                    int key = key0 + gr + 8 * (e >> 1), qi = n * 8 + 2 * tg + (e & 1), i = i0 + qi;
                    bool vis = whole || (i < qlen && key < kvlen && key >= los[qi] && key <= qoff + i);
                    float x = pt[n][e], dcap = 1.0f;
                    if (softcap > 0.0f) {
                        float th;
                        x = flash_cap(x, scale, softcap, &th);
                        dcap = 1.0f - th * th;
                    }
                    float p = vis ? exp2f(x * sl2 - lses[qi]) : 0.0f;
                    pt[n][e] = p;
                    dpt[n][e] = p * (dpt[n][e] - dels[qi]) * dcap;
                }
            for (int kk = 0; kk < BQ / 16; kk++) {
                unsigned pa[4] = {pack_bf16(pt[2 * kk][0], pt[2 * kk][1]), pack_bf16(pt[2 * kk][2], pt[2 * kk][3]),
                                  pack_bf16(pt[2 * kk + 1][0], pt[2 * kk + 1][1]), pack_bf16(pt[2 * kk + 1][2], pt[2 * kk + 1][3])};
                unsigned sa[4] = {pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]), pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]),
                                  pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                                  pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
                for (int n = 0; n < HD / 8; n += 2) {
                    unsigned bb[4];
                    flash_b_kn(bb, ds, QP, kk * 16, n * 8);
                    mma16816(dva[n], pa, bb);
                    mma16816(dva[n + 1], pa, bb + 2);
                    flash_b_kn(bb, qs, QP, kk * 16, n * 8);
                    mma16816(dka[n], sa, bb);
                    mma16816(dka[n + 1], sa, bb + 2);
                }
            }
        }
    }
    long long ldk = (long long)kvheads * HD;
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
// queries 16w..16w+15 of the block's 64. qr, kr, vr, dr: Q, K, V and dO
// rows.
template <int HD>
__device__ void flash_bwd_q(float* dq, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const bf16_t* dr,
                            const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen,
                            int qlp, int klp, int qoff, int window, float scale, float softcap) {
    const int BQ = 64, BK = HD <= 64 ? 64 : 32, KP = HD / 2 + 4;
    __shared__ __align__(16) unsigned ks[BK * KP];
    __shared__ __align__(16) unsigned vs[BK * KP];
    __shared__ float sh[32];
    int b = blockIdx.z, h = blockIdx.y, g = h / (heads / kvheads);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tg = lane & 3;
    long long head = (long long)b * heads + h, kvhead = (long long)b * kvheads + g;
    const bf16_t* qb = qr + head * qlp * HD;
    const bf16_t* db = dr + head * qlp * HD;
    const bf16_t* kb = kr + kvhead * klp * HD;
    const bf16_t* vb = vr + kvhead * klp * HD;
    int bq0 = blockIdx.x * BQ, q0 = bq0 + warp * 16;
    unsigned qa[HD / 16][4], da[HD / 16][4];
    for (int kk = 0; kk < HD / 16; kk++) {
        flash_afrag(qa[kk], qb, HD, q0, kk * 16);
        flash_afrag(da[kk], db, HD, q0, kk * 16);
    }
    int lo[2], pos[2];
    float ls[2], de[2];
    for (int r = 0; r < 2; r++) {
        int i = q0 + gr + 8 * r;
        bool in = i < qlen;
        pos[r] = qoff + i;
        lo[r] = in ? flash_first_key(seg, b, kvlen, pos[r], window) : EFT_NO_KEY;
        ls[r] = in ? lse[head * qlen + i] * EFT_LOG2E : 0.0f;
        de[r] = in ? delta[head * qlen + i] : 0.0f;
    }
    int loAll = warp_max_int(max(lo[0], lo[1]));
    bool rowsReal = q0 + 15 < qlen;
    float dqa[HD / 8][4];
    for (int n = 0; n < HD / 8; n++) dqa[n][0] = dqa[n][1] = dqa[n][2] = dqa[n][3] = 0.0f;
    float sl2 = scale * EFT_LOG2E;
    int first = flash_block_first_key(seg, b, kvlen, qoff, window, bq0, BQ, qlen, sh);
    int last = min(qoff + min(bq0 + BQ, qlen) - 1, kvlen - 1);
    for (int k0 = (first / BK) * BK; k0 <= last; k0 += BK) {
        __syncthreads();
        flash_load(ks, KP, kb + (long long)k0 * HD, HD, BK, HD);
        flash_load(vs, KP, vb + (long long)k0 * HD, HD, BK, HD);
        __syncthreads();
        float s[BK / 8][4], dp[BK / 8][4];
        for (int n = 0; n < BK / 8; n++)
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
        for (int n = 0; n < BK / 8; n += 2)
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned bb[4];
                flash_b_nk(bb, ks, KP, n * 8, kk * 16);
                mma16816(s[n], qa[kk], bb);
                mma16816(s[n + 1], qa[kk], bb + 2);
                flash_b_nk(bb, vs, KP, n * 8, kk * 16);
                mma16816(dp[n], da[kk], bb);
                mma16816(dp[n + 1], da[kk], bb + 2);
            }
        bool whole = rowsReal && k0 >= loAll && k0 + BK - 1 <= qoff + q0 && k0 + BK <= kvlen;
        for (int n = 0; n < BK / 8; n++)
            for (int e = 0; e < 4; e++) {
                int r = e >> 1, key = k0 + n * 8 + 2 * tg + (e & 1);
                bool vis = whole || (key >= lo[r] && key <= pos[r] && key < kvlen);
                float x = s[n][e], dcap = 1.0f;
                if (softcap > 0.0f) {
                    float th;
                    x = flash_cap(x, scale, softcap, &th);
                    dcap = 1.0f - th * th;
                }
                float p = vis ? exp2f(x * sl2 - ls[r]) : 0.0f;
                s[n][e] = p * (dp[n][e] - de[r]) * dcap;
            }
        for (int kk = 0; kk < BK / 16; kk++) {
            unsigned sa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            for (int n = 0; n < HD / 8; n += 2) {
                unsigned bb[4];
                flash_b_kn(bb, ks, KP, kk * 16, n * 8);
                mma16816(dqa[n], sa, bb);
                mma16816(dqa[n + 1], sa, bb + 2);
            }
        }
    }
    long long ldq = (long long)heads * HD;
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

// Entry points per head size (the host picks them by name).
extern "C" __global__ void flash_prep_16(bf16_t* rows, const float* src, int len, int heads, int lp) {
    flash_prep<16>(rows, src, len, heads, lp);
}
extern "C" __global__ void flash_fwd_16(float* out, float* lse, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff, int window, float scale, float softcap) {
    flash_fwd<16>(out, lse, qr, kr, vr, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_kv_16(float* dk, float* dv, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr,
        const bf16_t* dr, const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp,
        int klp, int qoff, int window, float scale, float softcap) {
    flash_bwd_kv<16>(dk, dv, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_q_16(float* dq, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const bf16_t* dr,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff,
        int window, float scale, float softcap) {
    flash_bwd_q<16>(dq, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_prep_32(bf16_t* rows, const float* src, int len, int heads, int lp) {
    flash_prep<32>(rows, src, len, heads, lp);
}
extern "C" __global__ void flash_fwd_32(float* out, float* lse, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff, int window, float scale, float softcap) {
    flash_fwd<32>(out, lse, qr, kr, vr, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_kv_32(float* dk, float* dv, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr,
        const bf16_t* dr, const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp,
        int klp, int qoff, int window, float scale, float softcap) {
    flash_bwd_kv<32>(dk, dv, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_q_32(float* dq, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const bf16_t* dr,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff,
        int window, float scale, float softcap) {
    flash_bwd_q<32>(dq, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_prep_64(bf16_t* rows, const float* src, int len, int heads, int lp) {
    flash_prep<64>(rows, src, len, heads, lp);
}
extern "C" __global__ void flash_fwd_64(float* out, float* lse, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff, int window, float scale, float softcap) {
    flash_fwd<64>(out, lse, qr, kr, vr, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_kv_64(float* dk, float* dv, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr,
        const bf16_t* dr, const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp,
        int klp, int qoff, int window, float scale, float softcap) {
    flash_bwd_kv<64>(dk, dv, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_q_64(float* dq, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const bf16_t* dr,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff,
        int window, float scale, float softcap) {
    flash_bwd_q<64>(dq, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_prep_128(bf16_t* rows, const float* src, int len, int heads, int lp) {
    flash_prep<128>(rows, src, len, heads, lp);
}
extern "C" __global__ void flash_fwd_128(float* out, float* lse, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const int* seg,
        int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff, int window, float scale, float softcap) {
    flash_fwd<128>(out, lse, qr, kr, vr, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_kv_128(float* dk, float* dv, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr,
        const bf16_t* dr, const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp,
        int klp, int qoff, int window, float scale, float softcap) {
    flash_bwd_kv<128>(dk, dv, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
extern "C" __global__ void flash_bwd_q_128(float* dq, const bf16_t* qr, const bf16_t* kr, const bf16_t* vr, const bf16_t* dr,
        const float* lse, const float* delta, const int* seg, int heads, int kvheads, int qlen, int kvlen, int qlp, int klp, int qoff,
        int window, float scale, float softcap) {
    flash_bwd_q<128>(dq, qr, kr, vr, dr, lse, delta, seg, heads, kvheads, qlen, kvlen, qlp, klp, qoff, window, scale, softcap);
}
