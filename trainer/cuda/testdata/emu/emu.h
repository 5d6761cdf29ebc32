// A CUDA emulator for the backend's tests: it compiles the kernel sources
// as host C++ and runs each launch block by block, every CUDA thread a
// fiber (ucontext) switched cooperatively at __syncthreads and warp
// shuffles. Slow, single-threaded and exact about barriers, it lets the Go
// backend (launch configurations, arguments, strides, GEMM layouts) and the
// kernels' arithmetic be tested on a machine without a GPU. It emulates
// only what kernels/ uses.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <algorithm>
#include <type_traits>
#include <utility>

using std::max;
using std::min;

struct dim3 {
    unsigned int x, y, z;
};

enum { EMU_RUN, EMU_BLOCK, EMU_WARP, EMU_DONE };

struct EmuThread {
    ucontext_t ctx;  // fallback switch
    void* sp;        // x86-64 switch: the saved stack pointer
    dim3 idx;
    int lane, warp, state;
    char* stack;
};

// On x86-64 fibers switch with a few instructions (callee-saved registers
// and the stack pointer); glibc's swapcontext also saves the signal mask
// with a system call per switch, which made the tests spend half their time
// in the kernel. Elsewhere ucontext does it.
#if defined(__x86_64__)
#define EMU_FAST_SWITCH 1
extern "C" void emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size emu_switch, .-emu_switch
)");
static void* emu_sched_sp;
#endif

static const int emu_stack_bytes = 64 << 10;
static EmuThread emu_threads[1024];
static EmuThread* emu_cur;
static ucontext_t emu_sched;
static dim3 emu_block_idx, emu_block_dim, emu_grid_dim;
static unsigned long long emu_xchg[32][32];
static void (*emu_fn)(void**);
static void** emu_params;
static char emu_error[512];

#define threadIdx (emu_cur->idx)
#define blockIdx emu_block_idx
#define blockDim emu_block_dim
#define gridDim emu_grid_dim
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__
#define __align__(n) __attribute__((aligned(n)))
struct alignas(16) uint4 {
    unsigned int x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned int x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};

static inline void emu_wait(int state) {
    emu_cur->state = state;
#ifdef EMU_FAST_SWITCH
    emu_switch(&emu_cur->sp, emu_sched_sp);
#else
    swapcontext(&emu_cur->ctx, &emu_sched);
#endif
}

static inline void __syncthreads() { emu_wait(EMU_BLOCK); }

template <typename T>
static inline T __shfl_xor_sync(unsigned int, T v, int mask) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    int w = emu_cur->warp, l = emu_cur->lane;
    emu_xchg[w][l] = bits;
    emu_wait(EMU_WARP);  // every lane has written
    unsigned long long got = emu_xchg[w][l ^ mask];
    emu_wait(EMU_WARP);  // every lane has read
    T r;
    memcpy(&r, &got, sizeof(T));
    return r;
}

// The tensor-core product of kernels/flash.cu (mma.sync m16n8k16, bf16
// inputs, float32 accumulation): every lane posts its A and B fragment
// registers, then computes its four C elements from the whole warp's.
#define EFT_EMULATOR 1
static unsigned emu_mma_regs[32][32][6];
static inline float emu_bf16_half(unsigned reg, int hi) { unsigned h = hi ? reg >> 16 : reg & 0xffffu; float f; unsigned u = h << 16; memcpy(&f, &u, 4); return f; }
static inline void mma16816(float* c, const unsigned* a, const unsigned* b) {
    int w = emu_cur->warp, l = emu_cur->lane;
    for (int i = 0; i < 4; i++) emu_mma_regs[w][l][i] = a[i];
    emu_mma_regs[w][l][4] = b[0];
    emu_mma_regs[w][l][5] = b[1];
    emu_wait(EMU_WARP);  // every lane has posted
    int g = l >> 2, t = l & 3;
    for (int e = 0; e < 4; e++) {
        int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
        float acc = 0.0f;
        for (int kx = 0; kx < 16; kx++) {
            unsigned ar = emu_mma_regs[w][(row & 7) * 4 + ((kx & 7) >> 1)][(row >> 3) + 2 * (kx >> 3)];
            unsigned br = emu_mma_regs[w][col * 4 + ((kx & 7) >> 1)][4 + (kx >> 3)];
            acc += emu_bf16_half(ar, kx & 1) * emu_bf16_half(br, kx & 1);
        }
        c[e] += acc;
    }
    emu_wait(EMU_WARP);  // every lane has read
}

