// Multi-tensor AdamW and gradient norms: one launch covers every trainable
// tensor. chunks[c] = tensor index << 32 | chunk index within the tensor.

struct AdamTensor {
    float* w;
    float* g;
    float* m;
    float* v;
    long long n;
    float decay, step_size; // 1 − lr·wd; −lr/(1−β1^t)
    float bc2, pad;         // sqrt(1−β2^t)
};

#define EFT_CHUNK 16384

// torch's single-tensor AdamW in float32, the gradient first multiplied by
// grad_scale (the clipping coefficient).
extern "C" __global__ void adamw_multi(const AdamTensor* ts, const long long* chunks, float w1, float b2, float w2, float eps, float grad_scale) {
    long long c = chunks[blockIdx.x];
    const AdamTensor* t = &ts[c >> 32];
    long long lo = (c & 0xffffffffll) * EFT_CHUNK;
    long long hi = lo + EFT_CHUNK < t->n ? lo + EFT_CHUNK : t->n;
    for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float g = t->g[i] * grad_scale;
        float mi = t->m[i] + w1 * (g - t->m[i]);
        float vi = b2 * t->v[i] + w2 * g * g;
        t->m[i] = mi;
        t->v[i] = vi;
        float denom = sqrtf(vi) / t->bc2 + eps;
        t->w[i] = t->w[i] * t->decay + t->step_size * (mi / denom);
    }
}

// sumsq_multi adds Σ g² of each chunk (float64) into out[tensor index].
extern "C" __global__ void sumsq_multi(const AdamTensor* ts, const long long* chunks, double* out) {
    __shared__ double sh[32];
    long long c = chunks[blockIdx.x];
    const AdamTensor* t = &ts[c >> 32];
    long long lo = (c & 0xffffffffll) * EFT_CHUNK;
    long long hi = lo + EFT_CHUNK < t->n ? lo + EFT_CHUNK : t->n;
    double acc = 0.0;
    for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) acc += (double)t->g[i] * (double)t->g[i];
    acc = block_sum_d(acc, sh);
    if (threadIdx.x == 0) atomicAdd(&out[c >> 32], acc);
}
