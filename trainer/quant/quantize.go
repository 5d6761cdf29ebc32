package quant

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Type is a 4-bit data type (bitsandbytes' bnb_4bit_quant_type).
type Type uint8

const (
	NF4 Type = iota // NormalFloat4, QLoRA's type ("nf4")
	FP4             // bitsandbytes' 4-bit float ("fp4")
)

func (t Type) String() string {
	switch t {
	case NF4:
		return "nf4"
	case FP4:
		return "fp4"
	}
	return fmt.Sprintf("quant.Type(%d)", uint8(t))
}

// ParseType reads a bnb_4bit_quant_type value.
func ParseType(s string) (Type, error) {
	switch s {
	case "nf4":
		return NF4, nil
	case "fp4":
		return FP4, nil
	}
	return 0, fmt.Errorf("quant: 4-bit type %q is not nf4 or fp4", s)
}

// code is the type's 16 values, indexed by code.
func (t Type) code() *[16]float32 {
	if t == FP4 {
		return &fp4Code
	}
	return &nf4Code
}

// DefaultBlockSize is bitsandbytes' quantize_4bit block size.
const DefaultBlockSize = 64

// DoubleQuantBlockSize is the block size bitsandbytes quantizes the absmax
// values in when double quantization is on.
const DoubleQuantBlockSize = 256

// Options choose the format. The zero value is NF4 in blocks of 64 without
// double quantization.
type Options struct {
	Type Type
	// BlockSize is the number of consecutive elements (of the row-major
	// flattened matrix) sharing one absmax: a power of two from 32 to 4096;
	// 0 means 64.
	BlockSize int
	// DoubleQuant stores the absmax values in 8 bits as well
	// (bnb_4bit_use_double_quant, bitsandbytes' compress_statistics).
	DoubleQuant bool
}

// QLoRA is the format Axolotl loads QLoRA base weights in
// (adapter: qlora, load_in_4bit: true): NF4, blocks of 64, double
// quantization.
func QLoRA() Options { return Options{Type: NF4, BlockSize: DefaultBlockSize, DoubleQuant: true} }

func (o Options) blockSize() int {
	if o.BlockSize == 0 {
		return DefaultBlockSize
	}
	return o.BlockSize
}

// Validate reports options bitsandbytes would refuse.
func (o Options) Validate() error {
	if o.Type != NF4 && o.Type != FP4 {
		return fmt.Errorf("quant: unknown 4-bit type %v", o.Type)
	}
	bs := o.blockSize()
	if bs < 32 || bs > 4096 || bs&(bs-1) != 0 {
		return fmt.Errorf("quant: block size %d is not a power of two from 32 to 4096", bs)
	}
	return nil
}

// Matrix is a [Rows, Cols] float matrix quantized to 4 bits in
// bitsandbytes' layout: the elements in row-major order are cut into blocks
// of BlockSize (the last one may be shorter), each element is stored as the
// code nearest to it divided by its block's absmax, and the dequantized
// value is code value × absmax in float32.
type Matrix struct {
	Rows, Cols int
	Type       Type
	BlockSize  int
	// Packed holds two codes per byte, element 2i in the high nibble and
	// 2i+1 in the low one; an odd element count leaves a zero-valued code
	// in the last low nibble.
	Packed []byte
	// Absmax is each block's largest magnitude; nil with double
	// quantization, which stores absmax[b] as
	// dynamicCode[QAbsmax[b]]·Absmax2[b/256] + Offset instead.
	Absmax  []float32
	QAbsmax []byte
	Absmax2 []float32
	Offset  float32
}

// Quantize quantizes vals, a row-major [rows, cols] matrix, as
// bitsandbytes' quantize_4bit does on the GPU. Shapes whose size is not a
// multiple of the block size are handled as bitsandbytes handles them: the
// matrix is flattened, the last block is short and the last byte padded.
func Quantize(vals []float32, rows, cols int, o Options) (*Matrix, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if rows < 1 || cols < 1 {
		return nil, fmt.Errorf("quant: cannot quantize a %d×%d matrix", rows, cols)
	}
	n := rows * cols
	if len(vals) != n {
		return nil, fmt.Errorf("quant: %d values for a %d×%d matrix", len(vals), rows, cols)
	}
	bs := o.blockSize()
	blocks := (n + bs - 1) / bs
	m := &Matrix{Rows: rows, Cols: cols, Type: o.Type, BlockSize: bs, Packed: make([]byte, (n+1)/2)}
	absmax := make([]float32, blocks)
	quantize := quantizeNF4
	if o.Type == FP4 {
		quantize = quantizeFP4
	}
	inParallel(blocks, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			e0, e1 := b*bs, min((b+1)*bs, n)
			var amax float32
			for _, v := range vals[e0:e1] {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			absmax[b] = amax
			inv := 1 / amax // +Inf for an all-zero block: NaN codes, as on the GPU
			for e := e0; e < e1; e += 2 {
				hiCode := quantize(vals[e] * inv)
				loCode := quantize(0 * inv) // the pad of an odd count is a scaled 0
				if e+1 < e1 {
					loCode = quantize(vals[e+1] * inv)
				}
				m.Packed[e/2] = hiCode<<4 | loCode
			}
		}
	})
	if !o.DoubleQuant {
		m.Absmax = absmax
		return m, nil
	}
	m.doubleQuantize(absmax)
	return m, nil
}

