// Rotary embedding in transformers' rotate_half layout, in place: for each
// head, x1' = x1·cos − x2·sin, x2' = x2·cos + x1·sin over the first
// 2·half features. sign = −1 applies the inverse rotation (backward).

extern "C" __global__ void rope(float* x, const float* cos_t, const float* sin_t, const int* pos,
                                int tokens, int heads, int head_dim, int half, float sign) {
    long long n = (long long)tokens * heads * half;
    FOR_EACH(idx, n) {
        int i = (int)(idx % half);
        long long th = idx / half;
        int h = (int)(th % heads);
        long long t = th / heads;
        long long p = pos[t];
        float c = cos_t[p * half + i], s = sign * sin_t[p * half + i];
        float* row = x + (t * heads + h) * head_dim;
        float a = row[i], b = row[i + half];
        row[i] = a * c - b * s;
        row[i + half] = b * c + a * s;
    }
}
