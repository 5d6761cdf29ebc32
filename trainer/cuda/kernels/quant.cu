// 4-bit quantized weights (trainer/quant's layout, bitsandbytes' NF4/FP4):
// two codes per byte, the even element in the high nibble; element e is
// code[nibble]·absmax(e / bs), the block scale either stored (absmax) or
// double-quantized: dcode[qabsmax[b]]·absmax2[b/256] + offset, each
// operation rounded in float32 as trainer/quant (and bitsandbytes) do.

// quant4_dequant writes the whole dense matrix, n elements, as bf16 (or
// float32 when f32out) for one GEMM: one thread per packed byte.
extern "C" __global__ void quant4_dequant(void* dst, int f32out, const unsigned char* packed, const float* absmax,
                                          const unsigned char* qabsmax, const float* absmax2, const float* dcode, float offset,
                                          const float* code, long long n, int bs) {
    FOR_EACH(i, (n + 1) / 2) {
        unsigned int p = packed[i];
        for (int h = 0; h < 2; h++) {
            long long e = 2 * i + h;
            if (e >= n) break;
            long long b = e / bs;
            float s = absmax ? absmax[b] : __fadd_rn(__fmul_rn(dcode[qabsmax[b]], absmax2[b / 256]), offset);
            float v = __fmul_rn(code[h == 0 ? p >> 4 : p & 15u], s);
            if (f32out)
                ((float*)dst)[e] = v;
            else
                ((bf16_t*)dst)[e] = f2bf(v);
        }
    }
}
