package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"
)

// hostLittleEndian is true on the platforms eft runs on (amd64, arm64); the
// F32 fast paths that reinterpret bytes as float32 depend on it.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// BF16ToFloat32 widens a bfloat16 bit pattern exactly.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 rounds to the nearest bfloat16, ties to even, as torch does
// (c10::BFloat16 round_to_nearest_even); every NaN becomes the quiet NaN 0x7FC0.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return 0x7fc0
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// F16ToFloat32 widens an IEEE half-precision bit pattern exactly.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		// Zero or subnormal: mant * 2^-24, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	default:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	}
}

// Float32ToF16 rounds to the nearest IEEE half, ties to even; values beyond the
// half range become ±Inf and every NaN becomes the quiet NaN 0x7E00 (with its
// sign), as torch does.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	abs := b & 0x7fffffff
	switch {
	case abs > 0x7f800000:
		return sign | 0x7e00
	case abs >= 0x477ff000: // 65520 and above round past the largest half (65504)
		return sign | 0x7c00
	case abs < 0x38800000: // below 2^-14: a subnormal half, in units of 2^-24
		exp := abs >> 23
		if exp < 102 { // below 2^-25: rounds to zero
			return sign
		}
		mant := abs&0x7fffff | 0x800000
		shift := 126 - exp
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	default:
		r := (abs >> 13) - 112<<10
		rem := abs & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
			r++ // a carry into the exponent is the right answer
		}
		return sign | uint16(r)
	}
}

// DecodeFloat32 converts little-endian elements of a float dtype (F32, F16,
// BF16, F64) into dst, which must hold exactly len(src)/dtype.Size() values.
func DecodeFloat32(dtype DType, src []byte, dst []float32) error {
	if !dtype.IsFloat() {
		return fmt.Errorf("cannot read %s as float32", dtype)
	}
	if len(src) != len(dst)*dtype.Size() {
		return fmt.Errorf("decode %s: %d bytes for %d values", dtype, len(src), len(dst))
	}
	le := binary.LittleEndian
	switch dtype {
	case F32:
		if hostLittleEndian && len(dst) > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), len(src)), src)
			return nil
		}
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case F16:
		table := f16Table()
		for i := range dst {
			dst[i] = table[le.Uint16(src[2*i:])]
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	}
	return nil
}

// f16Table holds every half's float32 value (256 KiB, built on first use):
// a lookup decodes F16 weights several times faster than the bit arithmetic.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = F16ToFloat32(uint16(h))
	}
	return &t
})

// EncodeFloat32 converts values to little-endian elements of a float dtype,
// rounding to nearest-even for F16 and BF16, into dst of len(src)*dtype.Size().
func EncodeFloat32(dtype DType, src []float32, dst []byte) error {
	if !dtype.IsFloat() {
		return fmt.Errorf("cannot write float32 values as %s", dtype)
	}
	if len(dst) != len(src)*dtype.Size() {
		return fmt.Errorf("encode %s: %d bytes for %d values", dtype, len(dst), len(src))
	}
	le := binary.LittleEndian
	switch dtype {
	case F32:
		if hostLittleEndian && len(src) > 0 {
			copy(dst, unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), len(dst)))
			return nil
		}
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], Float32ToF16(v))
		}
	case F64:
		for i, v := range src {
			le.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	}
	return nil
}

// DecodeInt64 converts little-endian elements of an integer dtype (BOOL, U8,
// I8, I16, U16, I32, U32, I64, U64) into dst; U64 values above MaxInt64 are an
// error rather than a silent wrap.
func DecodeInt64(dtype DType, src []byte, dst []int64) error {
	if !dtype.IsInteger() {
		return fmt.Errorf("cannot read %s as int64", dtype)
	}
	if len(src) != len(dst)*dtype.Size() {
		return fmt.Errorf("decode %s: %d bytes for %d values", dtype, len(src), len(dst))
	}
	le := binary.LittleEndian
	for i := range dst {
		switch dtype {
		case BOOL, U8:
			dst[i] = int64(src[i])
		case I8:
			dst[i] = int64(int8(src[i]))
		case I16:
			dst[i] = int64(int16(le.Uint16(src[2*i:])))
		case U16:
			dst[i] = int64(le.Uint16(src[2*i:]))
		case I32:
			dst[i] = int64(int32(le.Uint32(src[4*i:])))
		case U32:
			dst[i] = int64(le.Uint32(src[4*i:]))
		case I64:
			dst[i] = int64(le.Uint64(src[8*i:]))
		case U64:
			u := le.Uint64(src[8*i:])
			if u > math.MaxInt64 {
				return fmt.Errorf("decode U64: element %d = %d does not fit int64", i, u)
			}
			dst[i] = int64(u)
		}
	}
	return nil
}
