package blas

import (
	"sync"
	"sync/atomic"
)

// The pure-Go GEMM follows the BLIS/GotoBLAS plan: a kc-deep slice of op(B)
// is packed into column panels nr wide and a block of op(A) into row panels
// mr tall, and a register-blocked micro-kernel multiplies one A panel by one
// B panel into an mr×nr tile of C. Packing makes the kernel's reads
// sequential and cache-resident whatever the transposes and strides; it is
// skipped where an operand is used too few times to repay the copy (the
// kernel reads A through any strides and B through any row stride).
//
// Blocking (elements):
//   - blockK: a B micro-panel (kc×nr) and an A micro-panel (mr×kc) stay in
//     L1 while the kernel runs;
//   - blockM: the packed A block (mc×kc) stays in L2 while every B panel of
//     the block passes through;
//   - blockN: the packed B block (kc×nc) stays in L2/L3.
const (
	blockK = 256
	blockM = 144
	blockN = 2048
)

// minParallelFlops is the work each worker must get for splitting a
// product to pay: waking a helper on an idle core takes tens of
// microseconds, and a product this size (~80 µs on one core) is already
// often run side by side with others (the engine's attention blocks). In
// the engine's LoRA step with Sgemm, 1<<23 beat 1<<21 in each of three
// interleaved runs (by 4-13 %). A variable so that tests can split small
// products.
var minParallelFlops float64 = 1 << 23

const (
	// tasksPerWorker is how many pieces of C each worker gets on average:
	// workers claim pieces as they finish, so a worker slowed down by
	// another process on its core costs at most a piece, not half the
	// product. Each piece packs its own B (and A) blocks, so more pieces
	// repeat more packing: on an idle machine 4 beat 8 on most engine
	// shapes (deep-k backward products 160 -> 185 GFLOP/s on 2 cores).
	tasksPerWorker = 4
	// minTaskFlops keeps pieces big enough to repay their packing.
	minTaskFlops = 1 << 20
	// packAMinPanels is how many B panels a transposed A block must meet
	// before packing it pays; with fewer (C a few columns wide, as in
	// LoRA's rank-16 products or attention's key gradient) the kernel
	// reads it in place. An untransposed A is always read in place: its
	// rows stream well and packing them (a transpose) cost more than it
	// saved on every shape measured.
	packAMinPanels = 8
	// packBMinPanels is the same for an untransposed B and the A panels it
	// meets (attention's p·v: 64 rows, in place). A transposed B is always
	// packed: its columns are strided.
	packBMinPanels = 16
)

