package safetensors

import (
	"fmt"
	"unsafe"
)

// Tensor is one tensor's dtype, shape and raw little-endian bytes. A Tensor
// returned by a reader aliases the file's memory: treat Data as read-only and
// do not use it after the reader is closed.
type Tensor struct {
	DType DType
	Shape []int
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int { return numElements(t.Shape) }

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Float32s returns a new slice with the values converted to float32.
func (t Tensor) Float32s() ([]float32, error) {
	dst := make([]float32, t.NumElements())
	return dst, DecodeFloat32(t.DType, t.Data, dst)
}

// Int64s returns a new slice with the values of an integer tensor.
func (t Tensor) Int64s() ([]int64, error) {
	dst := make([]int64, t.NumElements())
	return dst, DecodeInt64(t.DType, t.Data, dst)
}

// Float32View returns the data of an F32 tensor as []float32 without copying,
// when the bytes are 4-byte aligned on a little-endian host (always the case
// for files this package or the Rust implementation wrote). The slice aliases
// the file mapping: it is read-only — writing to it faults — and dies with
// the reader. ok is false when no view is possible; use Float32s then.
func (t Tensor) Float32View() (view []float32, ok bool) {
	if t.DType != F32 || !hostLittleEndian || len(t.Data)%4 != 0 {
		return nil, false
	}
	if len(t.Data) == 0 {
		return []float32{}, true
	}
	p := unsafe.Pointer(unsafe.SliceData(t.Data))
	if uintptr(p)%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(p), len(t.Data)/4), true
}

// FromFloat32 encodes values as a tensor of a float dtype (F32, F16, BF16,
// F64), rounding to nearest-even where the dtype is narrower.
func FromFloat32(dtype DType, shape []int, values []float32) (Tensor, error) {
	if err := checkShape(shape, len(values)); err != nil {
		return Tensor{}, err
	}
	data := make([]byte, len(values)*dtype.Size())
	if err := EncodeFloat32(dtype, values, data); err != nil {
		return Tensor{}, err
	}
	return Tensor{DType: dtype, Shape: append([]int(nil), shape...), Data: data}, nil
}

// FromInt64 encodes values as an I64 tensor.
func FromInt64(shape []int, values []int64) (Tensor, error) {
	if err := checkShape(shape, len(values)); err != nil {
		return Tensor{}, err
	}
	data := make([]byte, 8*len(values))
	for i, v := range values {
		u := uint64(v)
		for b := range 8 {
			data[8*i+b] = byte(u >> (8 * b))
		}
	}
	return Tensor{DType: I64, Shape: append([]int(nil), shape...), Data: data}, nil
}

func checkShape(shape []int, n int) error {
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("shape %v has a negative dimension", shape)
		}
	}
	if numElements(shape) != n {
		return fmt.Errorf("shape %v holds %d elements, got %d values", shape, numElements(shape), n)
	}
	return nil
}
