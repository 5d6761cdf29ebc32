package tensor

import (
	"testing"
)

func TestToF32WidensStorageTypes(t *testing.T) {
	bf := &Tensor{DType: BF16, Raw: []uint16{0x3f80, 0xc040}}
	bf.setShape([]int{2})
	hf := &Tensor{DType: F16, Raw: []uint16{0x3c00, 0xc200}}
	hf.setShape([]int{2})
	for _, src := range []*Tensor{bf, hf} {
		got := src.ToF32()
		if got.DType != F32 || got.F32[0] != 1 || got.F32[1] != -3 {
			t.Fatalf("%v widened to %v %v, want [1 -3]", src, got, got.F32)
		}
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
