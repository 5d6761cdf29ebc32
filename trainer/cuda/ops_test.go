package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/tensor"
)

// Every op is held against its CPU twin (trainer/cpu), forward and
// backward, on each backend under test: the real GPU when there is one
// (device 0), and the emulator (testdata/emu) when g++ is here. Tolerances:
// with PrecisionFP32 1e-5 of the largest magnitude (float32 sums in another
// order; 1e-4 for whole models, as the HF fixtures state); with
// PrecisionBF16 products read bf16 inputs (8 bits of mantissa), so 2e-2.
const (
	tolFP32 = 1e-5
	tolBF16 = 2e-2
)

type underTest struct {
	name string
	b    *Backend
	tol  float64
}

var gpuUnderTest struct {
	checked bool
	b       map[Precision]*Backend
	err     error
}

// gpuBackend returns the real device 0 in precision p, or nil with the
// reason when there is none (opened once per test binary).
func gpuBackend(p Precision) (*Backend, error) {
	if !gpuUnderTest.checked {
		gpuUnderTest.checked = true
		gpuUnderTest.b = map[Precision]*Backend{}
		if os.Getenv("EFT_CUDA_SKIP_GPU") != "" {
			gpuUnderTest.err = fmt.Errorf("EFT_CUDA_SKIP_GPU is set")
		} else if gpuUnderTest.err = Available(); gpuUnderTest.err == nil {
			for _, pr := range []Precision{PrecisionFP32, PrecisionBF16} {
				b, err := New(Options{Precision: pr})
				if err != nil {
					gpuUnderTest.err = err
					break
				}
				gpuUnderTest.b[pr] = b
			}
		}
	}
	return gpuUnderTest.b[p], gpuUnderTest.err
}

// backendsUnderTest lists the GPU (when present) and the emulator in
// precision p; it skips the test when neither is available.
func backendsUnderTest(t *testing.T, p Precision) []underTest {
	t.Helper()
	tol := tolFP32
	if p == PrecisionBF16 {
		tol = tolBF16
	}
	var out []underTest
	if b, err := gpuBackend(p); b != nil {
		out = append(out, underTest{"gpu", b, tol})
	} else {
		t.Logf("no GPU: %v", err)
	}
	if os.Getenv("EFT_CUDA_SKIP_EMULATOR") == "" {
		out = append(out, underTest{"emulator", newEmulated(t, p), tol})
	}
	if len(out) == 0 {
		t.Skip("neither a GPU nor the emulator to test on")
	}
	return out
}

func randomVals(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// pair is one tensor on the CPU backend and its copy on the device.
type pair struct {
	h, d *tensor.Tensor
}

func newPair(b *Backend, vals []float32, shape ...int) pair {
	h := tensor.New(shape...)
	copy(h.F32, vals)
	d := b.Alloc(shape...)
	b.Upload(d, vals)
	return pair{h, d}
}

func randPair(b *Backend, rng *rand.Rand, shape ...int) pair {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return newPair(b, randomVals(rng, n, 1), shape...)
}

func download(b *Backend, t *tensor.Tensor) []float32 {
	out := make([]float32, t.Len())
	b.Download(out, t)
	return out
}

// near fails the test when got differs from want by more than tol times
// want's largest magnitude (or tol, for small tensors).
func near(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, w := range want {
		scale = max(scale, math.Abs(float64(w)))
	}
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol*scale || math.IsNaN(worst) {
		t.Errorf("%s: differs by %.3g at %d (got %g, want %g; tolerance %.2g of %.3g)", what, worst, at, got[at], want[at], tol, scale)
	}
}

func (p pair) check(t *testing.T, b *Backend, what string, tol float64) {
	t.Helper()
	near(t, what, download(b, p.d), p.h.F32, tol)
}

func forEach(t *testing.T, p Precision, fn func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand)) {
	for _, u := range backendsUnderTest(t, p) {
		t.Run(u.name, func(t *testing.T) { fn(t, u, cpu.New(1), rand.New(rand.NewPCG(7, 11))) })
	}
}

