// Gated MLP activations and dropout. act: 0 SiLU, 1 GELU (tanh).

#define EFT_SQRT_2_OVER_PI 0.7978845608028654f

extern "C" __global__ void gated_act_fwd(float* h, const float* gate, const float* up, int act, long long n) {
    FOR_EACH(i, n) {
        float x = gate[i];
        float a;
        if (act == 0) {
            a = x / (1.0f + expf(-x));
        } else {
            float t = tanhf(EFT_SQRT_2_OVER_PI * (x + 0.044715f * x * x * x));
            a = 0.5f * x * (1.0f + t);
        }
        h[i] = a * up[i];
    }
}

extern "C" __global__ void gated_act_bwd(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int act, long long n) {
    FOR_EACH(i, n) {
        float x = gate[i], d = dh[i];
        if (act == 0) {
            float sg = 1.0f / (1.0f + expf(-x));
            dgate[i] = d * up[i] * sg * (1.0f + x * (1.0f - sg));
            dup[i] = d * x * sg;
        } else {
            float t = tanhf(EFT_SQRT_2_OVER_PI * (x + 0.044715f * x * x * x));
            float a = 0.5f * x * (1.0f + t);
            float da = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * EFT_SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
            dgate[i] = d * up[i] * da;
            dup[i] = d * a;
        }
    }
}

// dropout_uniform is trainer/cpu's DropoutUniform: splitmix64 of the seed and
// element index, top 24 bits as a float in [0, 1). Same seed, same mask.
__device__ __forceinline__ float dropout_uniform(unsigned long long seed, unsigned long long i) {
    unsigned long long z = seed + (i + 1ull) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) / 16777216.0f;
}

extern "C" __global__ void dropout_fwd(float* out, float* mask, const float* x, float p, unsigned long long seed, long long n) {
    float keep = 1.0f / (1.0f - p);
    FOR_EACH(i, n) {
        float m = dropout_uniform(seed, (unsigned long long)i) < p ? 0.0f : keep;
        mask[i] = m;
        out[i] = x[i] * m;
    }
}
