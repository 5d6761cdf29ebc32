package tensor

// Arena hands out zeroed float32 tensors carved from one large slab and takes
// them all back at once with Reset. A training step asks for the same sizes
// in the same order every time, so after the first step the slab is big
// enough and the step allocates nothing: headers are recycled too.
//
// When a request does not fit, the arena falls back to a fresh allocation and
// remembers how much it needed; the next Reset grows the slab to that size.
// The zero value is ready to use (host memory). An Arena is not safe for
// concurrent use.
type Arena struct {
	// Device, when set, makes the arena carve its tensors from memory a
	// backend owns (a GPU's) instead of Go memory. Set it before the first
	// Alloc.
	Device DeviceMemory

	slab     []float32
	dslab    *Tensor   // the slab in device memory (Device set)
	overflow []*Tensor // device tensors allocated past the slab, freed at Reset
	off      int
	needed   int // floats asked for since the last Reset
	headers  []Tensor
	nhdr     int
}

// DeviceMemory is what an Arena needs from a backend that keeps tensors off
// the host: backend.Backend's Alloc and Zero, and Free to give memory back.
type DeviceMemory interface {
	// Alloc returns a zeroed float32 tensor of the given shape.
	Alloc(shape ...int) *Tensor
	// Zero sets every element of t to 0.
	Zero(t *Tensor)
	// Free returns the memory of a tensor that Alloc returned. Views of it
	// must not be used afterwards.
	Free(t *Tensor)
}

// Alloc returns a zeroed float32 tensor of the given shape, valid until the
// next Reset.
func (a *Arena) Alloc(shape ...int) *Tensor {
	var t *Tensor
	if a.nhdr < len(a.headers) {
		t = &a.headers[a.nhdr]
		*t = Tensor{}
	} else {
		t = &Tensor{} // this round outgrew the header store; Reset grows it
	}
	a.nhdr++
	t.DType = F32
	t.setShape(shape)
	n := t.Len()
	// Keep every buffer 16-float aligned (64 bytes) so vector loads in
	// kernels start on a cache line.
	padded := (n + 15) &^ 15
	a.needed += padded
	if a.Device != nil {
		a.allocDevice(t, padded)
		return t
	}
	if a.off+padded <= len(a.slab) {
		t.F32 = a.slab[a.off : a.off+n : a.off+n]
		clear(t.F32)
		a.off += padded
	} else {
		t.F32 = make([]float32, n)
	}
	return t
}

func (a *Arena) allocDevice(t *Tensor, padded int) {
	if a.dslab != nil && a.off+padded <= a.dslab.Len() {
		t.Device, t.DeviceOffset = a.dslab.Device, a.dslab.DeviceOffset+a.off
		a.off += padded
		a.Device.Zero(t)
		return
	}
	own := a.Device.Alloc(t.Len())
	a.overflow = append(a.overflow, own)
	t.Device, t.DeviceOffset = own.Device, own.DeviceOffset
}

// Reset takes back every tensor handed out since the last Reset; their
// buffers will be reused. If the last round needed more than the slab held,
// the slab grows now, so the next identical round fits.
func (a *Arena) Reset() {
	if a.Device != nil {
		for _, t := range a.overflow {
			a.Device.Free(t)
		}
		a.overflow = a.overflow[:0]
		if a.dslab == nil || a.needed > a.dslab.Len() {
			if a.dslab != nil {
				a.Device.Free(a.dslab)
				a.dslab = nil
			}
			if a.needed > 0 {
				a.dslab = a.Device.Alloc(a.needed)
			}
		}
	} else if a.needed > len(a.slab) {
		a.slab = make([]float32, a.needed)
	}
	if a.nhdr > len(a.headers) {
		// Pointers handed out earlier keep the old array alive; new ones
		// come from this bigger store.
		a.headers = make([]Tensor, a.nhdr)
	}
	a.off, a.needed, a.nhdr = 0, 0, 0
}

// Floats is the slab size in float32 elements (for memory reports).
func (a *Arena) Floats() int {
	if a.dslab != nil {
		return a.dslab.Len()
	}
	return len(a.slab)
}
