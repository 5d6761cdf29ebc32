package cpu

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// CPU runs ops on the host with up to Workers goroutines each.
type CPU struct {
	workers int
	// scratch[w] is worker w's reusable buffer (attention score blocks,
	// partial sums); it grows to the largest size asked for and stays.
	scratch [][]float32
	partial []float64
}

var _ backend.Backend = (*CPU)(nil)

// New returns a CPU backend using workers goroutines per op (GOMAXPROCS when
// workers <= 0).
func New(workers int) *CPU {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &CPU{workers: workers, scratch: make([][]float32, workers), partial: make([]float64, workers)}
}

// Name implements backend.Backend.
func (c *CPU) Name() string { return "cpu" }

// Workers is the number of goroutines an op uses.
func (c *CPU) Workers() int { return c.workers }

// parallel splits [0,n) into at most c.workers contiguous chunks of at least
// grain items and runs fn on each, the last chunk on the calling goroutine.
func (c *CPU) parallel(n, grain int, fn func(worker, lo, hi int)) {
	if n <= 0 {
		return
	}
	chunks := c.workers
	if grain < 1 {
		grain = 1
	}
	if maxChunks := (n + grain - 1) / grain; chunks > maxChunks {
		chunks = maxChunks
	}
	if chunks <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(chunks - 1)
	for w := 0; w < chunks-1; w++ {
		lo, hi := w*n/chunks, (w+1)*n/chunks
		go func() {
			defer wg.Done()
			fn(w, lo, hi)
		}()
	}
	fn(chunks-1, (chunks-1)*n/chunks, n)
	wg.Wait()
}

// scratchFor returns worker w's scratch buffer with at least n floats.
func (c *CPU) scratchFor(w, n int) []float32 {
	if len(c.scratch[w]) < n {
		c.scratch[w] = make([]float32, n)
	}
	return c.scratch[w][:n]
}

func checkLen(op string, a, b *tensor.Tensor) {
	if a.Len() != b.Len() {
		panic(fmt.Sprintf("cpu.%s: %v and %v differ in size", op, a, b))
	}
}

// Alloc implements backend.Backend.
func (c *CPU) Alloc(shape ...int) *tensor.Tensor { return tensor.New(shape...) }

// Upload implements backend.Backend.
func (c *CPU) Upload(t *tensor.Tensor, src []float32) {
	if len(src) != t.Len() {
		panic(fmt.Sprintf("cpu.Upload: %d values into %v", len(src), t))
	}
	copy(t.F32, src)
}

// Download implements backend.Backend.
func (c *CPU) Download(dst []float32, t *tensor.Tensor) {
	if len(dst) != t.Len() {
		panic(fmt.Sprintf("cpu.Download: %v into %d values", t, len(dst)))
	}
	copy(dst, t.F32)
}

// Zero implements backend.Backend.
func (c *CPU) Zero(t *tensor.Tensor) { clear(t.F32) }

// Copy implements backend.Backend.
func (c *CPU) Copy(dst, src *tensor.Tensor) {
	checkLen("Copy", dst, src)
	copy(dst.F32, src.F32)
}

const elementGrain = 1 << 14

// Add implements backend.Backend.
func (c *CPU) Add(dst, src *tensor.Tensor, alpha float32) {
	checkLen("Add", dst, src)
	d, s := dst.F32, src.F32
	c.parallel(len(d), elementGrain, func(_, lo, hi int) {
		d, s := d[lo:hi], s[lo:hi]
		if alpha == 1 {
			for i := range d {
				d[i] += s[i]
			}
			return
		}
		for i := range d {
			d[i] += alpha * s[i]
		}
	})
}

// Scale implements backend.Backend.
func (c *CPU) Scale(t *tensor.Tensor, s float32) {
	d := t.F32
	c.parallel(len(d), elementGrain, func(_, lo, hi int) {
		for i := range d[lo:hi] {
			d[lo+i] *= s
		}
	})
}

// SumSquares implements backend.Backend.
func (c *CPU) SumSquares(t *tensor.Tensor) float64 {
	d := t.F32
	var sum float64
	for _, v := range d {
		sum += float64(v) * float64(v)
	}
	return sum
}

// Mul implements backend.Backend.
func (c *CPU) Mul(dst, a, b *tensor.Tensor, accumulate bool) {
	checkLen("Mul", dst, a)
	checkLen("Mul", dst, b)
	d, x, y := dst.F32, a.F32, b.F32
	c.parallel(len(d), elementGrain, func(_, lo, hi int) {
		if accumulate {
			for i := lo; i < hi; i++ {
				d[i] += x[i] * y[i]
			}
			return
		}
		for i := lo; i < hi; i++ {
			d[i] = x[i] * y[i]
		}
	})
}

// exp32 is e^x in float32 to about 2 ulp: range reduction by ln 2 and a
// degree-6 polynomial. Softmax, cross-entropy and SiLU spend most of their
// time here; math.Exp's float64 path is several times slower.
func exp32(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693145751953125
		ln2lo = 1.42860682030941723212e-6
		round = 12582912 // 1.5·2²³: adding it rounds a float32 to an integer
	)
	if x < -87.3 { // also -Inf: underflows to 0
		return 0
	}
	if x > 88 { // 2^n would leave float32's exponent range below
		return float32(math.Exp(float64(x)))
	}
	n := (x*log2e + round) - round
	r := x - n*ln2hi - n*ln2lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}
