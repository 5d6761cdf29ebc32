package quant

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestNF4CodeIsBitsandbytesNormalMap rebuilds the NF4 table from its
// definition, bitsandbytes' create_normal_map(offset=0.9677083,
// use_extra_value=True): the standard normal quantiles at
// torch.linspace(offset, 0.5, 9)[:-1] (float32) and the negated ones at
// linspace(offset, 0.5, 8)[:-1], 241 zeros, sorted, divided by the largest.
func TestNF4CodeIsBitsandbytesNormalMap(t *testing.T) {
	ppf := func(p float32) float64 { return math.Sqrt2 * math.Erfinv(2*float64(p)-1) }
	var v []float32
	for _, p := range linspaceF32(0.9677083, 0.5, 9)[:8] {
		v = append(v, float32(ppf(p)))
	}
	v = append(v, 0)
	for _, p := range linspaceF32(0.9677083, 0.5, 8)[:7] {
		v = append(v, float32(-ppf(p)))
	}
	slices.Sort(v)
	top := v[len(v)-1]
	for i := range v {
		v[i] /= top
	}
	for i, want := range v {
		got := nf4Code[i]
		if d := math.Abs(float64(got - want)); d > 2e-7 {
			t.Errorf("NF4 code %d = %.10g, the normal map gives %.10g (|diff| %.2g)", i, got, want, d)
		}
	}
	if nf4Code[0] != -1 || nf4Code[7] != 0 || nf4Code[15] != 1 {
		t.Errorf("NF4 must hold -1, 0 and 1 exactly at codes 0, 7, 15: %v", nf4Code)
	}
}

// TestNF4ThresholdsAreMidpoints: bitsandbytes generated its CUDA decision
// tree's pivots as midpoints of neighbouring codes in float64, printed by
// Python (test_normal_map_tree) and pasted as float literals. The exact
// midpoint of two float32 values is often a float32 rounding tie, which the
// shortened decimal no longer is, so four pivots are one ulp from the
// float32 midpoint bitsandbytes' torch backend computes.
func TestNF4ThresholdsAreMidpoints(t *testing.T) {
	var offByOneUlp []int
	for i, th := range nf4Thresholds[:15] {
		lo, hi := nf4Code[i], nf4Code[i+1]
		printed := strconv.FormatFloat((float64(lo)+float64(hi))/2, 'g', -1, 64) // Python's repr
		want, err := strconv.ParseFloat(printed, 32)
		if err != nil {
			t.Fatal(err)
		}
		if th != float32(want) {
			t.Errorf("threshold %d = %.9g, the printed float64 midpoint of %.9g and %.9g is %s (%.9g in float32)", i, th, lo, hi, printed, float32(want))
		}
		if f32 := (lo + hi) / 2; f32 != th {
			if math.Nextafter32(f32, th) != th {
				t.Errorf("threshold %d = %.9g is more than one ulp from the float32 midpoint %.9g", i, th, f32)
			}
			offByOneUlp = append(offByOneUlp, i)
		}
	}
	if !slices.Equal(offByOneUlp, []int{0, 8, 12, 14}) {
		t.Errorf("thresholds one ulp from the float32 midpoints: %v, want [0 8 12 14] (docs/qlora.md says so)", offByOneUlp)
	}
}

// TestQuantizeNF4PicksTheNearestCode checks the decision tree against a
// brute-force nearest-code search (away from the thresholds, where the
// nearer code is not a matter of the last bit).
func TestQuantizeNF4PicksTheNearestCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		x := float32(2*rng.Float64() - 1)
		q := quantizeNF4(x)
		best := nearest(nf4Code[:], x)
		if q != best && !nearThreshold(x, nf4Thresholds[:15]) {
			t.Fatalf("quantizeNF4(%.9g) = %d (%.9g), the nearest code is %d (%.9g)", x, q, nf4Code[q], best, nf4Code[best])
		}
	}
	for i, th := range nf4Thresholds[:15] {
		if got := quantizeNF4(th); got != byte(i) {
			t.Errorf("a value on threshold %d must take the lower code %d, got %d", i, i, got)
		}
		if got := quantizeNF4(math.Nextafter32(th, 2)); got != byte(i+1) {
			t.Errorf("just above threshold %d must give code %d, got %d", i, i+1, got)
		}
	}
	if q := quantizeNF4(float32(math.NaN())); q != 0 {
		t.Errorf("NaN (all-zero block) gives code %d, bitsandbytes' kernel gives 0", q)
	}
	if q := quantizeNF4(1.0000001); q != 15 {
		t.Errorf("a value just above 1 gives code %d, want 15", q)
	}
}

