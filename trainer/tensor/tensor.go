package tensor

import (
	"fmt"
	"strings"

	"github.com/eftml/eft/shared/safetensors"
)

// MaxDims is the largest rank a Tensor may have. Shapes live in a fixed array
// so that making a tensor header allocates nothing beyond the header itself.
const MaxDims = 4

// DType is the element type of a tensor's storage.
type DType uint8

const (
	F32  DType = iota // float32: compute type, trainable weights, optimizer state
	BF16              // bfloat16 storage
	F16               // IEEE half storage
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case BF16, F16:
		return 2
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case BF16:
		return "BF16"
	case F16:
		return "F16"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Tensor is a row-major, contiguous n-dimensional array.
type Tensor struct {
	shape [MaxDims]int
	ndim  int
	DType DType
	// F32 holds the elements when DType is F32 and the tensor lives on the host.
	F32 []float32
	// Raw holds little-endian bf16/f16 bits for storage-only host tensors.
	Raw []uint16
	// Device is a backend's own handle for data it keeps off the host
	// (the CUDA backend's device buffer); nil for host tensors.
	Device any
	// DeviceOffset is where this tensor starts inside Device's buffer, in
	// elements: row views and arena tensors share one buffer without a new
	// handle (so making a view allocates nothing).
	DeviceOffset int
}

// New returns a zeroed float32 host tensor of the given shape.
func New(shape ...int) *Tensor {
	t := &Tensor{DType: F32}
	t.setShape(shape)
	t.F32 = make([]float32, t.Len())
	return t
}

// OnDevice returns the header of a tensor whose data a backend keeps off the
// host, under handle (the backend's own buffer type), starting at its first
// element. It holds no host data.
func OnDevice(dtype DType, handle any, shape ...int) *Tensor {
	t := &Tensor{DType: dtype, Device: handle}
	t.setShape(shape)
	return t
}

// FromF32 wraps data (not copied) as a float32 tensor of the given shape.
func FromF32(data []float32, shape ...int) (*Tensor, error) {
	t := &Tensor{DType: F32}
	if err := t.checkShape(shape); err != nil {
		return nil, err
	}
	t.setShape(shape)
	if t.Len() != len(data) {
		return nil, fmt.Errorf("tensor: %d values do not fill shape %v (%d elements)", len(data), shape, t.Len())
	}
	t.F32 = data
	return t, nil
}

// MustFromF32 is FromF32 for shapes the caller has already checked.
func MustFromF32(data []float32, shape ...int) *Tensor {
	t, err := FromF32(data, shape...)
	if err != nil {
		panic(err)
	}
	return t
}

func (t *Tensor) checkShape(shape []int) error {
	if len(shape) == 0 || len(shape) > MaxDims {
		return fmt.Errorf("tensor: rank %d outside 1..%d", len(shape), MaxDims)
	}
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("tensor: negative dimension in shape %v", shape)
		}
	}
	return nil
}

func (t *Tensor) setShape(shape []int) {
	if len(shape) == 0 || len(shape) > MaxDims {
		panic(fmt.Sprintf("tensor: rank %d outside 1..%d", len(shape), MaxDims))
	}
	t.ndim = copy(t.shape[:], shape)
}

// Shape returns the dimensions. The slice aliases the tensor; do not modify it.
func (t *Tensor) Shape() []int { return t.shape[:t.ndim] }

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return t.ndim }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += t.ndim
	}
	return t.shape[i]
}

// Len is the number of elements.
func (t *Tensor) Len() int {
	n := 1
	for _, d := range t.shape[:t.ndim] {
		n *= d
	}
	return n
}

// Rows is the product of every dimension but the last: the number of rows
// when the tensor is seen as a matrix of Dim(-1) columns.
func (t *Tensor) Rows() int {
	if t.ndim == 0 {
		return 0
	}
	n := 1
	for _, d := range t.shape[:t.ndim-1] {
		n *= d
	}
	return n
}

// Cols is the last dimension.
func (t *Tensor) Cols() int { return t.shape[t.ndim-1] }

// Reshape changes the shape in place, keeping the element count; it returns t.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	if n != t.Len() {
		panic(fmt.Sprintf("tensor: cannot reshape %v (%d elements) to %v", t.Shape(), t.Len(), shape))
	}
	t.setShape(shape)
	return t
}

// SameShape reports whether a and b have equal shapes.
func SameShape(a, b *Tensor) bool {
	if a.ndim != b.ndim {
		return false
	}
	return a.shape == b.shape
}

func (t *Tensor) String() string {
	dims := make([]string, t.ndim)
	for i, d := range t.shape[:t.ndim] {
		dims[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("%s[%s]", t.DType, strings.Join(dims, ","))
}

// ToF32 returns a float32 host copy of a host tensor of any dtype.
func (t *Tensor) ToF32() *Tensor {
	out := &Tensor{DType: F32, shape: t.shape, ndim: t.ndim}
	out.F32 = make([]float32, t.Len())
	switch t.DType {
	case F32:
		copy(out.F32, t.F32)
	case BF16:
		for i, b := range t.Raw {
			out.F32[i] = safetensors.BF16ToFloat32(b)
		}
	case F16:
		for i, b := range t.Raw {
			out.F32[i] = safetensors.F16ToFloat32(b)
		}
	}
	return out
}

// SliceRows points view at rows [r0, r1) of t seen as a matrix of Cols()
// columns, without copying, and returns view. The caller owns view (often a
// header kept across steps), so slicing allocates nothing.
func (t *Tensor) SliceRows(view *Tensor, r0, r1 int) *Tensor {
	cols := t.Cols()
	if r0 < 0 || r1 < r0 || r1 > t.Rows() {
		panic(fmt.Sprintf("tensor: rows [%d,%d) of %v", r0, r1, t))
	}
	*view = Tensor{DType: t.DType}
	view.shape[0], view.shape[1], view.ndim = r1-r0, cols, 2
	t.viewData(view, r0*cols, r1*cols)
	return view
}

// Prefix points view at the first rows·cols elements of t as a [rows, cols]
// matrix, without copying, and returns view: one scratch buffer can serve
// differently shaped uses.
func (t *Tensor) Prefix(view *Tensor, rows, cols int) *Tensor {
	if rows < 0 || cols <= 0 || rows*cols > t.Len() {
		panic(fmt.Sprintf("tensor: %dx%d prefix of %v", rows, cols, t))
	}
	*view = Tensor{DType: t.DType}
	view.shape[0], view.shape[1], view.ndim = rows, cols, 2
	t.viewData(view, 0, rows*cols)
	return view
}

// viewData points view at elements [lo, hi) of t's data, wherever it lives.
func (t *Tensor) viewData(view *Tensor, lo, hi int) {
	switch {
	case t.Device != nil:
		view.Device, view.DeviceOffset = t.Device, t.DeviceOffset+lo
	case t.DType == F32:
		view.F32 = t.F32[lo:hi:hi]
	default:
		view.Raw = t.Raw[lo:hi:hi]
	}
}
