package parallel

import (
	"sync/atomic"
	"testing"
)

// TestChunksCoversEachIterationOnce: every iteration of [0, n) runs exactly
// once, in ranges of at most chunk, on worker indices below the worker
// count, for counts that do and do not divide evenly, more workers than
// ranges included.
func TestChunksCoversEachIterationOnce(t *testing.T) {
	for _, c := range []struct{ n, chunk, workers int }{
		{0, 4, 3}, {1, 4, 3}, {10, 3, 2}, {1000, 7, 4}, {64, 64, 8}, {100, 1, 0}, {5, 0, 2},
	} {
		seen := make([]atomic.Int32, c.n)
		var bad atomic.Bool
		limit := c.workers
		if limit <= 0 {
			limit = 1 << 30
		}
		Chunks(c.n, c.chunk, c.workers, func(worker, lo, hi int) bool {
			if worker < 0 || worker >= limit || lo >= hi || hi-lo > max(c.chunk, 1) || hi > c.n {
				bad.Store(true)
			}
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
			return true
		})
		if bad.Load() {
			t.Fatalf("%+v: a range or worker out of bounds", c)
		}
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Fatalf("%+v: iteration %d ran %d times", c, i, got)
			}
		}
	}
}

// TestChunksStops: once a body returns false no further range is claimed,
// so with one worker the ranges stop right there.
func TestChunksStops(t *testing.T) {
	var ran []int
	Chunks(100, 10, 1, func(_, lo, _ int) bool {
		ran = append(ran, lo)
		return lo < 30
	})
	if len(ran) != 4 || ran[3] != 30 {
		t.Fatalf("ranges run: %v, want 0 10 20 30", ran)
	}
	// With several workers, each may have claimed one range before it sees
	// the stop: at most workers-1 bodies start after the stopping one.
	var stopping atomic.Bool
	var late atomic.Int32
	Chunks(1000, 1, 4, func(_, lo, _ int) bool {
		if stopping.Load() {
			late.Add(1)
		}
		if lo == 500 {
			stopping.Store(true)
			return false
		}
		return true
	})
	if n := late.Load(); n > 3 {
		t.Fatalf("%d bodies started after the one that stopped, with four workers", n)
	}
}
