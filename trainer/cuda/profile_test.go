package cuda

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/cpu"
)

// With EFT_CUDA_PROFILE set, every kernel launch and GEMM is counted under
// its kernel name or GEMM shape, and Profile starts the counts again.
func TestProfileCountsKernelsAndGEMMs(t *testing.T) {
	t.Setenv(envProfile, "1")
	b := newEmulated(t, PrecisionFP32)
	rng := rand.New(rand.NewPCG(1, 2))
	x, y, c := randPair(b, rng, 8, 16), randPair(b, rng, 16, 4), randPair(b, rng, 8, 4)
	b.Profile()
	b.Add(x.d, x.d, 1)
	b.Add(x.d, x.d, 1)
	b.MatMul(c.d, x.d, y.d, false, false, 1, 0)
	got := map[string]int{}
	for _, e := range b.Profile() {
		got[e.Name] = e.Calls
	}
	if got["ew_add"] != 2 {
		t.Errorf("ew_add counted %d times, want 2 (profile %v)", got["ew_add"], got)
	}
	if got["gemm f32 m=4 n=8 k=16"] != 1 {
		t.Errorf("the 8×16·16×4 product is not counted once as its column-major shape (profile %v)", got)
	}
	if again := b.Profile(); len(again) != 0 {
		t.Errorf("Profile did not start again: %v", again)
	}
	var w bytes.Buffer
	WriteProfile(&w, []ProfileEntry{{"ew_add", 4, 0.002}, {"gemm", 2, 0.006}}, 2)
	if !strings.Contains(w.String(), "4.00 ms") || !strings.Contains(w.String(), "75.0%") {
		t.Errorf("table:\n%s", w.String())
	}
}

// Without the variable the backend is not wrapped and Profile is nil.
func TestProfileOffByDefault(t *testing.T) {
	t.Setenv(envProfile, "")
	b := newEmulated(t, PrecisionFP32)
	if p := b.Profile(); p != nil {
		t.Fatalf("profile without %s: %v", envProfile, p)
	}
}

// A product reuses the bf16 copy of an operand an earlier product made,
// until something may have changed the operand: any other op, or a
// product writing over it. Counted through the profile's kernel counts;
// the results are checked against the CPU backend each time.
func TestConvertedOperandsAreReusedUntilWritten(t *testing.T) {
	t.Setenv(envProfile, "1")
	b := newEmulated(t, PrecisionBF16)
	c := cpu.New(1)
	rng := rand.New(rand.NewPCG(3, 4))
	// Every side above skinnyDim: these products convert their operands.
	x, w1, w2 := randPair(b, rng, 72, 80), randPair(b, rng, 68, 80), randPair(b, rng, 68, 80)
	y, v := randPair(b, rng, 72, 68), randPair(b, rng, 68, 80)
	conversions := func() int {
		n := 0
		for _, e := range b.Profile() {
			if strings.HasPrefix(e.Name, "f32_to_bf16") {
				n += e.Calls
			}
		}
		return n
	}
	product := func(w pair, what string) {
		c.MatMul(y.h, x.h, w.h, false, true, 1, 0)
		b.MatMul(y.d, x.d, w.d, false, true, 1, 0)
		y.check(t, b, what, tolBF16)
	}
	b.Profile()
	product(w1, "first product")
	if n := conversions(); n != 2 {
		t.Errorf("first product converted %d operands, want 2", n)
	}
	product(w2, "second product of x")
	if n := conversions(); n != 1 {
		t.Errorf("second product of x converted %d operands, want 1 (w2 only)", n)
	}
	product(w1, "x·w1 again")
	if n := conversions(); n != 0 {
		t.Errorf("repeating a product converted %d operands, want 0", n)
	}
	c.Add(x.h, x.h, 1)
	b.Add(x.d, x.d, 1)
	product(w1, "after x changed")
	if n := conversions(); n != 2 {
		t.Errorf("after an op, the product converted %d operands, want 2", n)
	}
	// A product into x (x = y·v) changes x: the next product reads it anew.
	c.MatMul(x.h, y.h, v.h, false, false, 1, 0)
	b.MatMul(x.d, y.d, v.d, false, false, 1, 0)
	b.Profile()
	product(w1, "after a product wrote x")
	if n := conversions(); n != 1 {
		t.Errorf("after a product wrote x, the next converted %d operands, want 1 (x)", n)
	}
}

// A skinny product (one side at most skinnyDim, as LoRA's are) of float32
// operands converts nothing at bf16 precision and matches the CPU.
func TestSkinnyProductsConvertNothing(t *testing.T) {
	t.Setenv(envProfile, "1")
	b := newEmulated(t, PrecisionBF16)
	c := cpu.New(1)
	rng := rand.New(rand.NewPCG(5, 6))
	x, a, u := randPair(b, rng, 96, 80), randPair(b, rng, 16, 80), randPair(b, rng, 96, 16)
	g := randPair(b, rng, 16, 80)
	noConversions := func(what string) {
		t.Helper()
		gemms := 0
		for _, e := range b.Profile() {
			if strings.HasPrefix(e.Name, "f32_to_bf16") {
				t.Errorf("%s converted operands: %d %s", what, e.Calls, e.Name)
			}
			if strings.HasPrefix(e.Name, "gemm") {
				gemms++
				if !strings.HasSuffix(e.Name, "tf32") {
					t.Errorf("%s ran as %s, not on float32 operands in TF32", what, e.Name)
				}
			}
		}
		if gemms != 1 {
			t.Errorf("%s: %d GEMMs profiled, want 1", what, gemms)
		}
	}
	b.Profile()
	c.MatMul(u.h, x.h, a.h, false, true, 1, 0) // x·Aᵀ
	b.MatMul(u.d, x.d, a.d, false, true, 1, 0)
	noConversions("x·Aᵀ")
	u.check(t, b, "x·Aᵀ", tolBF16)
	c.MatMul(g.h, u.h, x.h, true, false, 1, 1) // A's gradient: uᵀ·x
	b.MatMul(g.d, u.d, x.d, true, false, 1, 1)
	noConversions("uᵀ·x")
	g.check(t, b, "uᵀ·x", tolBF16)
}