// doubleQuantize stores absmax as bitsandbytes' compress_statistics does:
// the offset is their mean, and absmax−offset goes through 8-bit blockwise
// quantization (blocks of 256, the dynamic code). bitsandbytes takes the
// mean in float32 on the GPU; here it is summed in float64 and rounded, so
// the offset can differ in its last bit (it is stored, so a matrix is
// consistent with itself).
func (m *Matrix) doubleQuantize(absmax []float32) {
	var sum float64
	for _, v := range absmax {
		sum += float64(v)
	}
	m.Offset = float32(sum / float64(len(absmax)))
	n := len(absmax)
	m.QAbsmax = make([]byte, n)
	m.Absmax2 = make([]float32, (n+DoubleQuantBlockSize-1)/DoubleQuantBlockSize)
	centered := make([]float32, DoubleQuantBlockSize)
	for b := range m.Absmax2 {
		e0, e1 := b*DoubleQuantBlockSize, min((b+1)*DoubleQuantBlockSize, n)
		c := centered[:e1-e0]
		var amax float32
		for i, v := range absmax[e0:e1] {
			c[i] = v - m.Offset
			amax = max(amax, float32(math.Abs(float64(c[i]))))
		}
		m.Absmax2[b] = amax
		inv := 1 / amax
		for i, v := range c {
			m.QAbsmax[e0+i] = quantizeDynamic(v * inv)
		}
	}
}

// Blocks is the number of absmax blocks.
func (m *Matrix) Blocks() int { return (m.Rows*m.Cols + m.BlockSize - 1) / m.BlockSize }

// BlockAbsmax is the scale of block b as dequantization uses it.
func (m *Matrix) BlockAbsmax(b int) float32 {
	if m.Absmax != nil {
		return m.Absmax[b]
	}
	// Two float32 operations, each rounded, as bitsandbytes' dequantize
	// kernel and its "absmax += offset" are.
	return float32(dynamicCode[m.QAbsmax[b]]*m.Absmax2[b/DoubleQuantBlockSize]) + m.Offset
}

// CodeTable is the 16 values the matrix's 4-bit codes stand for.
func (m *Matrix) CodeTable() [16]float32 { return *m.Type.code() }

// AbsmaxCode is the 8-bit dynamic code that QAbsmax indexes (double
// quantization), for backends that dequantize on a device.
func AbsmaxCode() [256]float32 { return dynamicCode }

// Bytes is the memory the quantized matrix holds: codes and scales.
func (m *Matrix) Bytes() int {
	return len(m.Packed) + 4*len(m.Absmax) + len(m.QAbsmax) + 4*len(m.Absmax2) + 4
}

// Code returns the 4-bit code of element (r, c).
func (m *Matrix) Code(r, c int) byte {
	e := r*m.Cols + c
	b := m.Packed[e/2]
	if e%2 == 0 {
		return b >> 4
	}
	return b & 0xF
}

// CodeValue is the table value of code q of the matrix's type, in [-1, 1].
func (m *Matrix) CodeValue(q byte) float32 { return m.Type.code()[q&0xF] }

// Dequantize writes the whole matrix, row-major, into dst (Rows·Cols
// values).
func (m *Matrix) Dequantize(dst []float32) { m.DequantizeRows(dst, 0, m.Rows) }

// DequantizeRows writes rows r0..r1-1, row-major, into dst[:(r1-r0)·Cols].
// Blocks may straddle rows; only the elements asked for are written.
func (m *Matrix) DequantizeRows(dst []float32, r0, r1 int) { m.DequantizeSub(dst, r0, r1, 0, m.Cols) }

// DequantizeSub writes the submatrix of rows r0..r1-1 and columns
// c0..c1-1, row-major, into dst[:(r1-r0)·(c1-c0)].
func (m *Matrix) DequantizeSub(dst []float32, r0, r1, c0, c1 int) {
	if r0 < 0 || r1 > m.Rows || r0 > r1 || c0 < 0 || c1 > m.Cols || c0 > c1 {
		panic(fmt.Sprintf("quant: rows %d..%d, columns %d..%d of a %d×%d matrix", r0, r1, c0, c1, m.Rows, m.Cols))
	}
	w := c1 - c0
	if len(dst) < (r1-r0)*w {
		panic(fmt.Sprintf("quant: %d values hold %d×%d", len(dst), r1-r0, w))
	}
	if w == m.Cols { // whole rows: one contiguous range
		m.dequantizeRange(dst[:(r1-r0)*w], r0*m.Cols, r1*m.Cols)
		return
	}
	for r := r0; r < r1; r++ {
		e := r*m.Cols + c0
		m.dequantizeRange(dst[(r-r0)*w:(r-r0+1)*w], e, e+w)
	}
}

// dequantizeRange writes elements e0..e1-1 into dst.
func (m *Matrix) dequantizeRange(dst []float32, e0, e1 int) {
	code := m.Type.code()
	var lut [16]float32
	bs := m.BlockSize
	for e := e0; e < e1; {
		b := e / bs
		end := min((b+1)*bs, e1)
		s := m.BlockAbsmax(b)
		for i, v := range code {
			lut[i] = v * s
		}
		out := dst[e-e0 : end-e0]
		k := 0
		if e%2 == 1 { // a range starting on a low nibble
			out[0] = lut[m.Packed[e/2]&0xF]
			k = 1
		}
		packed := m.Packed[(e+k)/2:]
		for j := 0; k+1 < len(out); j, k = j+1, k+2 {
			p := packed[j]
			out[k] = lut[p>>4]
			out[k+1] = lut[p&0xF]
		}
		if k < len(out) { // a range ending on a high nibble
			out[k] = lut[m.Packed[(e+k)/2]>>4]
		}
		e = end
	}
}

// inParallel splits [0, n) into one contiguous chunk per CPU.
func inParallel(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), max(n/64, 1))
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w*n/workers, (w+1)*n/workers)
		}()
	}
	wg.Wait()
}
