package blas

import "sync"

// The pure-Go GEMM follows the BLIS/GotoBLAS plan: C is cut into blocks, a
// kc-deep slice of op(B) is packed into column panels nr wide and a block of
// op(A) into row panels mr tall (scaled by alpha), and a register-blocked
// micro-kernel multiplies one A panel by one B panel into an mr×nr tile of C.
// Packing makes every kernel read sequential and cache-resident whatever
// the transposes and strides.
//
// Blocking (elements):
//   - kc: a B micro-panel (kc×nr) and an A micro-panel (mr×kc) stay in L1
//     while the kernel runs;
//   - mc: the packed A block (mc×kc) stays in L2 while every B panel of the
//     block passes through;
//   - nc: the packed B block (kc×nc) stays in L3.
const (
	blockK = 256
	blockM = 144
	blockN = 4080
)

// minParallelFlops is the work below which splitting a product between
// goroutines costs more than it saves.
const minParallelFlops = 1 << 21

// goSgemm is the pure-Go GEMM. Sizes and slices are already checked.
//
// With several workers, C is split into independent stripes along its
// longer side and each goroutine runs the whole blocked algorithm on its
// stripe, packing its own copies: there is no synchronisation but the final
// join, and the duplicated packing costs ~2/n (or 2/m) of the arithmetic.
func goSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmWith(activeKernel, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmWith is goSgemm with a chosen micro-kernel (tests run every kernel).
func gemmWith(kern *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		for i := range m {
			scaleRow(c[i*ldc:i*ldc+n], beta)
		}
		return
	}
	workers := Threads()
	if flops := 2 * float64(m) * float64(n) * float64(k); flops < minParallelFlops*float64(workers) {
		workers = max(1, int(flops/minParallelFlops))
	}
	// Split along m in whole mr panels, or along n in whole nr panels,
	// whichever side has more of them.
	panelsM, panelsN := ceilDiv(m, kern.mr), ceilDiv(n, kern.nr)
	splitM := panelsM >= panelsN
	panels := panelsN
	if splitM {
		panels = panelsM
	}
	workers = min(workers, panels)
	if workers <= 1 {
		gemmSerial(kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := panels*w/workers, panels*(w+1)/workers
		wg.Go(func() {
			if splitM {
				i0, i1 := lo*kern.mr, min(hi*kern.mr, m)
				aOff := i0 * lda
				if transA {
					aOff = i0
				}
				gemmSerial(kern, transA, transB, i1-i0, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[i0*ldc:], ldc)
			} else {
				j0, j1 := lo*kern.nr, min(hi*kern.nr, n)
				bOff := j0
				if transB {
					bOff = j0 * ldb
				}
				gemmSerial(kern, transA, transB, m, j1-j0, k, alpha, a, lda, b[bOff:], ldb, beta, c[j0:], ldc)
			}
		})
	}
	wg.Wait()
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// packBuffers are one worker's packed blocks, reused across calls.
type packBuffers struct {
	a, b []float32
	tile []float32
}

var packPool sync.Pool

func getPackBuffers(kern *kernel) *packBuffers {
	if p, ok := packPool.Get().(*packBuffers); ok && len(p.tile) == kern.mr*kern.nr {
		return p
	}
	return &packBuffers{
		a:    make([]float32, blockK*ceilDiv(blockM, kern.mr)*kern.mr),
		b:    make([]float32, blockK*ceilDiv(blockN, kern.nr)*kern.nr),
		tile: make([]float32, kern.mr*kern.nr),
	}
}

// gemmSerial runs the blocked algorithm on one goroutine.
func gemmSerial(kern *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if beta != 0 && beta != 1 {
		for i := range m {
			scaleRow(c[i*ldc:i*ldc+n], beta)
		}
	}
	bufs := getPackBuffers(kern)
	mr, nr := kern.mr, kern.nr
	for j0 := 0; j0 < n; j0 += blockN {
		nc := min(blockN, n-j0)
		for p0 := 0; p0 < k; p0 += blockK {
			kc := min(blockK, k-p0)
			// C is overwritten by the first slice of k when beta is 0 (so
			// NaN in C never reaches the result) and accumulated into after.
			accumulate := p0 > 0 || beta != 0
			packB(bufs.b, transB, b, ldb, p0, kc, j0, nc, nr)
			for i0 := 0; i0 < m; i0 += blockM {
				mc := min(blockM, m-i0)
				packA(bufs.a, transA, a, lda, i0, mc, p0, kc, mr, alpha)
				for jr := 0; jr < nc; jr += nr {
					bp := bufs.b[jr*kc : (jr+nr)*kc]
					cols := min(nr, nc-jr)
					for ir := 0; ir < mc; ir += mr {
						ap := bufs.a[ir*kc : (ir+mr)*kc]
						rows := min(mr, mc-ir)
						cOff := (i0+ir)*ldc + j0 + jr
						if rows == mr && cols == nr {
							kern.full(kc, ap, bp, c[cOff:], ldc, accumulate)
							continue
						}
						// A ragged edge: compute the whole tile aside, then
						// write only the part inside C.
						kern.full(kc, ap, bp, bufs.tile, nr, false)
						for r := range rows {
							dst := c[cOff+r*ldc : cOff+r*ldc+cols]
							src := bufs.tile[r*nr : r*nr+cols]
							if accumulate {
								for j, v := range src {
									dst[j] += v
								}
							} else {
								copy(dst, src)
							}
						}
					}
				}
			}
		}
	}
	packPool.Put(bufs)
}

// packA copies alpha·op(A)[i0:i0+mc, p0:p0+kc] into panels of mr rows: panel
// q holds, for each p, the mr values of column p (rows past mc are zero).
func packA(dst []float32, transA bool, a []float32, lda, i0, mc, p0, kc, mr int, alpha float32) {
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kc : (ir+mr)*kc]
		rows := min(mr, mc-ir)
		if rows < mr {
			clear(panel)
		}
		if transA {
			// op(A)[i, p] = a[p*lda+i]: each p reads rows contiguous values.
			for p := range kc {
				src := a[(p0+p)*lda+i0+ir:]
				src = src[:rows]
				d := panel[p*mr : p*mr+rows]
				if alpha == 1 {
					copy(d, src)
				} else {
					for r, v := range src {
						d[r] = alpha * v
					}
				}
			}
			continue
		}
		for r := range rows {
			src := a[(i0+ir+r)*lda+p0:]
			src = src[:kc]
			for p, v := range src {
				panel[p*mr+r] = alpha * v
			}
		}
	}
}

// packB copies op(B)[p0:p0+kc, j0:j0+nc] into panels of nr columns: panel q
// holds, for each p, the nr values of row p (columns past nc are zero).
func packB(dst []float32, transB bool, b []float32, ldb, p0, kc, j0, nc, nr int) {
	for jr := 0; jr < nc; jr += nr {
		panel := dst[jr*kc : (jr+nr)*kc]
		cols := min(nr, nc-jr)
		if cols < nr {
			clear(panel)
		}
		if !transB {
			for p := range kc {
				src := b[(p0+p)*ldb+j0+jr:]
				copy(panel[p*nr:p*nr+cols], src[:cols])
			}
			continue
		}
		// op(B)[p, j] = b[j*ldb+p]: each column is a contiguous row of b.
		for j := range cols {
			src := b[(j0+jr+j)*ldb+p0:]
			src = src[:kc]
			for p, v := range src {
				panel[p*nr+j] = v
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
