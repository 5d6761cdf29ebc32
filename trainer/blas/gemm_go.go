package blas

// goSgemm is the pure-Go GEMM. Sizes and slices are already checked.
func goSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		scaleRow(row, beta)
		if alpha == 0 || k == 0 {
			continue
		}
		for p := range k {
			var av float32
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			av *= alpha
			if transB {
				for j := range row {
					row[j] += av * b[j*ldb+p]
				}
				continue
			}
			bp := b[p*ldb : p*ldb+n]
			for j, v := range bp {
				row[j] += av * v
			}
		}
	}
}

// scaleRow sets row = beta*row, writing zeros without reading when beta is 0.
func scaleRow(row []float32, beta float32) {
	switch beta {
	case 0:
		clear(row)
	case 1:
	default:
		for j := range row {
			row[j] *= beta
		}
	}
}