func TestElementwiseOps(t *testing.T) {
	forEach(t, PrecisionFP32, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
		b := u.b
		x, y, z := randPair(b, rng, 37, 29), randPair(b, rng, 37, 29), randPair(b, rng, 37, 29)
		c.Add(x.h, y.h, -0.5)
		b.Add(x.d, y.d, -0.5)
		x.check(t, b, "Add", u.tol)
		c.Scale(x.h, 3)
		b.Scale(x.d, 3)
		x.check(t, b, "Scale", u.tol)
		c.Mul(z.h, x.h, y.h, true)
		b.Mul(z.d, x.d, y.d, true)
		z.check(t, b, "Mul accumulate", u.tol)
		c.Mul(z.h, x.h, y.h, false)
		b.Mul(z.d, x.d, y.d, false)
		z.check(t, b, "Mul", u.tol)
		if got, want := b.SumSquares(z.d), c.SumSquares(z.h); math.Abs(got-want) > 1e-9*want {
			t.Errorf("SumSquares %v, want %v", got, want)
		}
		c.Copy(x.h, z.h)
		b.Copy(x.d, z.d)
		x.check(t, b, "Copy", 0)
		b.Zero(x.d)
		near(t, "Zero", download(b, x.d), make([]float32, x.h.Len()), 0)
		// A view at an offset reads and writes only its rows.
		var hv, dv tensor.Tensor
		c.Scale(z.h.SliceRows(&hv, 5, 9), -2)
		b.Scale(z.d.SliceRows(&dv, 5, 9), -2)
		z.check(t, b, "Scale of rows 5..9", u.tol)
	})
}

func TestMatMulAgainstCPU(t *testing.T) {
	for _, p := range []Precision{PrecisionFP32, PrecisionBF16} {
		t.Run(p.String(), func(t *testing.T) {
			forEach(t, p, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
				b := u.b
				m, n, k := 13, 17, 40
				for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
					ash, bsh := []int{m, k}, []int{k, n}
					if tr[0] {
						ash = []int{k, m}
					}
					if tr[1] {
						bsh = []int{n, k}
					}
					a, bm, cc := randPair(b, rng, ash...), randPair(b, rng, bsh...), randPair(b, rng, m, n)
					c.MatMul(cc.h, a.h, bm.h, tr[0], tr[1], 0.75, 0.5)
					b.MatMul(cc.d, a.d, bm.d, tr[0], tr[1], 0.75, 0.5)
					cc.check(t, b, fmt.Sprintf("MatMul transA=%v transB=%v", tr[0], tr[1]), u.tol)
				}
				a, bm, cc := randPair(b, rng, 3, m, k), randPair(b, rng, 3, n, k), randPair(b, rng, 3, m, n)
				c.BatchedMatMul(cc.h, a.h, bm.h, false, true, 1, 0)
				b.BatchedMatMul(cc.d, a.d, bm.d, false, true, 1, 0)
				cc.check(t, b, "BatchedMatMul", u.tol)

				// A bf16 (frozen) weight as B, and a bf16 weight as C (merge).
				w := randPair(b, rng, n, k)
				roundBF16(w.h.F32)
				wb := b.allocBF16(n, k)
				b.Copy(wb, w.d)
				x, y := randPair(b, rng, m, k), randPair(b, rng, m, n)
				c.MatMul(y.h, x.h, w.h, false, true, 1, 0)
				b.MatMul(y.d, x.d, wb, false, true, 1, 0)
				y.check(t, b, "MatMul with a bf16 weight", u.tol)
				lb, la := randPair(b, rng, n, 4), randPair(b, rng, 4, k)
				c.MatMul(w.h, lb.h, la.h, false, false, 0.5, 1)
				b.MatMul(wb, lb.d, la.d, false, false, 0.5, 1)
				near(t, "MatMul into a bf16 weight", download(b, wb), w.h.F32, 1e-2)
			})
		})
	}
}

func roundBF16(v []float32) {
	for i, x := range v {
		v[i] = fromBits(toBF16([]float32{x}))
	}
}

func fromBits(b []uint16) float32 {
	out := make([]float32, 1)
	fromBF16(out, b)
	return out[0]
}

