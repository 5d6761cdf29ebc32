package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// Every op is checked the same way: a float64 reference written as plainly as
// possible gives the expected forward output, and central differences of
// L = Σ G⊙ref(x) (G random) give the expected gradient of each input. The
// float32 kernels must agree within tolForward / tolGrad relative to the
// largest magnitude of the compared tensor.
const (
	tolForward = 2e-5
	tolGrad    = 2e-4
	fdStep     = 1e-6
)

func randVec(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64() * scale
	}
	return v
}

func toF32(v []float64, shape ...int) *tensor.Tensor {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return tensor.MustFromF32(f, shape...)
}

// round64 is v as the float32 kernels see it, so references start from the
// same numbers.
func round64(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(float32(x))
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// numGrad differentiates f at x (perturbed in place, then restored).
func numGrad(f func() float64, x []float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		orig := x[i]
		x[i] = orig + fdStep
		up := f()
		x[i] = orig - fdStep
		down := f()
		x[i] = orig
		g[i] = (up - down) / (2 * fdStep)
	}
	return g
}

func assertClose(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale, worst float64
	worstAt := -1
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	if scale == 0 {
		scale = 1
	}
	for i := range got {
		d := math.Abs(float64(got[i])-want[i]) / scale
		if d > worst {
			worst, worstAt = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Fatalf("%s: max error %.3g relative to max |value| %.3g (at %d: got %g want %g), tolerance %g",
			what, worst, scale, worstAt, got[worstAt], want[worstAt], tol)
	}
}

func newTestCPU() *CPU { return New(2) }

func refMatMul(a, b []float64, m, n, k int, transA, transB bool) []float64 {
	c := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				av := a[i*k+p]
				if transA {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if transB {
					bv = b[j*k+p]
				}
				s += av * bv
			}
			c[i*n+j] = s
		}
	}
	return c
}

func TestMatMulAllTransposes(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range [][3]int{{7, 5, 9}, {70, 64, 80}} { // the second splits rows over workers
		m, n, k := size[0], size[1], size[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				a, b, c0 := round64(randVec(r, m*k, 1)), round64(randVec(r, k*n, 1)), round64(randVec(r, m*n, 1))
				ashape, bshape := []int{m, k}, []int{k, n}
				if ta {
					ashape = []int{k, m}
				}
				if tb {
					bshape = []int{n, k}
				}
				out := toF32(c0, m, n)
				c.MatMul(out, toF32(a, ashape...), toF32(b, bshape...), ta, tb, 0.5, 2)
				want := refMatMul(a, b, m, n, k, ta, tb)
				for i := range want {
					want[i] = 0.5*want[i] + 2*c0[i]
				}
				assertClose(t, fmt.Sprintf("MatMul %dx%dx%d transA=%v transB=%v", m, n, k, ta, tb), out.F32, want, tolForward)
			}
		}
	}
}

func TestBatchedMatMul(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(3, 4))
	batch, m, n, k := 3, 4, 6, 5
	a, b := round64(randVec(r, batch*k*m, 1)), round64(randVec(r, batch*n*k, 1))
	out := tensor.New(batch, m, n)
	c.BatchedMatMul(out, toF32(a, batch, k, m), toF32(b, batch, n, k), true, true, 1, 0)
	var want []float64
	for i := range batch {
		want = append(want, refMatMul(a[i*k*m:(i+1)*k*m], b[i*n*k:(i+1)*n*k], m, n, k, true, true)...)
	}
	assertClose(t, "BatchedMatMul", out.F32, want, tolForward)
}

// A linear layer's backward is two matmuls: check they give the gradient of
// the forward matmul (this is how the model uses MatMul).
func TestLinearGradient(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(5, 6))
	rows, in, outF := 6, 5, 4
	x, w, bias, g := round64(randVec(r, rows*in, 1)), round64(randVec(r, outF*in, 1)), round64(randVec(r, outF, 1)), randVec(r, rows*outF, 1)
	ref := func() []float64 {
		y := refMatMul(x, w, rows, outF, in, false, true)
		for i := range rows {
			for j := range outF {
				y[i*outF+j] += bias[j]
			}
		}
		return y
	}
	y := tensor.New(rows, outF)
	c.MatMul(y, toF32(x, rows, in), toF32(w, outF, in), false, true, 1, 0)
	c.AddBias(y, toF32(bias, outF))
	assertClose(t, "linear forward", y.F32, ref(), tolForward)

	loss := func() float64 { return dot(g, ref()) }
	dy := toF32(g, rows, outF)
	dx, dw, db := tensor.New(rows, in), tensor.New(outF, in), tensor.New(outF)
	c.MatMul(dx, dy, toF32(w, outF, in), false, false, 1, 0)
	c.MatMul(dw, dy, toF32(x, rows, in), true, false, 1, 0)
	c.BiasBackward(db, dy)
	assertClose(t, "dx", dx.F32, numGrad(loss, x), tolGrad)
	assertClose(t, "dw", dw.F32, numGrad(loss, w), tolGrad)
	assertClose(t, "dbias", db.F32, numGrad(loss, bias), tolGrad)
}

