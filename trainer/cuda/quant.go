package cuda

import (
	"fmt"
	"unsafe"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

var _ backend.QuantMatMul = (*Backend)(nil)

// quantOnDevice is a 4-bit matrix's device copy: its packed codes, block
// scales (float32, or the double-quantized bytes and their float32 second
// level) and code table. It is uploaded at the matrix's first product and
// kept until Close: quantized weights are frozen.
type quantOnDevice struct {
	packed, absmax, qabsmax, absmax2, code *buffer
	n                                      int
}

// MatMulQuant implements backend.QuantMatMul: C = A·op(W) + beta·C with W
// 4-bit quantized. The whole of W is dequantized into a scratch buffer (one
// layer's weight at a time, in the precision's product type: bf16, or
// float32 at PrecisionFP32) and multiplied by cuBLASLt, bitsandbytes'
// dequantize-then-matmul; the values are trainer/quant's, rounded to bf16
// at bf16 precision.
func (b *Backend) MatMulQuant(c, a *tensor.Tensor, w *quant.Matrix, transW bool, beta float32) {
	in, out := w.Rows, w.Cols // op(W) is [in, out]
	if transW {
		in, out = w.Cols, w.Rows
	}
	if a.Rank() != 2 || c.Rank() != 2 || a.Cols() != in || c.Rows() != a.Rows() || c.Cols() != out {
		panic(fmt.Sprintf("cuda.MatMulQuant: shapes do not chain: A %v, W %d×%d (transW=%v), C %v", a, w.Rows, w.Cols, transW, c))
	}
	dt, et := tensor.BF16, elemBF16
	if b.opts.Precision == PrecisionFP32 {
		dt, et = tensor.F32, elemF32
	}
	n := w.Rows * w.Cols
	var dense *buffer
	// Not b.do: dequantizing writes only scratch, so converted operands
	// (the layer's input, read by its other products) stay valid.
	b.ex.do(func() {
		q := b.quantUpload(w)
		ptr := b.scratchFor(scratchQuantW, n*et.size())
		dense = &buffer{ptr: ptr, bytes: n * et.size(), owner: b}
		f32 := 0
		if et == elemF32 {
			f32 = 1
		}
		var absmax, qabsmax, absmax2 uintptr
		if q.absmax != nil {
			absmax = q.absmax.ptr
		} else {
			qabsmax, absmax2 = q.qabsmax.ptr, q.absmax2.ptr
		}
		b.kernel("quant4_dequant").p(ptr).i(f32).p(q.packed.ptr).p(absmax).p(qabsmax).p(absmax2).p(b.absmaxCode().ptr).
			f(w.Offset).p(q.code.ptr).l(n).i(w.BlockSize)
		b.launch(b.elementGrid((n+1)/2), d1(threads))
	})
	wt := tensor.OnDevice(dt, dense, w.Rows, w.Cols)
	b.gemm("MatMulQuant", c, a, wt, false, transW, a.Rows(), out, in, 1, 1, beta)
}

// quantUpload returns w's device copy, uploading it the first time. Runs on
// the executor.
func (b *Backend) quantUpload(w *quant.Matrix) *quantOnDevice {
	if q := b.quants[w]; q != nil {
		return q
	}
	up := func(p unsafe.Pointer, bytes int) *buffer {
		buf := b.allocBuffer(bytes)
		b.must(b.g.htodPageable(buf.ptr, p, bytes))
		return buf
	}
	q := &quantOnDevice{n: w.Rows * w.Cols}
	q.packed = up(unsafe.Pointer(&w.Packed[0]), len(w.Packed))
	if w.Absmax != nil {
		q.absmax = up(unsafe.Pointer(&w.Absmax[0]), 4*len(w.Absmax))
	} else {
		q.qabsmax = up(unsafe.Pointer(&w.QAbsmax[0]), len(w.QAbsmax))
		q.absmax2 = up(unsafe.Pointer(&w.Absmax2[0]), 4*len(w.Absmax2))
	}
	code := w.CodeTable()
	q.code = up(unsafe.Pointer(&code[0]), 4*len(code))
	if b.quants == nil {
		b.quants = map[*quant.Matrix]*quantOnDevice{}
	}
	b.quants[w] = q
	return q
}

// absmaxCode is the double-quantization code on the device (uploaded once).
func (b *Backend) absmaxCode() *buffer {
	if b.dcode == nil {
		code := quant.AbsmaxCode()
		b.dcode = b.allocBuffer(4 * len(code))
		b.must(b.g.htodPageable(b.dcode.ptr, unsafe.Pointer(&code[0]), 4*len(code)))
	}
	return b.dcode
}
