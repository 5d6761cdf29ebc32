// The masked-softmax parts of attention; the products around them are
// batched GEMMs. Scores of one batch row b and one query head per kv head
// (h = g·group + j for g < kv_heads) sit in s as [kv_heads, qlen, kvlen].
// Query i sits at kv index qoff+i and sees keys j with
// seg_start(qoff+i) <= j <= qoff+i and, with a window, qoff+i−j < window.

__device__ __forceinline__ int first_key(const int* seg, int b, int kvlen, int p, int window) {
    int lo = seg ? seg[(long long)b * kvlen + p] : 0;
    if (window > 0 && p - window + 1 > lo) lo = p - window + 1;
    return lo;
}

// attn_softmax turns scores into weights in place and writes each query's
// log-sum-exp into lse [batch, heads, qlen]; softcap > 0 caps the scores
// first. Grid (qlen, kv_heads).
extern "C" __global__ void attn_softmax(float* s, float* lse, const int* seg, int b, int j, int group, int heads,
                                        int qlen, int kvlen, int qoff, int window, float softcap) {
    __shared__ float sh[32];
    int i = blockIdx.x, g = blockIdx.y;
    int h = g * group + j;
    float* row = s + ((long long)g * qlen + i) * kvlen;
    int p = qoff + i;
    int from = first_key(seg, b, kvlen, p, window), to = p + 1;
    float mx = EFT_NEG_INF;
    for (int k = from + threadIdx.x; k < to; k += blockDim.x) {
        if (softcap > 0.0f) row[k] = soft_capped(row[k], softcap);
        mx = fmaxf(mx, row[k]);
    }
    mx = block_max(mx, sh);
    float sum = 0.0f;
    for (int k = from + threadIdx.x; k < to; k += blockDim.x) sum += expf(row[k] - mx);
    sum = block_sum(sum, sh);
    float inv = 1.0f / sum;
    for (int k = threadIdx.x; k < kvlen; k += blockDim.x) row[k] = (k >= from && k < to) ? expf(row[k] - mx) * inv : 0.0f;
    if (threadIdx.x == 0) lse[((long long)b * heads + h) * qlen + i] = mx + logf(sum);
}

// attn_probs recomputes the weights from scores and lse (backward pass);
// with softcap > 0 the scores are capped first and cap_grad (laid out as s)
// receives the cap's derivative 1 − tanh²(score/softcap).
extern "C" __global__ void attn_probs(float* s, float* cap_grad, const float* lse, const int* seg, int b, int j, int group, int heads,
                                      int qlen, int kvlen, int qoff, int window, float softcap) {
    int i = blockIdx.x, g = blockIdx.y;
    int h = g * group + j;
    long long off = ((long long)g * qlen + i) * kvlen;
    float* row = s + off;
    int p = qoff + i;
    int from = first_key(seg, b, kvlen, p, window), to = p + 1;
    float l = lse[((long long)b * heads + h) * qlen + i];
    for (int k = threadIdx.x; k < kvlen; k += blockDim.x) {
        bool vis = k >= from && k < to;
        if (softcap > 0.0f) {
            float th = vis ? tanhf(row[k] / softcap) : 0.0f;
            row[k] = vis ? expf(softcap * th - l) : 0.0f;
            cap_grad[off + k] = 1.0f - th * th;
            continue;
        }
        row[k] = vis ? expf(row[k] - l) : 0.0f;
    }
}

// attn_dscores: ds = p⊙(dp − delta)·scale, times cap_grad when soft-capped,
// in place in dp. Grid (qlen, kv_heads).
extern "C" __global__ void attn_dscores(float* dp, const float* p, const float* cap_grad, const float* delta, int b, int j, int group,
                                        int heads, int qlen, int kvlen, float scale) {
    int i = blockIdx.x, g = blockIdx.y;
    int h = g * group + j;
    long long off = ((long long)g * qlen + i) * kvlen;
    float d = delta[((long long)b * heads + h) * qlen + i];
    for (int k = threadIdx.x; k < kvlen; k += blockDim.x) {
        float ds = p[off + k] * (dp[off + k] - d) * scale;
        dp[off + k] = cap_grad ? ds * cap_grad[off + k] : ds;
    }
}

// attn_delta: delta[b, h, i] = Σ_x out[t, h, x]·dout[t, h, x] for t = b·qlen+i;
// one warp per (token, head).
extern "C" __global__ void attn_delta(float* delta, const float* out, const float* dout, int tokens, int heads, int head_dim, int qlen) {
    long long w = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (w >= (long long)tokens * heads) return;
    long long t = w / heads;
    int h = (int)(w % heads);
    const float* o = out + (t * heads + h) * head_dim;
    const float* d = dout + (t * heads + h) * head_dim;
    float acc = 0.0f;
    for (int x = lane; x < head_dim; x += 32) acc += o[x] * d[x];
    acc = warp_sum(acc);
    long long b = t / qlen, i = t % qlen;
    if (lane == 0) delta[(b * heads + h) * qlen + i] = acc;
}