func TestEmbeddingGradient(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(7, 8))
	vocab, dim := 6, 5
	ids := []int32{3, 1, 3, 0, 5, 3}
	table, g := round64(randVec(r, vocab*dim, 1)), randVec(r, len(ids)*dim, 1)
	ref := func() []float64 {
		out := make([]float64, 0, len(ids)*dim)
		for _, id := range ids {
			out = append(out, table[int(id)*dim:(int(id)+1)*dim]...)
		}
		return out
	}
	out := tensor.New(len(ids), dim)
	c.Embedding(out, toF32(table, vocab, dim), ids)
	assertClose(t, "embedding forward", out.F32, ref(), tolForward)
	dt := tensor.New(vocab, dim)
	c.EmbeddingBackward(dt, toF32(g, len(ids), dim), ids)
	assertClose(t, "dtable (repeated ids add up)", dt.F32, numGrad(func() float64 { return dot(g, ref()) }, table), tolGrad)
}

func refRMSNorm(x, w []float64, eps float64) []float64 {
	d := len(w)
	out := make([]float64, len(x))
	for r := 0; r < len(x)/d; r++ {
		var ss float64
		for _, v := range x[r*d : (r+1)*d] {
			ss += v * v
		}
		s := 1 / math.Sqrt(ss/float64(d)+eps)
		for i := range d {
			out[r*d+i] = x[r*d+i] * s * w[i]
		}
	}
	return out
}

func TestRMSNormGradient(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(9, 10))
	rows, d, eps := 5, 8, 1e-5
	x, w, g := round64(randVec(r, rows*d, 1)), round64(randVec(r, d, 1)), randVec(r, rows*d, 1)
	out, rstd := tensor.New(rows, d), tensor.New(rows)
	xt, wt := toF32(x, rows, d), toF32(w, d)
	c.RMSNorm(out, rstd, xt, wt, float32(eps))
	assertClose(t, "rmsnorm forward", out.F32, refRMSNorm(x, w, eps), tolForward)

	loss := func() float64 { return dot(g, refRMSNorm(x, w, eps)) }
	prior := randVec(r, rows*d, 1) // dx accumulates: start from something
	dx, dw := toF32(prior, rows, d), tensor.New(d)
	c.RMSNormBackward(dx, dw, toF32(g, rows, d), xt, wt, rstd)
	want := numGrad(loss, x)
	for i := range want {
		want[i] += float64(float32(prior[i]))
	}
	assertClose(t, "dx (accumulated)", dx.F32, want, tolGrad)
	assertClose(t, "dw", dw.F32, numGrad(loss, w), tolGrad)

	// Per-head use (qk-norm): rows of head width over a wider tensor.
	heads := 2
	xh := round64(randVec(r, rows*heads*d, 1))
	oh, rh := tensor.New(rows, heads*d), tensor.New(rows*heads)
	c.RMSNorm(oh, rh, toF32(xh, rows, heads*d), wt, float32(eps))
	assertClose(t, "per-head rmsnorm", oh.F32, refRMSNorm(xh, w, eps), tolForward)
}

func refRoPE(x []float64, cos, sin []float64, positions []int32, heads, headDim, rot int) []float64 {
	out := append([]float64(nil), x...)
	half := rot / 2
	for tk, p := range positions {
		for h := range heads {
			base := tk*heads*headDim + h*headDim
			for i := range half {
				a, b := x[base+i], x[base+half+i]
				cs, sn := cos[int(p)*half+i], sin[int(p)*half+i]
				out[base+i] = a*cs - b*sn
				out[base+half+i] = b*cs + a*sn
			}
		}
	}
	return out
}