// ldmatrix.x4 (and .trans) of kernels/flash.cu: every lane posts the
// address of its row (row l%8 of 8×8 bf16 matrix l/8), then reads its
// pair of each matrix: row l/4, columns 2(l%4) and +1; transposed, column
// l/4, rows 2(l%4) and +1.
static const unsigned short* emu_ldsm_rows[32][32];
static inline void emu_ldsm(unsigned* r, const void* p, bool trans) {
    int w = emu_cur->warp, l = emu_cur->lane;
    emu_ldsm_rows[w][l] = (const unsigned short*)p;
    emu_wait(EMU_WARP);  // every lane has posted
    for (int m = 0; m < 4; m++) {
        const unsigned short* const* rows = &emu_ldsm_rows[w][8 * m];
        unsigned lo, hi;
        if (trans) {
            lo = rows[2 * (l & 3)][l >> 2];
            hi = rows[2 * (l & 3) + 1][l >> 2];
        } else {
            lo = rows[l >> 2][2 * (l & 3)];
            hi = rows[l >> 2][2 * (l & 3) + 1];
        }
        r[m] = lo | (hi << 16);
    }
    emu_wait(EMU_WARP);  // every lane has read
}
static inline void ldsm4(unsigned* r, const void* p) { emu_ldsm(r, p, false); }
static inline void ldsm4t(unsigned* r, const void* p) { emu_ldsm(r, p, true); }

// Fibers run one at a time, so a plain add is atomic.
static inline float atomicAdd(float* p, float v) {
    float o = *p;
    *p = o + v;
    return o;
}
static inline double atomicAdd(double* p, double v) {
    double o = *p;
    *p = o + v;
    return o;
}

static inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __uint_as_float(unsigned int u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }

// emu_call unpacks a kernel's argument block (pointers to each value, as
// cuLaunchKernel takes it) into a call.
template <typename... A, size_t... I>
static void emu_call_impl(void (*k)(A...), void** p, std::index_sequence<I...>) {
    k(*static_cast<typename std::remove_reference<A>::type*>(p[I])...);
}
template <typename... A>
static void emu_call(void (*k)(A...), void** p) {
    emu_call_impl(k, p, std::index_sequence_for<A...>{});
}
template <auto K>
static void emu_thunk(void** p) {
    emu_call(K, p);
}

static void emu_entry() {
    emu_fn(emu_params);
    emu_cur->state = EMU_DONE;
#ifdef EMU_FAST_SWITCH
    emu_switch(&emu_cur->sp, emu_sched_sp);  // never resumed
#endif
}

// emu_start prepares t to run emu_entry on its own stack.
static void emu_start(EmuThread* t) {
#ifdef EMU_FAST_SWITCH
    // emu_switch pops six registers and returns: leave six zeros and
    // emu_entry's address, so that emu_entry starts as if called (the stack
    // pointer 8 past a 16-byte boundary).
    uintptr_t top = ((uintptr_t)t->stack + emu_stack_bytes) & ~(uintptr_t)15;
    void** sp = (void**)(top - 8 - 56);
    for (int i = 0; i < 6; i++) sp[i] = 0;
    sp[6] = (void*)&emu_entry;
    t->sp = sp;
#else
    getcontext(&t->ctx);
    t->ctx.uc_stack.ss_sp = t->stack;
    t->ctx.uc_stack.ss_size = emu_stack_bytes;
    t->ctx.uc_link = &emu_sched;
    makecontext(&t->ctx, emu_entry, 0);
#endif
}

static void emu_resume(EmuThread* t) {
    emu_cur = t;
#ifdef EMU_FAST_SWITCH
    emu_switch(&emu_sched_sp, t->sp);
#else
    swapcontext(&emu_sched, &t->ctx);
#endif
}

extern "C" const char* emu_last_error() { return emu_error; }

