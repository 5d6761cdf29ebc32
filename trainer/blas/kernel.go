package blas

// kernel is a micro-kernel. tile computes the mr×nr tile
//
//	C[r, j] = alpha·Σ_p A[r, p]·B[p, j]  (+ C[r, j] when accumulate)
//
// over kc steps, where A[r, p] = a[r*rsA + p*csA] (a packed panel has
// rsA = 1, csA = mr; A in place has its own strides), B[p, j] = b[p*ldb + j]
// (packed: ldb = nr) and C has row stride ldc. The sum is formed in
// registers in p order and alpha is applied once at the end (fused with the
// add into C), so a given element's value does not depend on where its
// operands live.
//
// packTransposed fills a whole nr-wide B panel (kc rows) from nr contiguous
// rows of a transposed B: panel[p*nr+j] = src[j*lds+p]. packCols fills a
// whole mr-row A panel from a transposed A, whose mr values for step p are
// contiguous: panel[p*mr+r] = src[p*lds+r].
type kernel struct {
	name           string
	mr, nr         int
	tile           func(kc int, a []float32, rsA, csA int, b []float32, ldb int, c []float32, ldc int, alpha float32, accumulate bool)
	packTransposed func(panel, src []float32, lds, kc int)
	packCols       func(panel, src []float32, lds, kc int)
}

// activeKernel is the fastest kernel this CPU runs, chosen at start-up.
var activeKernel = selectKernel()

// genericKernel is the portable micro-kernel: 4×8, written so the compiler
// keeps the accumulators in registers as far as Go allows.
var genericKernel = &kernel{name: "go-generic 4x8", mr: 4, nr: 8, tile: kernelGeneric4x8, packTransposed: packTransposed8, packCols: packCols4}

func packCols4(panel, src []float32, lds, kc int) {
	panel = panel[:kc*4]
	for p := range kc {
		*(*[4]float32)(panel[p*4:]) = *(*[4]float32)(src[p*lds:])
	}
}

func packTransposed8(panel, src []float32, lds, kc int) {
	var rows [8][]float32
	for j := range rows {
		rows[j] = src[j*lds : j*lds+kc]
	}
	panel = panel[:kc*8]
	for p := range kc {
		d := panel[p*8 : p*8+8 : p*8+8]
		d[0], d[1], d[2], d[3] = rows[0][p], rows[1][p], rows[2][p], rows[3][p]
		d[4], d[5], d[6], d[7] = rows[4][p], rows[5][p], rows[6][p], rows[7][p]
	}
}

func kernelGeneric4x8(kc int, a []float32, rsA, csA int, b []float32, ldb int, c []float32, ldc int, alpha float32, accumulate bool) {
	var acc [4][8]float32
	_ = a[3*rsA+(kc-1)*csA]
	_ = b[(kc-1)*ldb+7]
	for p := range kc {
		bp := b[p*ldb : p*ldb+8 : p*ldb+8]
		for r := range 4 {
			av := a[r*rsA+p*csA]
			row := &acc[r]
			row[0] += av * bp[0]
			row[1] += av * bp[1]
			row[2] += av * bp[2]
			row[3] += av * bp[3]
			row[4] += av * bp[4]
			row[5] += av * bp[5]
			row[6] += av * bp[6]
			row[7] += av * bp[7]
		}
	}
	for r := range 4 {
		dst := c[r*ldc : r*ldc+8]
		if accumulate {
			for j := range dst {
				dst[j] += alpha * acc[r][j]
			}
		} else {
			for j := range dst {
				dst[j] = alpha * acc[r][j]
			}
		}
	}
}