func TestRoPEGradient(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(11, 12))
	heads, headDim, npos := 3, 8, 10
	for _, rot := range []int{8, 4} { // full and partial rotary
		half := rot / 2
		cos, sin := make([]float64, npos*half), make([]float64, npos*half)
		for p := range npos {
			for i := range half {
				ang := float64(p) * math.Pow(10000, -2*float64(i)/float64(rot))
				cos[p*half+i], sin[p*half+i] = 1.2*math.Cos(ang), 1.2*math.Sin(ang) // 1.2: an attention factor
			}
		}
		cos, sin = round64(cos), round64(sin)
		table := &backend.RoPETable{Cos: toF32(cos, npos, half), Sin: toF32(sin, npos, half), RotaryDim: rot}
		positions := []int32{0, 1, 2, 0, 1, 9}
		x, g := round64(randVec(r, len(positions)*heads*headDim, 1)), randVec(r, len(positions)*heads*headDim, 1)
		xt := toF32(x, len(positions), heads*headDim)
		c.RoPE(xt, table, positions, heads, headDim)
		ref := func() []float64 { return refRoPE(x, cos, sin, positions, heads, headDim, rot) }
		assertClose(t, fmt.Sprintf("rope forward rot=%d", rot), xt.F32, ref(), tolForward)
		dx := toF32(g, len(positions), heads*headDim)
		c.RoPEBackward(dx, table, positions, heads, headDim)
		assertClose(t, fmt.Sprintf("rope backward rot=%d", rot), dx.F32, numGrad(func() float64 { return dot(g, ref()) }, x), tolGrad)
	}
}

// refAttention is causal attention written from its definition, one query and
// one key at a time.
func refAttention(q, k, v []float64, s backend.AttentionSpec) []float64 {
	H, KV, hd := s.Heads, s.KVHeads, s.HeadDim
	out := make([]float64, s.Batch*s.QLen*H*hd)
	for b := range s.Batch {
		for h := range H {
			g := h / (H / KV)
			for i := range s.QLen {
				p := s.QOffset + i
				var allowed []int
				for j := 0; j <= p; j++ {
					if s.SegStart != nil && j < int(s.SegStart[b*s.KVLen+p]) {
						continue
					}
					if s.Window > 0 && p-j >= s.Window {
						continue
					}
					allowed = append(allowed, j)
				}
				sc := make([]float64, len(allowed))
				mx := math.Inf(-1)
				for n, j := range allowed {
					var d float64
					for x := range hd {
						d += q[(b*s.QLen+i)*H*hd+h*hd+x] * k[(b*s.KVLen+j)*KV*hd+g*hd+x]
					}
					sc[n] = d * float64(s.Scale)
					if s.SoftCap > 0 {
						sc[n] = float64(s.SoftCap) * math.Tanh(sc[n]/float64(s.SoftCap))
					}
					mx = max(mx, sc[n])
				}
				var sum float64
				for n := range sc {
					sc[n] = math.Exp(sc[n] - mx)
					sum += sc[n]
				}
				for n, j := range allowed {
					for x := range hd {
						out[(b*s.QLen+i)*H*hd+h*hd+x] += sc[n] / sum * v[(b*s.KVLen+j)*KV*hd+g*hd+x]
					}
				}
			}
		}
	}
	return out
}