// allocBF16 is a zeroed bf16 device tensor (tests only; the backend makes
// them with StoreFrozenBF16).
func (b *Backend) allocBF16(shape ...int) *tensor.Tensor {
	n := 1
	for _, s := range shape {
		n *= s
	}
	var t *tensor.Tensor
	b.ex.do(func() {
		buf := b.allocBuffer(2 * n)
		b.must(b.g.memset32(buf.ptr, 0, (n+1)/2))
		t = tensor.OnDevice(tensor.BF16, buf, shape...)
	})
	return t
}

func TestBiasEmbeddingNormOps(t *testing.T) {
	forEach(t, PrecisionFP32, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
		b := u.b
		y, bias := randPair(b, rng, 70, 33), randPair(b, rng, 33)
		c.AddBias(y.h, bias.h)
		b.AddBias(y.d, bias.d)
		y.check(t, b, "AddBias", u.tol)
		c.BiasBackward(bias.h, y.h)
		b.BiasBackward(bias.d, y.d)
		bias.check(t, b, "BiasBackward", u.tol)

		table, out := randPair(b, rng, 50, 24), randPair(b, rng, 9, 24)
		ids := []int32{3, 0, 49, 3, 7, 3, 12, 0, 48}
		c.Embedding(out.h, table.h, ids)
		b.Embedding(out.d, table.d, ids)
		out.check(t, b, "Embedding", 0)
		c.EmbeddingBackward(table.h, out.h, ids)
		b.EmbeddingBackward(table.d, out.d, ids)
		table.check(t, b, "EmbeddingBackward (repeated ids)", u.tol)
		roundBF16(table.h.F32)
		tb := b.allocBF16(50, 24)
		b.Copy(tb, table.d)
		c.Embedding(out.h, table.h, ids)
		b.Embedding(out.d, tb, ids)
		out.check(t, b, "Embedding from a bf16 table", 0)

		for _, d := range []int{64, 300, 16} { // wide rows, odd widths, per-head norms of [tokens, 4·16]
			rows := 11
			if d == 16 {
				rows = 11 * 4
			}
			x, w, o, rs := randPair(b, rng, rows, d), randPair(b, rng, d), randPair(b, rng, rows, d), randPair(b, rng, rows)
			c.RMSNorm(o.h, rs.h, x.h, w.h, 1e-5)
			b.RMSNorm(o.d, rs.d, x.d, w.d, 1e-5)
			o.check(t, b, fmt.Sprintf("RMSNorm d=%d", d), u.tol)
			rs.check(t, b, fmt.Sprintf("RMSNorm rstd d=%d", d), u.tol)
			dx, dw, dout := randPair(b, rng, rows, d), randPair(b, rng, d), randPair(b, rng, rows, d)
			c.RMSNormBackward(dx.h, dw.h, dout.h, x.h, w.h, rs.h)
			b.RMSNormBackward(dx.d, dw.d, dout.d, x.d, w.d, rs.d)
			dx.check(t, b, fmt.Sprintf("RMSNormBackward dx d=%d", d), u.tol)
			dw.check(t, b, fmt.Sprintf("RMSNormBackward dw d=%d", d), u.tol)
			c.RMSNormBackward(dx.h, nil, dout.h, x.h, w.h, rs.h)
			b.RMSNormBackward(dx.d, nil, dout.d, x.d, w.d, rs.d)
			dx.check(t, b, "RMSNormBackward without dw", u.tol)
		}
	})
}

func TestRoPEAgainstCPU(t *testing.T) {
	forEach(t, PrecisionFP32, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
		b := u.b
		const positions, heads, headDim, rotary = 40, 3, 16, 12 // partial rotary: 12 of 16 features
		cos, sin := randPair(b, rng, positions, rotary/2), randPair(b, rng, positions, rotary/2)
		ht := &backend.RoPETable{Cos: cos.h, Sin: sin.h, RotaryDim: rotary}
		dt := &backend.RoPETable{Cos: cos.d, Sin: sin.d, RotaryDim: rotary}
		pos := []int32{0, 1, 2, 3, 0, 1, 39, 5, 6, 0, 17}
		x := randPair(b, rng, len(pos), heads*headDim)
		c.RoPE(x.h, ht, pos, heads, headDim)
		b.RoPE(x.d, dt, pos, heads, headDim)
		x.check(t, b, "RoPE", u.tol)
		c.RoPEBackward(x.h, ht, pos, heads, headDim)
		b.RoPEBackward(x.d, dt, pos, heads, headDim)
		x.check(t, b, "RoPEBackward", u.tol)
	})
}

