package blas

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// avx2Kernel is the AVX2+FMA micro-kernel: a 6×16 tile of C lives in twelve
// ymm registers; each step loads 16 values of B (two registers), broadcasts
// 6 values of A and issues 12 FMAs.
var avx2Kernel = &kernel{name: "avx2+fma 6x16", mr: 6, nr: 16, full: kernelAVX2}

func selectKernel() *kernel {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		return avx2Kernel
	}
	return genericKernel
}

func kernelAVX2(kc int, a, b, c []float32, ldc int, accumulate bool) {
	_ = a[kc*6-1]
	_ = b[kc*16-1]
	_ = c[5*ldc+15]
	sgemmKernel6x16(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc, accumulate)
}

//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, accumulate bool)
