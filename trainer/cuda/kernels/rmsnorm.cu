// RMSNorm over rows of width d: out = x·rstd·w, rstd = 1/sqrt(mean(x²)+eps).
// One block per row.

extern "C" __global__ void rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int d, float eps) {
    __shared__ float sh[32];
    long long r = blockIdx.x;
    const float* xr = x + r * d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, sh);
    float s = rsqrtf(ss / (float)d + eps);
    if (threadIdx.x == 0) rstd[r] = s;
    float* o = out + r * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) o[i] = xr[i] * s * w[i];
}

// dx += rstd·w⊙dy − rstd³/d · x · Σ(dy⊙w⊙x)
extern "C" __global__ void rmsnorm_bwd_dx(float* dx, const float* dout, const float* x, const float* w, const float* rstd, int d) {
    __shared__ float sh[32];
    long long r = blockIdx.x;
    const float* xr = x + r * d;
    const float* gr = dout + r * d;
    float dot = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dot += gr[i] * w[i] * xr[i];
    dot = block_sum(dot, sh);
    float s = rstd[r];
    float k = dot * s * s * s / (float)d;
    float* dr = dx + r * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dr[i] += s * w[i] * gr[i] - k * xr[i];
}

// dw[j] += Σ_r dy[r, j]·x[r, j]·rstd[r]; grid x covers columns, grid y rows.
extern "C" __global__ void rmsnorm_bwd_dw(float* dw, const float* dout, const float* x, const float* rstd, int rows, int d, int rows_per_block) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    int r0 = blockIdx.y * rows_per_block;
    int r1 = min(r0 + rows_per_block, rows);
    float acc = 0.0f;
    for (int r = r0; r < r1; r++) acc += dout[(long long)r * d + j] * x[(long long)r * d + j] * rstd[r];
    atomicAdd(&dw[j], acc);
}
