package cuda

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
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
