package blas

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// avx2Kernel is the AVX2+FMA micro-kernel: a 6×16 tile of C lives in twelve
// ymm registers; each step loads 16 values of B (two registers), broadcasts
// 6 values of A and issues 12 FMAs.
var avx2Kernel = &kernel{name: "avx2+fma 6x16", mr: 6, nr: 16, tile: kernelAVX2}

func selectKernel() *kernel {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		return avx2Kernel
	}
	return genericKernel
}

func kernelAVX2(kc int, a []float32, rsA, csA int, b []float32, ldb int, c []float32, ldc int, alpha float32, accumulate bool) {
	// The assembly does no bounds checks: touch the last element of each
	// operand here so a wrong offset panics instead of reading past a slice.
	_ = a[5*rsA+(kc-1)*csA]
	_ = b[(kc-1)*ldb+15]
	_ = c[5*ldc+15]
	sgemmKernel6x16(kc, unsafe.SliceData(a), rsA, csA, unsafe.SliceData(b), ldb, unsafe.SliceData(c), ldc, alpha, accumulate)
}

//go:noescape
func sgemmKernel6x16(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, alpha float32, accumulate bool)
