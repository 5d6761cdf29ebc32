package blas

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Peak is the GEMM throughput this process reaches on this machine, the
// yardstick for "achieved vs GEMM peak" figures.
type Peak struct {
	GFLOPS         float64 // best of the timed products
	Implementation string  // as Implementation()
	Threads        int     // as Threads()
	Size           int     // the products were Size×Size×Size
	Runs           int     // how many were timed
}

func (p Peak) String() string {
	return fmt.Sprintf("%.1f GFLOP/s (%s, %d threads, best of %d %d³ products)",
		p.GFLOPS, p.Implementation, p.Threads, p.Runs, p.Size)
}

// peakSize is large enough for every implementation to reach its plateau
// (see docs/blas.md) and small enough to time in a few milliseconds.
const peakSize = 1024

// MeasurePeak times square single-precision products through Sgemm for
// about budget (at least 3 runs after a warm-up) and reports the fastest:
// on a shared machine the best run is the one least disturbed by others.
// A budget of 0 means half a second.
func MeasurePeak(budget time.Duration) Peak {
	if budget <= 0 {
		budget = 500 * time.Millisecond
	}
	const n = peakSize
	r := rand.New(rand.NewPCG(1, 1))
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = float32(r.NormFloat64())
		b[i] = float32(r.NormFloat64())
	}
	Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n) // warm-up: load, page in, pack buffers
	best := time.Duration(1<<63 - 1)
	runs := 0
	for start := time.Now(); runs < 3 || time.Since(start) < budget; runs++ {
		t0 := time.Now()
		Sgemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		best = min(best, time.Since(t0))
	}
	return Peak{
		GFLOPS:         2 * n * n * n / best.Seconds() / 1e9,
		Implementation: Implementation(),
		Threads:        Threads(),
		Size:           n,
		Runs:           runs,
	}
}