// attentionCase is one attention shape for the GPU-vs-CPU tests.
type attentionCase struct {
	name string
	spec backend.AttentionSpec
	pos  []int32 // per row; restarts mark packed samples
}

func TestAttentionAgainstCPU(t *testing.T) {
	cases := []attentionCase{
		{"causal GQA", backend.AttentionSpec{Batch: 2, QLen: 9, KVLen: 9, Heads: 4, KVHeads: 2, HeadDim: 8}, nil},
		{"packed", backend.AttentionSpec{Batch: 2, QLen: 10, KVLen: 10, Heads: 2, KVHeads: 1, HeadDim: 8},
			[]int32{0, 1, 2, 0, 1, 2, 3, 0, 0, 1}},
		{"sliding window", backend.AttentionSpec{Batch: 1, QLen: 12, KVLen: 12, Heads: 3, KVHeads: 3, HeadDim: 4, Window: 4}, nil},
		{"decode offset", backend.AttentionSpec{Batch: 1, QLen: 3, KVLen: 11, QOffset: 8, Heads: 4, KVHeads: 1, HeadDim: 8, Window: 6}, nil},
		// Gemma-2's attn_logit_softcapping, small enough to bend these scores.
		{"soft cap, packed", backend.AttentionSpec{Batch: 2, QLen: 10, KVLen: 10, Heads: 2, KVHeads: 1, HeadDim: 8, SoftCap: 0.7},
			[]int32{0, 1, 2, 0, 1, 2, 3, 0, 0, 1}},
		{"soft cap, decode offset", backend.AttentionSpec{Batch: 1, QLen: 3, KVLen: 11, QOffset: 8, Heads: 4, KVHeads: 2, HeadDim: 8,
			Window: 6, SoftCap: 0.5}, nil},
	}
	for _, p := range []Precision{PrecisionFP32, PrecisionBF16} {
		t.Run(p.String(), func(t *testing.T) {
			forEach(t, p, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
				for _, ac := range cases {
					// TF32 attention products (bf16 precision) keep ~3 decimal digits.
					checkAttentionCase(t, u.b, c, rng, ac, u.tol)
				}
			})
		})
	}
}

// checkAttentionCase runs attention forward and backward on random inputs
// on both backends and compares every output.
func checkAttentionCase(t *testing.T, b *Backend, c *cpu.CPU, rng *rand.Rand, ac attentionCase, tol float64) {
	t.Helper()
	s := ac.spec
	s.Scale = float32(1 / math.Sqrt(float64(s.HeadDim)))
	if ac.pos != nil {
		s.SegStart = make([]int32, s.Batch*s.KVLen)
		for r := 0; r < s.Batch; r++ {
			start := int32(0)
			for i := 0; i < s.KVLen; i++ {
				if ac.pos[i] == 0 {
					start = int32(i)
				}
				s.SegStart[r*s.KVLen+i] = start
			}
		}
	}
	qn, kn := s.Batch*s.QLen*s.Heads*s.HeadDim, s.Batch*s.KVLen*s.KVHeads*s.HeadDim
	q, k, v := newPair(b, randomVals(rng, qn, 1), qn), newPair(b, randomVals(rng, kn, 1), kn), newPair(b, randomVals(rng, kn, 1), kn)
	out, lse := newPair(b, make([]float32, qn), qn), newPair(b, make([]float32, s.Batch*s.Heads*s.QLen), s.Batch*s.Heads*s.QLen)
	c.Attention(out.h, lse.h, q.h, k.h, v.h, s)
	b.Attention(out.d, lse.d, q.d, k.d, v.d, s)
	out.check(t, b, ac.name+": Attention", tol)
	lse.check(t, b, ac.name+": log-sum-exp", tol)
	dout := newPair(b, randomVals(rng, qn, 1), qn)
	dq, dk, dv := newPair(b, make([]float32, qn), qn), newPair(b, randomVals(rng, kn, 1), kn), newPair(b, randomVals(rng, kn, 1), kn)
	c.AttentionBackward(dq.h, dk.h, dv.h, dout.h, out.h, lse.h, q.h, k.h, v.h, s)
	b.AttentionBackward(dq.d, dk.d, dv.d, dout.d, out.d, lse.d, q.d, k.d, v.d, s)
	dq.check(t, b, ac.name+": dq", tol)
	dk.check(t, b, ac.name+": dk", tol)
	dv.check(t, b, ac.name+": dv", tol)
}

