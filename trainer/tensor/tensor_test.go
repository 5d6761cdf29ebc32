package tensor

import (
	"math"
	"testing"
)

func TestF16KnownValues(t *testing.T) {
	cases := []struct {
		bits uint16
		val  float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0400, 6.103515625e-05},
		{0x0001, 5.960464477539063e-08}, {0x3555, 0.333251953125}, {0x7c00, float32(math.Inf(1))},
	}
	for _, c := range cases {
		if got := F16ToF32(c.bits); got != c.val {
			t.Errorf("F16ToF32(%#04x) = %g, want %g", c.bits, got, c.val)
		}
		if got := F32ToF16(c.val); got != c.bits {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.val, got, c.bits)
		}
	}
	// Rounding: 1/3 rounds to 0x3555; 65520 overflows to Inf; ties go to even.
	if got := F32ToF16(1.0 / 3); got != 0x3555 {
		t.Errorf("F32ToF16(1/3) = %#04x", got)
	}
	if got := F32ToF16(65520); got != 0x7c00 {
		t.Errorf("F32ToF16(65520) = %#04x, want Inf", got)
	}
	if got := F32ToF16(1 + 1.0/2048); got != 0x3c00 { // halfway between 1 and next: even is 1
		t.Errorf("tie to even: %#04x", got)
	}
	if got := F32ToF16(1 + 3.0/2048); got != 0x3c02 {
		t.Errorf("tie to even (odd): %#04x", got)
	}
}

func TestF16RoundTripEveryHalf(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if f != f {
			continue // NaN payloads need not survive
		}
		if back := F32ToF16(f); back != uint16(h) {
			t.Fatalf("round trip %#04x -> %g -> %#04x", h, f, back)
		}
	}
}

func TestBF16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := BF16ToF32(uint16(h))
		if f != f {
			continue
		}
		if back := F32ToBF16(f); back != uint16(h) {
			t.Fatalf("round trip %#04x -> %g -> %#04x", h, f, back)
		}
	}
	// 1 + 2^-8 is halfway between bf16 1 and 1+2^-7: ties to even -> 1.
	if got := F32ToBF16(1 + 1.0/256); got != 0x3f80 {
		t.Errorf("tie to even: %#04x", got)
	}
	if got := F32ToBF16(1 + 3.0/256); got != 0x3f82 {
		t.Errorf("tie to even (odd): %#04x", got)
	}
	if got := F32ToBF16(float32(math.NaN())); BF16ToF32(got) == BF16ToF32(got) {
		t.Errorf("NaN became %#04x", got)
	}
}

func TestArenaReusesAfterFirstRound(t *testing.T) {
	var a Arena
	round := func() {
		a.Reset()
		x := a.Alloc(3, 5)
		y := a.Alloc(7)
		x.F32[14] = 1
		y.F32[6] = 2
	}
	round()
	round()
	if allocs := testing.AllocsPerRun(20, round); allocs != 0 {
		t.Fatalf("steady-state arena round allocated %v times", allocs)
	}
	a.Reset()
	x := a.Alloc(3, 5)
	for i, v := range x.F32 {
		if v != 0 {
			t.Fatalf("reused buffer not zeroed at %d: %v", i, v)
		}
	}
	if x.Rows() != 3 || x.Cols() != 5 || x.Len() != 15 {
		t.Fatalf("shape %v", x.Shape())
	}
	y := a.Alloc(7)
	if &x.F32[0] == &y.F32[0] {
		t.Fatal("two live tensors share a buffer")
	}
}

func TestFromF32RejectsWrongLength(t *testing.T) {
	if _, err := FromF32(make([]float32, 5), 2, 3); err == nil {
		t.Fatal("5 values accepted for shape [2,3]")
	}
	if _, err := FromF32(nil, 1, 2, 3, 4, 5); err == nil {
		t.Fatal("rank 5 accepted")
	}
}
