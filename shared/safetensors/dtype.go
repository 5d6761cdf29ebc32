package safetensors

import "fmt"

// DType is a safetensors element type, spelled as in the header ("F32", "BF16").
type DType string

// The element types of the safetensors specification.
const (
	BOOL    DType = "BOOL"
	U8      DType = "U8"
	I8      DType = "I8"
	F8E5M2  DType = "F8_E5M2"
	F8E4M3  DType = "F8_E4M3"
	I16     DType = "I16"
	U16     DType = "U16"
	F16     DType = "F16"
	BF16    DType = "BF16"
	I32     DType = "I32"
	U32     DType = "U32"
	F32     DType = "F32"
	F64     DType = "F64"
	I64     DType = "I64"
	U64     DType = "U64"
	unknown DType = ""
)

var dtypeSizes = map[DType]int{
	BOOL: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	F64: 8, I64: 8, U64: 8,
}

// Size is the number of bytes of one element; 0 for a dtype this package does
// not know.
func (d DType) Size() int { return dtypeSizes[d] }

// Valid reports whether d is a dtype of the specification.
func (d DType) Valid() bool { return dtypeSizes[d] != 0 }

// IsFloat reports whether d converts to float32 through Float32s.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

// IsInteger reports whether d converts to int64 through Int64s.
func (d DType) IsInteger() bool {
	switch d {
	case BOOL, U8, I8, I16, U16, I32, U32, I64, U64:
		return true
	}
	return false
}

// ParseDType checks a header spelling.
func ParseDType(s string) (DType, error) {
	d := DType(s)
	if !d.Valid() {
		return unknown, fmt.Errorf("unknown dtype %q", s)
	}
	return d, nil
}