func TestMLPDropoutCrossEntropy(t *testing.T) {
	forEach(t, PrecisionFP32, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
		b := u.b
		for _, act := range []backend.Activation{backend.SiLU, backend.GELUTanh} {
			g, up, h := randPair(b, rng, 23, 31), randPair(b, rng, 23, 31), randPair(b, rng, 23, 31)
			c.GatedAct(h.h, g.h, up.h, act)
			b.GatedAct(h.d, g.d, up.d, act)
			h.check(t, b, act.String()+" GatedAct", u.tol)
			dg, du := randPair(b, rng, 23, 31), randPair(b, rng, 23, 31)
			c.GatedActBackward(dg.h, du.h, h.h, g.h, up.h, act)
			b.GatedActBackward(dg.d, du.d, h.d, g.d, up.d, act)
			dg.check(t, b, act.String()+" dgate", u.tol)
			du.check(t, b, act.String()+" dup", u.tol)
		}

		x, out, mask := randPair(b, rng, 50, 40), randPair(b, rng, 50, 40), randPair(b, rng, 50, 40)
		c.Dropout(out.h, mask.h, x.h, 0.3, 0xfeedbeef)
		b.Dropout(out.d, mask.d, x.d, 0.3, 0xfeedbeef)
		mask.check(t, b, "Dropout mask (same seed, same mask)", 0)
		out.check(t, b, "Dropout", 0)

		rows, vocab := 7, 1000
		targets := []int32{5, -100, 999, 0, 17, -100, 512}
		for _, softCap := range []float32{0, 2} { // 2: Gemma-2's final soft cap, bending logits of ±3
			for _, grad := range []bool{false, true} {
				lg := newPair(b, randomVals(rng, rows*vocab, 3), rows, vocab)
				ws, wn := c.CrossEntropy(lg.h, targets, softCap, grad, 0.2)
				gs, gn := b.CrossEntropy(lg.d, targets, softCap, grad, 0.2)
				if gn != wn || math.Abs(gs-ws) > 1e-4*math.Abs(ws) {
					t.Errorf("CrossEntropy(cap=%g, grad=%v) = %v over %d, want %v over %d", softCap, grad, gs, gn, ws, wn)
				}
				lg.check(t, b, fmt.Sprintf("CrossEntropy(cap=%g, grad=%v) logits or gradient", softCap, grad), u.tol)
			}
		}
	})
}

// TestBadInputPanicsWithAMessage: as on the CPU backend, a bad op input is a
// panic that says what is wrong, raised in the caller's goroutine.
func TestBadInputPanicsWithAMessage(t *testing.T) {
	forEach(t, PrecisionFP32, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
		b := u.b
		expectPanic := func(what, want string, fn func()) {
			t.Helper()
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), want) {
					t.Errorf("%s: panic %v, want one mentioning %q", what, r, want)
				}
			}()
			fn()
		}
		table, out := b.Alloc(10, 4), b.Alloc(2, 4)
		expectPanic("id out of range", "token id 10 outside [0, 10)", func() { b.Embedding(out, table, []int32{1, 10}) })
		expectPanic("host tensor", "is not on", func() { b.Add(out, tensor.New(2, 4), 1) })
		expectPanic("shapes", "shapes do not chain", func() { b.MatMul(out, table, table, false, false, 1, 0) })
		// The backend still works after a failed call.
		b.Add(out, out, 1)
	})
}