// goSgemm is the pure-Go GEMM. Sizes and slices are already checked.
func goSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gemmWith(activeKernel, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// view is a matrix in a slice: element (r, c) is data[r*rs + c*cs].
type view struct {
	data   []float32
	rs, cs int
}

func (v view) at(r, c int) []float32 { return v.data[r*v.rs+c*v.cs:] }

// gemmJob is one product, cut into taskM×taskN pieces of C that workers
// claim in turn. Pieces are independent: each worker packs what its piece
// needs, so the only synchronisation is the counter and the final join.
type gemmJob struct {
	kern         *kernel
	m, n, k      int
	a, b         view // op(A) is m×k, op(B) is k×n
	alpha, beta  float32
	c            []float32
	ldc          int
	kc           int // depth of a k slice: k split evenly into slices of at most blockK
	taskM, taskN int
	tilesN       int // pieces per row of pieces
	tasks        int
	next         atomic.Int64   // the next piece to claim
	helpers      sync.WaitGroup // helper goroutines working on this job
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
	job := jobs.Get().(*gemmJob)
	defer jobs.Put(job)
	job.reset(kern, m, n, k, alpha, beta, c, ldc)
	job.a, job.b = view{a, lda, 1}, view{b, ldb, 1}
	if transA {
		job.a = view{a, 1, lda}
	}
	if transB {
		job.b = view{b, 1, ldb}
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	workers := min(Threads(), max(1, int(flops/minParallelFlops)))
	job.plan(workers, flops)
	workers = min(workers, job.tasks)
	for range workers - 1 {
		job.helpers.Add(1)
		select {
		case idleHelpers <- job:
		default:
			go helper(job)
		}
	}
	job.work()
	job.helpers.Wait()
}

// idleHelpers hands a job to a helper goroutine waiting for one. Helpers
// are started when none is idle and then stay, parked on this channel, so a
// product starts no goroutine and allocates nothing once warm. A helper
// that arrives after the pieces are gone just reports back.
var idleHelpers = make(chan *gemmJob)

func helper(job *gemmJob) {
	for {
		job.work()
		job.helpers.Done()
		job = <-idleHelpers
	}
}

// jobs recycles gemmJobs so that a product allocates nothing once warm.
var jobs = sync.Pool{New: func() any { return new(gemmJob) }}

func (g *gemmJob) reset(kern *kernel, m, n, k int, alpha, beta float32, c []float32, ldc int) {
	g.kern, g.m, g.n, g.k = kern, m, n, k
	g.alpha, g.beta, g.c, g.ldc = alpha, beta, c, ldc
	g.next.Store(0)
}

// plan cuts C into pieces: whole when one worker runs it (but at most
// blockN columns wide), else about tasksPerWorker pieces per worker, halving
// whichever side is longer so that the packing each piece repeats (its B
// block for every row split, its A block for every column split) stays
// small against its arithmetic.
func (g *gemmJob) plan(workers int, flops float64) {
	mr, nr := g.kern.mr, g.kern.nr
	// Even splits: k = 257 as 129+128 rather than 256+1, which would run the
	// kernel's fixed costs and a whole pass over C for one step of k. The
	// k slices depend on k alone, so every element of C is summed in the
	// same order whatever m, n and the pieces are.
	g.kc = ceilDiv(g.k, ceilDiv(g.k, blockK))
	splitsM, splitsN := 1, ceilDiv(g.n, blockN)
	target := 1
	if workers > 1 {
		target = min(workers*tasksPerWorker, max(workers, int(flops/minTaskFlops)))
	}
	for splitsM*splitsN < target {
		rows, cols := ceilDiv(g.m, splitsM), ceilDiv(g.n, splitsN)
		switch {
		case rows >= cols && rows >= 2*mr:
			splitsM *= 2
		case cols >= 2*nr:
			splitsN *= 2
		case rows >= 2*mr:
			splitsM *= 2
		default:
			target = 0 // both sides down to one panel
		}
	}
	g.taskM = roundUp(ceilDiv(g.m, splitsM), mr)
	g.taskN = roundUp(ceilDiv(g.n, splitsN), nr)
	g.tilesN = ceilDiv(g.n, g.taskN)
	g.tasks = ceilDiv(g.m, g.taskM) * g.tilesN
}

// work claims and runs pieces until none is left.
func (g *gemmJob) work() {
	var ws *workspace
	for {
		t := int(g.next.Add(1) - 1)
		if t >= g.tasks {
			break
		}
		if ws == nil {
			ws = getWorkspace()
		}
		i0, j0 := t/g.tilesN*g.taskM, t%g.tilesN*g.taskN
		g.piece(ws, i0, min(i0+g.taskM, g.m), j0, min(j0+g.taskN, g.n))
	}
	if ws != nil {
		putWorkspace(ws)
	}
}

// workspace is one worker's packing memory, reused across calls.
type workspace struct {
	a, b         []float32 // packed blocks of A and B
	aEdge, bEdge []float32 // a ragged A or B panel of an operand used in place, zero-padded
	tile         []float32 // a ragged tile of C
}

// workspaces keeps released workspaces. Not a sync.Pool: that is emptied
// at every garbage collection, and refilling a megabyte-sized pack buffer
// after each one showed up as kilobytes allocated per product.
var workspaces struct {
	sync.Mutex
	free []*workspace
}

// maxFreeWorkspaces bounds the memory kept (a workspace holds up to
// ~2.3 MB) when many goroutines have multiplied at once.
const maxFreeWorkspaces = 16

func getWorkspace() *workspace {
	workspaces.Lock()
	defer workspaces.Unlock()
	if n := len(workspaces.free); n > 0 {
		ws := workspaces.free[n-1]
		workspaces.free = workspaces.free[:n-1]
		return ws
	}
	return new(workspace)
}

func putWorkspace(ws *workspace) {
	workspaces.Lock()
	defer workspaces.Unlock()
	if len(workspaces.free) < maxFreeWorkspaces {
		workspaces.free = append(workspaces.free, ws)
	}
}

// grow returns buf with at least n elements.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// piece computes C[i0:i1, j0:j1].
func (g *gemmJob) piece(ws *workspace, i0, i1, j0, j1 int) {
	kern := g.kern
	mr, nr := kern.mr, kern.nr
	nc := j1 - j0
	if g.beta != 0 && g.beta != 1 {
		for i := i0; i < i1; i++ {
			scaleRow(g.c[i*g.ldc+j0:i*g.ldc+j1], g.beta)
		}
	}
	packA := g.a.cs != 1 && ceilDiv(nc, nr) >= packAMinPanels
	packB := g.b.cs != 1 || ceilDiv(i1-i0, mr) >= packBMinPanels
	ws.tile = grow(ws.tile, mr*nr)
	for p0 := 0; p0 < g.k; p0 += g.kc {
		kc := min(g.kc, g.k-p0)
		// C is overwritten by the first slice of k when beta is 0 (so NaN
		// in C never reaches the result) and accumulated into after.
		accumulate := p0 > 0 || g.beta != 0
		// bPanel(jr) is the B panel of columns j0+jr.., as (slice, row stride).
		var bBlock []float32
		bEdgeAt := -1
		if packB {
			ws.b = grow(ws.b, kc*roundUp(nc, nr))
			bBlock = ws.b
			packPanelsB(kern, bBlock, g.b, p0, kc, j0, nc)
		} else if rem := nc % nr; rem != 0 {
			bEdgeAt = nc - rem
			ws.bEdge = grow(ws.bEdge, kc*nr)
			packPanelsB(kern, ws.bEdge, g.b, p0, kc, j0+bEdgeAt, rem)
		}
		mcStep := roundUp(ceilDiv(i1-i0, ceilDiv(i1-i0, blockM)), mr)
		for ic := i0; ic < i1; ic += mcStep {
			mc := min(mcStep, i1-ic)
			aEdgeAt := -1
			if packA {
				ws.a = grow(ws.a, kc*roundUp(mc, mr))
				packPanelsA(kern, ws.a, g.a, ic, mc, p0, kc)
			} else if rem := mc % mr; rem != 0 {
				aEdgeAt = mc - rem
				ws.aEdge = grow(ws.aEdge, kc*mr)
				packPanelsA(kern, ws.aEdge, g.a, ic+aEdgeAt, rem, p0, kc)
			}
			for jr := 0; jr < nc; jr += nr {
				cols := min(nr, nc-jr)
				bp, ldbp := ws.bEdge, nr
				switch {
				case packB:
					bp = bBlock[jr*kc:]
				case jr != bEdgeAt:
					bp, ldbp = g.b.at(p0, j0+jr), g.b.rs
				}
				for ir := 0; ir < mc; ir += mr {
					rows := min(mr, mc-ir)
					ap, rsA, csA := ws.aEdge, 1, mr
					switch {
					case packA:
						ap = ws.a[ir*kc:]
					case ir != aEdgeAt:
						ap, rsA, csA = g.a.at(ic+ir, p0), g.a.rs, g.a.cs
					}
					cOff := (ic+ir)*g.ldc + j0 + jr
					if rows == mr && cols == nr {
						kern.tile(kc, ap, rsA, csA, bp, ldbp, g.c[cOff:], g.ldc, g.alpha, accumulate)
						continue
					}
					// A ragged edge: run the kernel on a copy of the tile
					// (the same arithmetic as a full one), then write back
					// only the part inside C.
					tile := ws.tile
					if accumulate {
						clear(tile)
						for r := range rows {
							copy(tile[r*nr:r*nr+cols], g.c[cOff+r*g.ldc:])
						}
					}
					kern.tile(kc, ap, rsA, csA, bp, ldbp, tile, nr, g.alpha, accumulate)
					for r := range rows {
						copy(g.c[cOff+r*g.ldc:cOff+r*g.ldc+cols], tile[r*nr:])
					}
				}
			}
		}
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// packPanelsA copies op(A)[i0:i0+mc, p0:p0+kc] into panels of mr rows:
// panel q holds, for each p, the mr values of column p (rows past mc are
// zero).
func packPanelsA(kern *kernel, dst []float32, a view, i0, mc, p0, kc int) {
	mr := kern.mr
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kc : (ir+mr)*kc]
		rows := min(mr, mc-ir)
		if rows < mr {
			clear(panel)
		}
		if a.rs == 1 && rows == mr {
			// Transposed A: each column's rows are contiguous.
			kern.packCols(panel, a.at(i0+ir, p0), a.cs, kc)
			continue
		}
		if a.rs == 1 {
			// The same for a ragged panel.
			for p := range kc {
				copy(panel[p*mr:p*mr+rows], a.at(i0+ir, p0+p)[:rows])
			}
			continue
		}
		for r := range rows {
			src := a.at(i0+ir+r, p0)[:kc]
			for p, v := range src {
				panel[p*mr+r] = v
			}
		}
	}
}

// packPanelsB copies op(B)[p0:p0+kc, j0:j0+nc] into panels of nr columns:
// panel q holds, for each p, the nr values of row p (columns past nc are
// zero).
func packPanelsB(kern *kernel, dst []float32, b view, p0, kc, j0, nc int) {
	nr := kern.nr
	for jr := 0; jr < nc; jr += nr {
		panel := dst[jr*kc : (jr+nr)*kc]
		cols := min(nr, nc-jr)
		if cols < nr {
			clear(panel)
		}
		if b.cs == 1 {
			for p := range kc {
				copy(panel[p*nr:p*nr+cols], b.at(p0+p, j0+jr)[:cols])
			}
			continue
		}
		// Transposed B: each column is a contiguous row of b.
		if cols == nr {
			kern.packTransposed(panel, b.at(p0, j0+jr), b.cs, kc)
			continue
		}
		for j := range cols {
			src := b.at(p0, j0+jr+j)[:kc]
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
