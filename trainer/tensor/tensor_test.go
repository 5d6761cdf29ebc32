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

// fakeDevice keeps "device" buffers in host slices so the arena's device
// bookkeeping can be checked without a GPU.
type fakeDevice struct {
	live  map[*[]float32]bool
	zeros int
}

func (d *fakeDevice) Alloc(shape ...int) *Tensor {
	t := &Tensor{DType: F32}
	t.setShape(shape)
	buf := make([]float32, t.Len())
	d.live[&buf] = true
	t.Device = &buf
	return t
}

func (d *fakeDevice) Zero(t *Tensor) {
	buf := *t.Device.(*[]float32)
	clear(buf[t.DeviceOffset : t.DeviceOffset+t.Len()])
	d.zeros++
}

func (d *fakeDevice) Free(t *Tensor) {
	if !d.live[t.Device.(*[]float32)] {
		panic("free of a buffer that is not live")
	}
	delete(d.live, t.Device.(*[]float32))
}

func TestArenaOnDeviceCarvesOneSlab(t *testing.T) {
	dev := &fakeDevice{live: map[*[]float32]bool{}}
	a := Arena{Device: dev}
	round := func() (*Tensor, *Tensor) {
		a.Reset()
		return a.Alloc(3, 5), a.Alloc(7)
	}
	x, y := round() // first round: no slab yet, each tensor its own buffer
	if x.Device == y.Device || len(dev.live) != 2 {
		t.Fatalf("first round: %d live buffers, want 2 separate ones", len(dev.live))
	}
	x, y = round() // overflow freed, one slab of 16+16 floats
	if len(dev.live) != 1 || x.Device != y.Device || a.Floats() != 32 {
		t.Fatalf("second round: %d live buffers, slab %d floats", len(dev.live), a.Floats())
	}
	if x.DeviceOffset != 0 || y.DeviceOffset != 16 {
		t.Fatalf("offsets %d and %d, want 0 and 16 (64-byte aligned)", x.DeviceOffset, y.DeviceOffset)
	}
	buf := *x.Device.(*[]float32)
	buf[20] = 9
	_, y = round()
	if buf[20] != 0 || dev.zeros < 2 {
		t.Fatal("a reused device tensor was not zeroed")
	}
	var view Tensor
	x.Reshape(3, 5).SliceRows(&view, 1, 3)
	if view.Device != x.Device || view.DeviceOffset != 5 || view.Len() != 10 || view.F32 != nil {
		t.Fatalf("row view of a device tensor: offset %d, %v", view.DeviceOffset, &view)
	}
	y.Prefix(&view, 2, 3)
	if view.DeviceOffset != 16 || view.Len() != 6 {
		t.Fatalf("prefix view of a device tensor: offset %d, %v", view.DeviceOffset, &view)
	}
}