func TestAttentionGradient(t *testing.T) {
	c := newTestCPU()
	seg := func(lens ...int) []int32 { // segment starts for one row of packed samples
		var out []int32
		start := 0
		for _, l := range lens {
			for range l {
				out = append(out, int32(start))
			}
			start += l
		}
		return out
	}
	cases := []struct {
		name string
		spec backend.AttentionSpec
	}{
		{"causal MHA", backend.AttentionSpec{Batch: 2, QLen: 6, KVLen: 6, Heads: 2, KVHeads: 2, HeadDim: 4}},
		{"GQA", backend.AttentionSpec{Batch: 1, QLen: 7, KVLen: 7, Heads: 4, KVHeads: 2, HeadDim: 4}},
		{"MQA sliding window", backend.AttentionSpec{Batch: 2, QLen: 9, KVLen: 9, Heads: 3, KVHeads: 1, HeadDim: 4, Window: 3}},
		{"packed samples", backend.AttentionSpec{Batch: 2, QLen: 10, KVLen: 10, Heads: 2, KVHeads: 1, HeadDim: 4,
			SegStart: append(seg(3, 4, 3), seg(1, 9)...)}},
		{"packed + window", backend.AttentionSpec{Batch: 1, QLen: 12, KVLen: 12, Heads: 2, KVHeads: 2, HeadDim: 4, Window: 4,
			SegStart: seg(7, 5)}},
		{"more than one query block", backend.AttentionSpec{Batch: 1, QLen: 70, KVLen: 70, Heads: 2, KVHeads: 1, HeadDim: 3, Window: 66,
			SegStart: seg(5, 60, 5)}},
		{"decode with offset", backend.AttentionSpec{Batch: 2, QLen: 2, KVLen: 7, QOffset: 5, Heads: 2, KVHeads: 1, HeadDim: 4}},
		// Gemma-2's soft cap, small enough against these scores to bend
		// them: with packing and a window, and over more than one block.
		{"soft cap, packed + window", backend.AttentionSpec{Batch: 1, QLen: 12, KVLen: 12, Heads: 2, KVHeads: 1, HeadDim: 4, Window: 4,
			SoftCap: 0.8, SegStart: seg(7, 5)}},
		{"soft cap, two blocks", backend.AttentionSpec{Batch: 1, QLen: 70, KVLen: 70, Heads: 2, KVHeads: 2, HeadDim: 3, SoftCap: 1.1}},
	}
	for ci, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(13, uint64(ci)))
			s := tc.spec
			s.Scale = float32(1 / math.Sqrt(float64(s.HeadDim)))
			nq, nk := s.Batch*s.QLen*s.Heads*s.HeadDim, s.Batch*s.KVLen*s.KVHeads*s.HeadDim
			q, k, v, g := round64(randVec(r, nq, 1)), round64(randVec(r, nk, 1)), round64(randVec(r, nk, 1)), randVec(r, nq, 1)
			qt, kt, vt := toF32(q, s.Batch*s.QLen, s.Heads*s.HeadDim), toF32(k, s.Batch*s.KVLen, s.KVHeads*s.HeadDim), toF32(v, s.Batch*s.KVLen, s.KVHeads*s.HeadDim)
			out, lse := tensor.New(s.Batch*s.QLen, s.Heads*s.HeadDim), tensor.New(s.Batch*s.Heads*s.QLen)
			c.Attention(out, lse, qt, kt, vt, s)
			ref := func() []float64 { return refAttention(q, k, v, s) }
			assertClose(t, "forward", out.F32, ref(), tolForward)
			// Gradients are overwritten: start them from garbage.
			dq, dk, dv := toF32(randVec(r, nq, 1), qt.Shape()...), toF32(randVec(r, nk, 1), kt.Shape()...), toF32(randVec(r, nk, 1), vt.Shape()...)
			c.AttentionBackward(dq, dk, dv, toF32(g, qt.Shape()...), out, lse, qt, kt, vt, s)
			loss := func() float64 { return dot(g, ref()) }
			assertClose(t, "dq", dq.F32, numGrad(loss, q), tolGrad)
			assertClose(t, "dk", dk.F32, numGrad(loss, k), tolGrad)
			assertClose(t, "dv", dv.F32, numGrad(loss, v), tolGrad)
		})
	}
}

func TestGatedActGradient(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(15, 16))
	n := 40
	acts := map[backend.Activation]func(x float64) float64{
		backend.SiLU:     func(x float64) float64 { return x / (1 + math.Exp(-x)) },
		backend.GELUTanh: func(x float64) float64 { return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x))) },
	}
	for act, f := range acts {
		gate, up, g := round64(randVec(r, n, 2)), round64(randVec(r, n, 1)), randVec(r, n, 1)
		ref := func() []float64 {
			out := make([]float64, n)
			for i := range out {
				out[i] = f(gate[i]) * up[i]
			}
			return out
		}
		h := tensor.New(n)
		c.GatedAct(h, toF32(gate, n), toF32(up, n), act)
		assertClose(t, act.String()+" forward", h.F32, ref(), tolForward)
		dg, du := tensor.New(n), tensor.New(n)
		c.GatedActBackward(dg, du, toF32(g, n), toF32(gate, n), toF32(up, n), act)
		loss := func() float64 { return dot(g, ref()) }
		assertClose(t, act.String()+" dgate", dg.F32, numGrad(loss, gate), tolGrad)
		assertClose(t, act.String()+" dup", du.F32, numGrad(loss, up), tolGrad)
	}
}

