package cpu

import (
	"fmt"
	"math"

	"github.com/eftml/eft/trainer/tensor"
)

// RMSNorm implements backend.Backend: out = x·rstd·w with
// rstd = 1/sqrt(mean(x²)+eps), the sum of squares taken in float64.
func (c *CPU) RMSNorm(out, rstd, x, w *tensor.Tensor, eps float32) {
	d := w.Len()
	rows := x.Len() / d
	if x.Len() != rows*d || out.Len() != x.Len() || rstd.Len() != rows {
		panic(fmt.Sprintf("cpu.RMSNorm: x %v, out %v, rstd %v, weight %v", x, out, rstd, w))
	}
	c.parallel(rows, 16, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr := x.F32[r*d : (r+1)*d]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			s := float32(1 / math.Sqrt(ss/float64(d)+float64(eps)))
			rstd.F32[r] = s
			or := out.F32[r*d : (r+1)*d]
			for i, v := range xr {
				or[i] = v * s * w.F32[i]
			}
		}
	})
}

// RMSNormBackward implements backend.Backend. With y = x·r·w and
// r = (mean(x²)+eps)^-½: dx = r·w⊙dy − r³/d · x · Σ(dy⊙w⊙x), dw = Σ dy⊙x·r.
func (c *CPU) RMSNormBackward(dx, dw, dout, x, w, rstd *tensor.Tensor) {
	d := w.Len()
	rows := x.Len() / d
	if dx.Len() != x.Len() || dout.Len() != x.Len() || rstd.Len() != rows || (dw != nil && dw.Len() != d) {
		panic(fmt.Sprintf("cpu.RMSNormBackward: dx %v, dout %v, x %v, rstd %v, weight %v", dx, dout, x, rstd, w))
	}
	c.parallel(rows, 16, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, gr, dr := x.F32[r*d:(r+1)*d], dout.F32[r*d:(r+1)*d], dx.F32[r*d:(r+1)*d]
			s := rstd.F32[r]
			var dot float64
			for i, v := range xr {
				dot += float64(gr[i]) * float64(w.F32[i]) * float64(v)
			}
			k := float32(dot) * s * s * s / float32(d)
			for i, v := range xr {
				dr[i] += s*w.F32[i]*gr[i] - k*v
			}
		}
	})
	if dw == nil {
		return
	}
	// Weight gradient: workers split the columns so none share a float.
	c.parallel(d, 16, func(_, lo, hi int) {
		for r := 0; r < rows; r++ {
			xr, gr := x.F32[r*d:(r+1)*d], dout.F32[r*d:(r+1)*d]
			s := rstd.F32[r]
			for i := lo; i < hi; i++ {
				dw.F32[i] += gr[i] * xr[i] * s
			}
		}
	})
}
