package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

// TestMatMulQuant holds the 4-bit product against a float64 reference with
// the dequantized weight, forward (x·Wᵀ) and backward (dy·W, overwritten
// and accumulated), on a weight small enough for one tile, one whose rows
// straddle absmax blocks, and one large enough for several tiles.
func TestMatMulQuant(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	be := newTestCPU()
	for _, tc := range []struct {
		rows, cols, m int
		o             quant.Options
	}{
		{24, 64, 5, quant.Options{}},
		{17, 33, 3, quant.QLoRA()},
		{2600, 400, 3, quant.QLoRA()}, // 1.04M weights: two tiles each way (2560 rows, 384 columns)
		{40, 72, 7, quant.Options{Type: quant.FP4, BlockSize: 128}},
	} {
		wv := randVec(rng, tc.rows*tc.cols, 0.05)
		w, err := quant.Quantize(toF32(wv, tc.rows*tc.cols).F32, tc.rows, tc.cols, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		deq := make([]float32, tc.rows*tc.cols)
		w.Dequantize(deq)
		wd := make([]float64, len(deq))
		for i, v := range deq {
			wd[i] = float64(v)
		}

		x := round64(randVec(rng, tc.m*tc.cols, 1))
		y := tensor.New(tc.m, tc.rows)
		be.MatMulQuant(y, toF32(x, tc.m, tc.cols), w, true, 0)
		assertClose(t, "forward x·Wᵀ", y.F32, refMatMul(x, wd, tc.m, tc.rows, tc.cols, false, true), tolForward)

		// The input gradient of L = Σ G⊙(x·Wᵀ), by central differences.
		g := round64(randVec(rng, tc.m*tc.rows, 1))
		loss := func() float64 { return dot(g, refMatMul(x, wd, tc.m, tc.rows, tc.cols, false, true)) }
		var wantDx []float64
		if tc.rows*tc.cols < 10000 {
			wantDx = numGrad(loss, x)
		} else { // the product's own definition: finite differences would take seconds
			wantDx = refMatMul(g, wd, tc.m, tc.cols, tc.rows, false, false)
		}
		dx := tensor.New(tc.m, tc.cols)
		for i := range dx.F32 {
			dx.F32[i] = float32(rng.NormFloat64()) // overwritten with beta 0
		}
		be.MatMulQuant(dx, toF32(g, tc.m, tc.rows), w, false, 0)
		assertClose(t, "input gradient dy·W", dx.F32, wantDx, tolGrad)

		prev := make([]float64, len(dx.F32))
		for i, v := range dx.F32 {
			prev[i] = float64(v)
		}
		be.MatMulQuant(dx, toF32(g, tc.m, tc.rows), w, false, 1)
		for i := range prev {
			prev[i] *= 2
		}
		assertClose(t, "accumulated input gradient", dx.F32, prev, tolForward)
	}
}

func TestMatMulQuantRejectsMismatchedShapes(t *testing.T) {
	w, err := quant.Quantize(make([]float32, 8*16), 8, 16, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("a 3×8 input times a transposed 8×16 weight did not panic")
		}
	}()
	newTestCPU().MatMulQuant(tensor.New(3, 8), tensor.New(3, 8), w, true, 0)
}
