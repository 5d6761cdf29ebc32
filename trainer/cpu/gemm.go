package cpu

// sgemm is the single-precision GEMM behind every matrix product here,
// row-major: C = alpha·op(A)·op(B) + beta·C, with trainer/blas.Sgemm's
// signature.
//
// Temporary: trainer/blas (OpenBLAS through purego, a fast pure-Go kernel
// otherwise) is another helper's package and had not landed when this
// backend was committed; until it does, this plain loop keeps the engine
// correct (every test passes on it) but slow. Replace the body with a call
// to blas.Sgemm and delete the loop once it exists.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
		if alpha == 0 {
			continue
		}
		if transB {
			for j := range n {
				bj := b[j*ldb : j*ldb+k]
				var s float32
				if transA {
					for p := range k {
						s += a[p*lda+i] * bj[p]
					}
				} else {
					ai := a[i*lda : i*lda+k]
					for p, v := range ai {
						s += v * bj[p]
					}
				}
				row[j] += alpha * s
			}
			continue
		}
		for p := range k {
			var av float32
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			if av == 0 {
				continue
			}
			av *= alpha
			bp := b[p*ldb : p*ldb+n]
			for j, v := range bp {
				row[j] += av * v
			}
		}
	}
}