// emu_launch runs every block of the grid in turn. It returns 0, or 1 with
// emu_last_error set when the block is malformed or its threads deadlock.
extern "C" int emu_launch(void* fn, long long gx, long long gy, long long gz, long long bx, long long by, long long bz,
                          void** params) {
    long long n = bx * by * bz;
    if (n <= 0 || n > 1024) {
        snprintf(emu_error, sizeof emu_error, "block of %lldx%lldx%lld threads", bx, by, bz);
        return 1;
    }
    emu_fn = (void (*)(void**))fn;
    emu_params = params;
    emu_grid_dim = dim3{(unsigned)gx, (unsigned)gy, (unsigned)gz};
    emu_block_dim = dim3{(unsigned)bx, (unsigned)by, (unsigned)bz};
    for (long long z = 0; z < gz; z++)
        for (long long y = 0; y < gy; y++)
            for (long long x = 0; x < gx; x++) {
                emu_block_idx = dim3{(unsigned)x, (unsigned)y, (unsigned)z};
                for (int i = 0; i < n; i++) {
                    EmuThread* t = &emu_threads[i];
                    if (!t->stack) t->stack = (char*)malloc(emu_stack_bytes);
                    t->idx = dim3{(unsigned)(i % bx), (unsigned)((i / bx) % by), (unsigned)(i / (bx * by))};
                    t->lane = i & 31;
                    t->warp = i >> 5;
                    t->state = EMU_RUN;
                    emu_start(t);
                }
                for (;;) {
                    for (int i = 0; i < n; i++) {
                        if (emu_threads[i].state != EMU_RUN) continue;
                        emu_resume(&emu_threads[i]);
                    }
                    int live = 0, at_block = 0;
                    for (int i = 0; i < n; i++) {
                        live += emu_threads[i].state != EMU_DONE;
                        at_block += emu_threads[i].state == EMU_BLOCK;
                    }
                    if (live == 0) break;
                    bool released = false;
                    for (int w = 0; w * 32 < n; w++) {
                        int lanes = 0, waiting = 0;
                        for (int i = w * 32; i < n && i < w * 32 + 32; i++) {
                            lanes += emu_threads[i].state != EMU_DONE;
                            waiting += emu_threads[i].state == EMU_WARP;
                        }
                        if (lanes > 0 && waiting == lanes) {
                            for (int i = w * 32; i < n && i < w * 32 + 32; i++)
                                if (emu_threads[i].state == EMU_WARP) emu_threads[i].state = EMU_RUN;
                            released = true;
                        }
                    }
                    if (!released && at_block == live) {
                        for (int i = 0; i < n; i++)
                            if (emu_threads[i].state == EMU_BLOCK) emu_threads[i].state = EMU_RUN;
                        released = true;
                    }
                    if (!released) {
                        snprintf(emu_error, sizeof emu_error,
                                 "block (%lld,%lld,%lld): threads wait at different barriers (%d of %d live at __syncthreads)", x, y, z,
                                 at_block, live);
                        return 1;
                    }
                }
            }
    return 0;
}

extern "C" void* emu_malloc(long long bytes) { return aligned_alloc(256, (bytes + 255) / 256 * 256); }
extern "C" void emu_free(void* p) { free(p); }
extern "C" void emu_memcpy(void* dst, const void* src, long long bytes) { memcpy(dst, src, bytes); }
extern "C" void emu_memset32(unsigned int* dst, unsigned int v, long long n) {
    for (long long i = 0; i < n; i++) dst[i] = v;
}

static inline float emu_load(const char* base, long long i, int bf16) {
    if (!bf16) return ((const float*)base)[i];
    unsigned int u = ((const unsigned short*)base)[i];
    return __uint_as_float(u << 16);
}

// emu_gemm is cublasLtMatmul's meaning, column-major: for each batch entry,
// C = alpha·op(A)·op(B) + beta·C (C not read when beta is 0). a holds:
// transA transB m n k A B C lda ldb ldc batch strideA strideB strideC abBF16
// cBF16 alpha-bits beta-bits.
extern "C" void emu_gemm(const long long* a) {
    int ta = (int)a[0], tb = (int)a[1];
    long long m = a[2], n = a[3], k = a[4];
    const char *A = (const char*)a[5], *B = (const char*)a[6];
    char* C = (char*)a[7];
    long long lda = a[8], ldb = a[9], ldc = a[10], batch = a[11], sa = a[12], sb = a[13], sc = a[14];
    int abf = (int)a[15], cbf = (int)a[16];
    float alpha = __uint_as_float((unsigned int)a[17]), beta = __uint_as_float((unsigned int)a[18]);
    int ea = abf ? 2 : 4, ec = cbf ? 2 : 4;
    for (long long bi = 0; bi < batch; bi++) {
        const char* Ab = A + bi * sa * ea;
        const char* Bb = B + bi * sb * ea;
        char* Cb = C + bi * sc * ec;
        for (long long j = 0; j < n; j++)
            for (long long i = 0; i < m; i++) {
                double acc = 0;
                for (long long p = 0; p < k; p++) {
                    float x = emu_load(Ab, ta ? p + i * lda : i + p * lda, abf);
                    float y = emu_load(Bb, tb ? j + p * ldb : p + j * ldb, abf);
                    acc += (double)x * (double)y;
                }
                long long ci = i + j * ldc;
                float r = alpha * (float)acc;
                if (beta != 0.0f) r += beta * emu_load(Cb, ci, cbf);
                if (cbf) {
                    unsigned int u = __float_as_uint(r);
                    u += 0x7fffu + ((u >> 16) & 1u);
                    ((unsigned short*)Cb)[ci] = (unsigned short)(u >> 16);
                } else {
                    ((float*)Cb)[ci] = r;
                }
            }
    }
}