func TestFP4CodeAndQuantizer(t *testing.T) {
	want := [16]float32{0, 0.0625 / 12, 8.0 / 12, 1, 4.0 / 12, 6.0 / 12, 2.0 / 12, 3.0 / 12,
		0, -0.0625 / 12, -8.0 / 12, -1, -4.0 / 12, -6.0 / 12, -2.0 / 12, -3.0 / 12}
	for i := range want {
		if fp4Code[i] != want[i] {
			t.Errorf("FP4 code %d = %.9g, want %.9g", i, fp4Code[i], want[i])
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	pivots := []float32{0.29166667, 0.583333, 0.8333333, 0.4166667, 0.0859375, 0.20833333, 0.00260417}
	for range 200000 {
		x := float32(2*rng.Float64() - 1)
		q := quantizeFP4(x)
		if x < 0 && q&0b1000 == 0 || x > 0 && q&0b1000 != 0 {
			t.Fatalf("quantizeFP4(%.9g) = %04b: wrong sign bit", x, q)
		}
		best := nearest(fp4Code[:], x)
		if fp4Code[q] != fp4Code[best] && !nearThreshold(float32(math.Abs(float64(x))), pivots) && !within(x, 0.583333, 0.58333334) && !within(x, -0.58333334, -0.583333) {
			t.Fatalf("quantizeFP4(%.9g) = %d (%.9g), the nearest code is %d (%.9g)", x, q, fp4Code[q], best, fp4Code[best])
		}
	}
}

func TestDynamicCode(t *testing.T) {
	c := dynamicCode
	for i := 1; i < len(c); i++ {
		if !(c[i] > c[i-1]) {
			t.Fatalf("dynamic code not strictly increasing at %d: %g, %g", i, c[i-1], c[i])
		}
	}
	// 127 negative values, then 0 at 127, 127 positive ones below 1, then 1.
	if c[127] != 0 || c[255] != 1 {
		t.Errorf("dynamic code[127] = %g, [255] = %g; want 0 and 1", c[127], c[255])
	}
	// The smallest magnitude: exponent 10^-6 times the midpoint of
	// linspace(0.1, 1, 2), (0.1f+1)/2, in float32.
	if want := float32(1e-6) * ((float32(0.1) + 1) / 2); c[128] != want || c[126] != -want {
		t.Errorf("smallest dynamic codes ±%g, want ±%g", c[128], want)
	}
	// The largest below 1: the last midpoint of linspace(0.1, 1, 65).
	b := linspaceF32(0.1, 1, 65)
	if want := (b[63] + b[64]) / 2; c[254] != want || c[0] != -want {
		t.Errorf("largest dynamic codes ±%g, want ±%g", c[254], want)
	}
	if math.Abs(float64(c[254])-(1-0.9/128)) > 1e-7 {
		t.Errorf("largest code below 1 is %g, about 1-0.9/128 expected", c[254])
	}
	// Symmetric: the negative half mirrors the positive values below 1.
	for i := range 127 {
		if c[i] != -c[254-i] {
			t.Errorf("dynamic code[%d] = %g is not -code[%d] = %g", i, c[i], 254-i, -c[254-i])
		}
	}
}

func TestQuantizeDynamicPicksTheNearestCode(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var mids []float32
	for i := 1; i < 256; i++ {
		mids = append(mids, (dynamicCode[i-1]+dynamicCode[i])*0.5)
	}
	for n := range 200000 {
		x := float32(2*rng.Float64() - 1)
		if n%4 == 0 { // small magnitudes, where the code is dense
			x *= float32(math.Pow(10, -6*rng.Float64()))
		}
		q := quantizeDynamic(x)
		best := nearest(dynamicCode[:], x)
		if q != best && !nearThreshold(x, mids) {
			t.Fatalf("quantizeDynamic(%.9g) = %d (%.9g), the nearest code is %d (%.9g)", x, q, dynamicCode[q], best, dynamicCode[best])
		}
	}
	for _, x := range []float32{-1, 1, 0, dynamicCode[3], dynamicCode[200]} {
		if q := quantizeDynamic(x); dynamicCode[q] != max(x, dynamicCode[0]) {
			t.Errorf("quantizeDynamic(%g) = %d (%g)", x, q, dynamicCode[q])
		}
	}
}

func nearest(code []float32, x float32) byte {
	best := 0
	for i, v := range code {
		if math.Abs(float64(x-v)) < math.Abs(float64(x-code[best])) {
			best = i
		}
	}
	return byte(best)
}

// nearThreshold reports x within a few ulps of a decision threshold.
func nearThreshold(x float32, ths []float32) bool {
	for _, th := range ths {
		if math.Abs(float64(x-th)) <= 4*math.Abs(float64(math.Nextafter32(th, 2)-th)) {
			return true
		}
	}
	return false
}

func within(x, lo, hi float32) bool { return x >= lo && x <= hi }

// nf4Tree is bitsandbytes' CUDA dQuantizeNF4 decision tree, written out as
// the kernel has it, to hold quantizeNF4's bucket lookup against.
func nf4Tree(x float32) byte {
	t := &nf4Thresholds
	var q byte
	if x > t[7] {
		q = 8
	}
	if x > t[q+3] {
		q += 4
	}
	if x > t[q+1] {
		q += 2
	}
	if x > t[q] {
		q++
	}
	return q
}

func TestQuantizeNF4IsTheDecisionTree(t *testing.T) {
	for b := 0; b < 256; b++ { // at most one threshold a bucket
		n := 0
		for _, th := range nf4Thresholds[:15] {
			if int((th+1)*128) == b {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("bucket %d holds %d thresholds", b, n)
		}
	}
	check := func(x float32) {
		if got, want := quantizeNF4(x), nf4Tree(x); got != want {
			t.Fatalf("quantizeNF4(%.9g) = %d, the decision tree gives %d", x, got, want)
		}
	}
	for _, th := range nf4Thresholds[:15] {
		for _, x := range []float32{th, math.Nextafter32(th, -2), math.Nextafter32(th, 2)} {
			check(x)
			check(-x)
		}
	}
	for b := 0; b <= 256; b++ { // bucket edges and their neighbours
		e := float32(b)/128 - 1
		check(e)
		check(math.Nextafter32(e, -2))
		check(math.Nextafter32(e, 2))
	}
	for _, x := range []float32{-1, 1, -1.5, 1.5, 0, float32(math.Copysign(0, -1)), math.Nextafter32(1, 0), math.Nextafter32(-1, 0),
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		check(x)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	for range 1000000 {
		check(float32(2.2*rng.Float64() - 1.1))
	}
}
