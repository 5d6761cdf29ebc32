// Token embedding: gather rows of the table (float32 or bf16) and
// scatter-add gradients back.

extern "C" __global__ void embedding_fwd(float* out, const void* table, int table_bf16, const int* ids, int dim) {
    long long t = blockIdx.x;
    long long row = (long long)ids[t] * dim;
    float* o = out + t * dim;
    if (table_bf16) {
        const bf16_t* tb = (const bf16_t*)table + row;
        for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = bf2f(tb[i]);
    } else {
        const float* tf = (const float*)table + row;
        for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = tf[i];
    }
}

extern "C" __global__ void embedding_bwd(float* dtable, const float* dout, const int* ids, int dim) {
    long long t = blockIdx.x;
    float* d = dtable + (long long)ids[t] * dim;
    const float* g = dout + t * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) atomicAdd(&d[i], g[i]);
}
