// Package parallel owns the one way eft's CPU stages spread a loop over
// cores: goroutines claim consecutive ranges of the iterations from a
// shared counter until none is left, so a slow range never leaves the other
// cores idle and no goroutine is started for nothing.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Chunks runs body over [0, n) in ranges [lo, hi) of at most chunk
// iterations, claimed in order by up to workers goroutines (GOMAXPROCS when
// workers <= 0; never more than there are ranges), and returns when every
// claimed range is done. worker, in [0, workers), names the goroutine
// running body, for scratch of its own. A body that returns false stops
// every goroutine from claiming further ranges (the ones running finish).
// With one worker (or one range) body runs on the calling goroutine.
func Chunks(n, chunk, workers int, body func(worker, lo, hi int) bool) {
	if n <= 0 {
		return
	}
	chunk = max(chunk, 1)
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, (n+chunk-1)/chunk)
	var next atomic.Int64
	var stopped atomic.Bool
	run := func(worker int) {
		for !stopped.Load() {
			lo := int(next.Add(int64(chunk))) - chunk
			if lo >= n {
				return
			}
			if !body(worker, lo, min(lo+chunk, n)) {
				stopped.Store(true)
			}
		}
	}
	if workers == 1 {
		run(0)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { run(w) })
	}
	wg.Wait()
}