func TestDropout(t *testing.T) {
	c := newTestCPU()
	n := 100000
	x := tensor.New(n)
	for i := range x.F32 {
		x.F32[i] = 1
	}
	out, mask := tensor.New(n), tensor.New(n)
	c.Dropout(out, mask, x, 0.25, 42)
	kept := 0
	for i, m := range mask.F32 {
		switch m {
		case 0:
		case 1 / 0.75:
			kept++
		default:
			t.Fatalf("mask[%d] = %v, want 0 or 1/(1-p)", i, m)
		}
		if out.F32[i] != m {
			t.Fatalf("out[%d] = %v with mask %v", i, out.F32[i], m)
		}
	}
	if frac := float64(kept) / float64(n); math.Abs(frac-0.75) > 0.01 {
		t.Fatalf("kept %.3f of elements, want 0.75", frac)
	}
	again, mask2 := tensor.New(n), tensor.New(n)
	c.Dropout(again, mask2, x, 0.25, 42)
	for i := range mask.F32 {
		if mask.F32[i] != mask2.F32[i] {
			t.Fatal("same seed gave a different mask")
		}
	}
	c.Dropout(again, mask2, x, 0.25, 43)
	same := 0
	for i := range mask.F32 {
		if mask.F32[i] == mask2.F32[i] {
			same++
		}
	}
	if same == n {
		t.Fatal("different seeds gave the same mask")
	}
}

// TestCrossEntropyGradient: plain, and with Gemma-2's final soft cap
// (cap·tanh(logits/cap), here small enough against logits of ±3 to bend
// them) scored and differentiated through.
func TestCrossEntropyGradient(t *testing.T) {
	c := newTestCPU()
	r := rand.New(rand.NewPCG(17, 18))
	rows, vocab := 6, 11
	targets := []int32{3, backend.IgnoreIndex, 0, 10, backend.IgnoreIndex, 3}
	logits := round64(randVec(r, rows*vocab, 3))
	for _, softCap := range []float32{0, 2.5} {
		ref := func() float64 {
			var s float64
			for i, tg := range targets {
				if tg == backend.IgnoreIndex {
					continue
				}
				row := slices.Clone(logits[i*vocab : (i+1)*vocab])
				if softCap > 0 {
					for j, x := range row {
						row[j] = float64(softCap) * math.Tanh(x/float64(softCap))
					}
				}
				mx := math.Inf(-1)
				for _, x := range row {
					mx = max(mx, x)
				}
				var se float64
				for _, x := range row {
					se += math.Exp(x - mx)
				}
				s += mx + math.Log(se) - row[tg]
			}
			return s
		}
		lt := toF32(logits, rows, vocab)
		sum, n := c.CrossEntropy(lt, targets, softCap, true, 0.25)
		if n != 4 {
			t.Fatalf("counted %d targets, want 4", n)
		}
		if want := ref(); math.Abs(sum-want) > 1e-5*math.Abs(want) {
			t.Fatalf("cap %g: loss sum %v, want %v", softCap, sum, want)
		}
		want := numGrad(func() float64 { return 0.25 * ref() }, logits)
		assertClose(t, fmt.Sprintf("dlogits, cap %g", softCap), lt.F32, want, tolGrad)

		lt2 := toF32(logits, rows, vocab)
		sum2, _ := c.CrossEntropy(lt2, targets, softCap, false, 0)
		if math.Abs(sum2-sum) > 1e-6*math.Abs(sum) {
			t.Fatalf("cap %g: forward-only loss %v differs from %v", softCap, sum2, sum)
		}
		for i, v := range lt2.F32 {
			if v != float32(logits[i]) {
				t.Fatalf("cap %g: forward-only call changed the logits", softCap)
			}
		}
	}
}

func TestExp32(t *testing.T) {
	var worst float64
	for x := -87.0; x <= 88.5; x += 0.0137 {
		got := float64(exp32(float32(x)))
		want := math.Exp(float64(float32(x)))
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Fatalf("exp32 relative error %g", worst)
	}
	if exp32(float32(math.Inf(-1))) != 0 || exp32(-200) != 0 {
		t.Fatal("exp32 of very negative input is not 0")
	}
}
