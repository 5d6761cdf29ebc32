package model

import (
	"fmt"

	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

// parts is the number of outputs the linear fills.
func (l *Linear) parts() int {
	if l.Split == nil {
		return 1
	}
	return len(l.Split)
}

// partRows is the range of W's rows (output features) that part p uses.
func (l *Linear) partRows(p int) (r0, r1 int) {
	if l.Split == nil {
		return 0, l.Out
	}
	for _, n := range l.Split[:p] {
		r0 += n
	}
	return r0, r0 + l.Split[p]
}

// quantPart is the 4-bit weight part p multiplies by.
func (l *Linear) quantPart(p int) *quant.Matrix {
	if l.Split == nil {
		return l.W.Quant
	}
	return l.quantParts[p]
}

// partOf points view at rows [r0, r1) of t (a weight or its gradient
// [out, in], or a bias [out]) and returns it; a range covering all of t
// returns t itself.
func partOf(t, view *tensor.Tensor, r0, r1 int) *tensor.Tensor {
	if r0 == 0 && r1 == t.Dim(0) {
		return t
	}
	if t.Rank() == 1 {
		col := *t
		col.Reshape(t.Len(), 1)
		return col.SliceRows(view, r0, r1).Reshape(r1 - r0)
	}
	return t.SliceRows(view, r0, r1)
}

// splitQuantized gives a fused linear's 4-bit weight one matrix per part,
// each holding the part's rows of the whole matrix's quantization: the
// values dequantize exactly as the whole matrix's do (bitsandbytes
// quantizes the fused checkpoint weight as one tensor). The codes are
// shared; the block scales are shared too where a part starts on a
// double-quantization group (256 blocks), else the part gets its blocks'
// scales as float32. A part must start on a quantization block.
func (l *Linear) splitQuantized() error {
	q := l.W.Quant
	l.quantParts = make([]*quant.Matrix, len(l.Split))
	for p := range l.Split {
		r0, r1 := l.partRows(p)
		e0, e1 := r0*q.Cols, r1*q.Cols
		if e0%q.BlockSize != 0 {
			return fmt.Errorf("model: %s: the part at row %d of its %d×%d 4-bit weight does not start on a %d-element quantization block",
				l.Module, r0, q.Rows, q.Cols, q.BlockSize)
		}
		b0, b1 := e0/q.BlockSize, (e1+q.BlockSize-1)/q.BlockSize
		part := &quant.Matrix{Rows: r1 - r0, Cols: q.Cols, Type: q.Type, BlockSize: q.BlockSize,
			Packed: q.Packed[e0/2 : (e1+1)/2]}
		switch {
		case q.Absmax != nil:
			part.Absmax = q.Absmax[b0:b1]
		case b0%quant.DoubleQuantBlockSize == 0:
			g0, g1 := b0/quant.DoubleQuantBlockSize, (b1+quant.DoubleQuantBlockSize-1)/quant.DoubleQuantBlockSize
			part.QAbsmax, part.Absmax2, part.Offset = q.QAbsmax[b0:b1], q.Absmax2[g0:g1], q.Offset
		default:
			part.Absmax = make([]float32, b1-b0)
			for b := range part.Absmax {
				part.Absmax[b] = q.BlockAbsmax(b0 + b)
			}
		}
		l.quantParts[p] = part
	}
	return nil
}
