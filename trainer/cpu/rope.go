package cpu

import (
	"fmt"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// RoPE implements backend.Backend: for each head, with x1 the first half of
// the rotated features and x2 the second, x1' = x1·cos − x2·sin and
// x2' = x2·cos + x1·sin (transformers' rotate_half convention).
func (c *CPU) RoPE(x *tensor.Tensor, table *backend.RoPETable, positions []int32, heads, headDim int) {
	c.rope(x, table, positions, heads, headDim, 1)
}

// RoPEBackward implements backend.Backend: the transpose of a rotation is the
// rotation by the opposite angle (the attention factor scales both ways).
func (c *CPU) RoPEBackward(dx *tensor.Tensor, table *backend.RoPETable, positions []int32, heads, headDim int) {
	c.rope(dx, table, positions, heads, headDim, -1)
}

func (c *CPU) rope(x *tensor.Tensor, table *backend.RoPETable, positions []int32, heads, headDim int, sign float32) {
	width := heads * headDim
	if x.Len() != len(positions)*width {
		panic(fmt.Sprintf("cpu.RoPE: %d positions × %d heads × %d into %v", len(positions), heads, headDim, x))
	}
	half := table.RotaryDim / 2
	if table.RotaryDim > headDim || table.Cos.Cols() != half {
		panic(fmt.Sprintf("cpu.RoPE: table of rotary dim %d (cos %v) for head dim %d", table.RotaryDim, table.Cos, headDim))
	}
	npos := table.Positions()
	c.parallel(len(positions), 16, func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			p := int(positions[t])
			if p < 0 || p >= npos {
				panic(fmt.Sprintf("cpu.RoPE: position %d outside table of %d", p, npos))
			}
			cos := table.Cos.F32[p*half : (p+1)*half]
			sin := table.Sin.F32[p*half : (p+1)*half]
			for h := 0; h < heads; h++ {
				row := x.F32[t*width+h*headDim : t*width+h*headDim+table.RotaryDim]
				x1, x2 := row[:half], row[half:]
				for i := range half {
					a, b := x1[i], x2[i]
					cs, sn := cos[i], sign*sin[i]
					x1[i] = a*cs - b*sn
					x2[i] = b*cs + a*sn
				}
			}
		}
	})
}
