package blas

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShape is one GEMM the engine runs: C[m×n] = op(A)·op(B) with k inner.
type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
}

func benchShapes() []benchShape {
	var shapes []benchShape
	for _, s := range []int{256, 512, 1024, 2048} {
		shapes = append(shapes, benchShape{fmt.Sprintf("square-%d", s), false, false, s, s, s})
	}
	// A linear layer y = x·Wᵀ (W is [out, in] as in HF), its input gradient
	// dx = dy·W and weight gradient dW = dyᵀ·x, for the MLP up projection.
	for _, tok := range []int{512, 2048} {
		for _, h := range []int{256, 1024} {
			shapes = append(shapes,
				benchShape{fmt.Sprintf("fwd-x·Wᵀ-t%d-h%d", tok, h), false, true, tok, 4 * h, h},
				benchShape{fmt.Sprintf("fwd-x·W-t%d-h%d", tok, h), false, false, tok, 4 * h, h},
				benchShape{fmt.Sprintf("bwd-dy·W-t%d-h%d", tok, h), false, false, tok, h, 4 * h},
				benchShape{fmt.Sprintf("bwd-dyᵀ·x-t%d-h%d", tok, h), true, false, 4 * h, h, tok},
			)
		}
	}
	// LoRA rank 16 on a [h×h] projection: x·Aᵀ, (x·Aᵀ)·Bᵀ, dB = dyᵀ·(x·Aᵀ).
	for _, h := range []int{256, 1024} {
		tok := 2048
		shapes = append(shapes,
			benchShape{fmt.Sprintf("lora-x·Aᵀ-t%d-h%d", tok, h), false, true, tok, 16, h},
			benchShape{fmt.Sprintf("lora-u·Bᵀ-t%d-h%d", tok, h), false, true, tok, h, 16},
			benchShape{fmt.Sprintf("lora-dyᵀ·u-t%d-h%d", tok, h), true, false, h, 16, tok},
		)
	}
	// Attention in blocks of 64 queries (trainer/cpu): scores q·kᵀ, output
	// p·v, and the key gradient dpᵀ·q, head dim 64, 512 keys.
	shapes = append(shapes,
		benchShape{"attn-q·kᵀ-64x512x64", false, true, 64, 512, 64},
		benchShape{"attn-p·v-64x64x512", false, false, 64, 64, 512},
		benchShape{"attn-dpᵀ·q-512x64x64", true, false, 512, 64, 64},
	)
	return shapes
}

// implementations are the GEMMs to compare: the Go kernel always, OpenBLAS
// when it loads here (split between Threads() goroutines as Sgemm does).
func implementations() []struct {
	name string
	f    sgemmFunc
} {
	impls := []struct {
		name string
		f    sgemmFunc
	}{{"go", goSgemm}}
	if lib := library(); lib != nil {
		impls = append(impls, struct {
			name string
			f    sgemmFunc
		}{"openblas", lib.sgemm})
	}
	return impls
}

func BenchmarkSgemm(b *testing.B) {
	benchmarkSgemm(b)
}

// BenchmarkSgemm1Thread is BenchmarkSgemm on one core: the kernel's own
// efficiency, without the split between goroutines.
func BenchmarkSgemm1Thread(b *testing.B) {
	SetThreads(1)
	defer SetThreads(0)
	benchmarkSgemm(b)
}

func benchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, impl := range implementations() {
		for _, s := range benchShapes() {
			b.Run(impl.name+"/"+s.name, func(b *testing.B) {
				x := randMatrix(r, s.m*s.k, 1)
				y := randMatrix(r, s.k*s.n, 1)
				c := make([]float32, s.m*s.n)
				lda, ldb := s.k, s.n
				if s.transA {
					lda = s.m
				}
				if s.transB {
					ldb = s.k
				}
				b.ReportAllocs()
				cpu0 := processCPUSeconds()
				for b.Loop() {
					impl.f(s.transA, s.transB, s.m, s.n, s.k, 1, x, lda, y, ldb, 0, c, s.n)
				}
				reportGFLOPs(b, s.m, s.n, s.k, processCPUSeconds()-cpu0)
			})
		}
	}
}

// reportGFLOPs reports the rate of b.N products of m×n×k: GFLOP/s on the
// wall clock, and GFLOP/cpu-s per second of CPU the process used. This
// machine is shared; when other processes take turns on the cores, the
// wall-clock rate falls but the CPU-time rate still measures the kernel
// (with one thread it is the rate one uncontended core would reach).
func reportGFLOPs(b *testing.B, m, n, k int, cpuSeconds float64) {
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpuSeconds > 0 {
		b.ReportMetric(flops/cpuSeconds/1e9, "GFLOP/cpu-s")
	}
}
