package safetensors

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16WideningRoundTripsEveryHalf(t *testing.T) {
	for h := range 1 << 16 {
		f := F16ToFloat32(uint16(h))
		back := Float32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7fff != 0x7e00 || back&0x8000 != uint16(h)&0x8000 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, back)
		}
	}
}

func TestF16KnownValues(t *testing.T) {
	cases := []struct {
		h uint16
		f float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0400, 1.0 / 16384}, {0x0001, 1.0 / (1 << 24)},
		{0x7c00, float32(math.Inf(1))}, {0x8000, float32(math.Copysign(0, -1))}, {0x3555, 0.33325195},
	}
	for _, c := range cases {
		if got := F16ToFloat32(c.h); got != c.f || math.Signbit(float64(got)) != math.Signbit(float64(c.f)) {
			t.Errorf("F16ToFloat32(%#04x) = %v, want %v", c.h, got, c.f)
		}
	}
	// Rounding: 65519 stays finite, 65520 is the tie that rounds to even (Inf);
	// 2^-25 is a tie between 0 and the smallest subnormal (rounds to 0);
	// 1+2^-11 is a tie between 1 and 1+2^-10 (rounds to 1, even).
	rounds := []struct {
		f float32
		h uint16
	}{
		{65519, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {-1e10, 0xfc00},
		{1.0 / (1 << 25), 0}, {1.5 / (1 << 25), 1}, {1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02},
		{float32(math.NaN()), 0x7e00},
	}
	for _, c := range rounds {
		if got := Float32ToF16(c.f); got != c.h {
			t.Errorf("Float32ToF16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
}

// nearestEven checks that h is the correctly rounded encoding of f among its
// neighbours, with ties going to the even pattern.
func checkNearest(t *testing.T, name string, f float32, h uint16, widen func(uint16) float32) {
	t.Helper()
	got := float64(widen(h))
	x := float64(f)
	for _, n := range []uint16{h - 1, h + 1} {
		if n>>15 != h>>15 || n&0x7fff == 0x7fff {
			continue // crossed the sign or ran off the patterns
		}
		other := float64(widen(n))
		if math.IsNaN(other) {
			continue
		}
		if math.IsInf(got, 0) { // overflow: the largest finite must be farther
			continue
		}
		dg, do := math.Abs(x-got), math.Abs(x-other)
		if do < dg || (do == dg && h&1 == 1) {
			t.Fatalf("%s(%v) = %#04x (%v) but %#04x (%v) is nearer or even", name, f, h, got, n, other)
		}
	}
}

func TestRoundingIsNearestEvenOnRandomFloats(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		// Random bit patterns cover every exponent; scale some into the
		// half range so subnormal and normal halves are both exercised.
		f := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			continue
		}
		checkNearest(t, "Float32ToBF16", f, Float32ToBF16(f), BF16ToFloat32)
		g := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-26)))
		if math.Abs(float64(g)) < 65504 {
			checkNearest(t, "Float32ToF16", g, Float32ToF16(g), F16ToFloat32)
		}
	}
}

func TestBF16KnownValues(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {3.140625, 0x4049},
		{1 + 1.0/256, 0x3f80},     // tie, rounds to even
		{1 + 3.0/256, 0x3f82},     // tie, rounds up to even
		{math.MaxFloat32, 0x7f80}, // overflows to +Inf, as torch does
		{float32(math.NaN()), 0x7fc0},
		{float32(math.Inf(-1)), 0xff80},
	}
	for _, c := range cases {
		if got := Float32ToBF16(c.f); got != c.h {
			t.Errorf("Float32ToBF16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	if BF16ToFloat32(0x4049) != 3.140625 {
		t.Error("BF16ToFloat32(0x4049)")
	}
}

func TestDecodeInt64AllIntegerTypes(t *testing.T) {
	cases := []struct {
		d    DType
		src  []byte
		want int64
	}{
		{BOOL, []byte{1}, 1}, {U8, []byte{200}, 200}, {I8, []byte{0xff}, -1},
		{I16, []byte{0x00, 0x80}, -32768}, {U16, []byte{0xff, 0xff}, 65535},
		{I32, []byte{0xfe, 0xff, 0xff, 0xff}, -2}, {U32, []byte{0xff, 0xff, 0xff, 0xff}, 4294967295},
		{I64, []byte{0x9c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, -100},
		{U64, []byte{1, 0, 0, 0, 0, 0, 0, 0}, 1},
	}
	for _, c := range cases {
		dst := make([]int64, 1)
		if err := DecodeInt64(c.d, c.src, dst); err != nil || dst[0] != c.want {
			t.Errorf("%s %v: %d, %v; want %d", c.d, c.src, dst[0], err, c.want)
		}
	}
	if err := DecodeInt64(U64, []byte{0, 0, 0, 0, 0, 0, 0, 0x80}, make([]int64, 1)); err == nil {
		t.Error("U64 above MaxInt64 decoded without error")
	}
	if err := DecodeInt64(I64, make([]byte, 7), make([]int64, 1)); err == nil {
		t.Error("7 bytes decoded as one I64")
	}
}

func TestDecodeF16TableMatchesArithmetic(t *testing.T) {
	src := make([]byte, 2<<16)
	for h := range 1 << 16 {
		src[2*h], src[2*h+1] = byte(h), byte(h>>8)
	}
	dst := make([]float32, 1<<16)
	if err := DecodeFloat32(F16, src, dst); err != nil {
		t.Fatal(err)
	}
	for h, v := range dst {
		if math.Float32bits(v) != math.Float32bits(F16ToFloat32(uint16(h))) {
			t.Fatalf("half %#04x decodes to %v, want %v", h, v, F16ToFloat32(uint16(h)))
		}
	}
}
