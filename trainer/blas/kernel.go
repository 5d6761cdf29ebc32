package blas

// kernel is a micro-kernel: full computes the mr×nr tile
// C = [C +] Σ_p a[p*mr+r]·b[p*nr+j] over kc packed steps, into C with row
// stride ldc, adding to C when accumulate and overwriting it otherwise.
type kernel struct {
	name   string
	mr, nr int
	full   func(kc int, a, b, c []float32, ldc int, accumulate bool)
}

// activeKernel is the fastest kernel this CPU runs, chosen at start-up.
var activeKernel = selectKernel()

// genericKernel is the portable micro-kernel: 4×8, written so the compiler
// keeps the accumulators in registers... as far as Go allows.
var genericKernel = &kernel{name: "go-generic 4x8", mr: 4, nr: 8, full: kernelGeneric4x8}

func kernelGeneric4x8(kc int, a, b, c []float32, ldc int, accumulate bool) {
	var acc [4][8]float32
	a = a[:kc*4]
	b = b[:kc*8]
	for p := range kc {
		ap := a[p*4 : p*4+4 : p*4+4]
		bp := b[p*8 : p*8+8 : p*8+8]
		for r := range 4 {
			av := ap[r]
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
				dst[j] += acc[r][j]
			}
		} else {
			copy(dst, acc[r][:])
		}
	}
}
