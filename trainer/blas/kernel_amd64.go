package blas

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// avx2Kernel is the AVX2+FMA micro-kernel: a 6×16 tile of C lives in twelve
// ymm registers; each step loads 16 values of B (two registers), broadcasts
// 6 values of A and issues 12 FMAs.
var avx2Kernel = &kernel{name: "avx2+fma 6x16", mr: 6, nr: 16, tile: kernelAVX2, packTransposed: packTransposedAVX2, packCols: packColsAVX2}

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

// packTransposedAVX2 fills a 16-wide B panel from 16 contiguous source rows
// (src, stride lds; column j of the panel is row j of src), 8×8 blocks at a
// time in registers, the last kc%8 steps one value at a time.
func packTransposedAVX2(panel, src []float32, lds, kc int) {
	_ = src[15*lds+kc-1]
	_ = panel[kc*16-1]
	blocks := kc / 8
	if blocks > 0 {
		transpose8Panel(blocks, unsafe.SliceData(src), lds, unsafe.SliceData(panel))
		transpose8Panel(blocks, &src[8*lds], lds, &panel[8])
	}
	for p := blocks * 8; p < kc; p++ {
		d := panel[p*16 : p*16+16]
		for j := range d {
			d[j] = src[j*lds+p]
		}
	}
}

//go:noescape
func transpose8Panel(blocks int, src *float32, lds int, dst *float32)

// packColsAVX2 fills a 6-row A panel from a transposed A: step p's six
// values are contiguous at src[p*lds:], and go to panel[p*6:].
func packColsAVX2(panel, src []float32, lds, kc int) {
	_ = src[(kc-1)*lds+5]
	_ = panel[kc*6-1]
	packCols6(kc, unsafe.SliceData(src), lds, unsafe.SliceData(panel))
}

//go:noescape
func packCols6(kc int, src *float32, lds int, dst *float32)
