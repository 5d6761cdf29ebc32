// Elementwise ops, conversions and reductions over whole buffers.

extern "C" __global__ void ew_add(float* d, const float* s, float alpha, long long n) {
    FOR_EACH(i, n) d[i] += alpha * s[i];
}

extern "C" __global__ void ew_scale(float* d, float s, long long n) {
    FOR_EACH(i, n) d[i] *= s;
}

extern "C" __global__ void ew_mul(float* d, const float* a, const float* b, int accumulate, long long n) {
    if (accumulate) {
        FOR_EACH(i, n) d[i] += a[i] * b[i];
    } else {
        FOR_EACH(i, n) d[i] = a[i] * b[i];
    }
}

extern "C" __global__ void f32_to_bf16(bf16_t* d, const float* s, long long n) {
    FOR_EACH(i, n) d[i] = f2bf(s[i]);
}

// f32_to_bf16_x4 converts n4 groups of four (s 16-byte and d 8-byte
// aligned): one vector load and store per group, for the conversions of
// GEMM operands that are a fair part of a step's memory traffic.
extern "C" __global__ void f32_to_bf16_x4(uint2* d, const float4* s, long long n4) {
    FOR_EACH(i, n4) {
        float4 v = s[i];
        uint2 r;
        r.x = pack_bf16(v.x, v.y);
        r.y = pack_bf16(v.z, v.w);
        d[i] = r;
    }
}

extern "C" __global__ void bf16_to_f32(float* d, const bf16_t* s, long long n) {
    FOR_EACH(i, n) d[i] = bf2f(s[i]);
}

// sum_squares adds the sum of x[i]² (in float64) into *out.
extern "C" __global__ void sum_squares(const float* x, long long n, double* out) {
    __shared__ double sh[32];
    double acc = 0.0;
    FOR_EACH(i, n) acc += (double)x[i] * (double)x[i];
    acc = block_sum_d(acc, sh);
    if (threadIdx.x == 0) atomicAdd(out, acc);
}

// add_bias: y[r, j] += bias[j] for y [rows, n].
extern "C" __global__ void add_bias(float* y, const float* bias, long long rows, int n) {
    FOR_EACH(i, rows * n) y[i] += bias[i % n];
}

// bias_backward: dbias[j] += Σ_r dy[r, j]. Grid x covers the columns, grid y
// splits the rows; each block adds its partial sums.
extern "C" __global__ void bias_backward(float* dbias, const float* dy, int rows, int n, int rows_per_block) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    int r0 = blockIdx.y * rows_per_block;
    int r1 = min(r0 + rows_per_block, rows);
    float acc = 0.0f;
    for (int r = r0; r < r1; r++) acc += dy[(long long)r * n + j];
    atomicAdd(&dbias[j], acc);
}
