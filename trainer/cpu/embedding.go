package cpu

import (
	"fmt"

	"github.com/eftml/eft/trainer/tensor"
)

// Embedding implements backend.Backend.
func (c *CPU) Embedding(out, table *tensor.Tensor, ids []int32) {
	dim, vocab := table.Cols(), table.Rows()
	if out.Len() != len(ids)*dim {
		panic(fmt.Sprintf("cpu.Embedding: %d ids of width %d into %v", len(ids), dim, out))
	}
	c.parallel(len(ids), 32, func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			id := int(ids[t])
			if id < 0 || id >= vocab {
				panic(fmt.Sprintf("cpu.Embedding: token id %d outside vocabulary of %d", id, vocab))
			}
			copy(out.F32[t*dim:(t+1)*dim], table.F32[id*dim:(id+1)*dim])
		}
	})
}

// EmbeddingBackward implements backend.Backend. Workers split the columns, so
// two tokens with the same id never race.
func (c *CPU) EmbeddingBackward(dtable, dout *tensor.Tensor, ids []int32) {
	dim := dtable.Cols()
	if dout.Len() != len(ids)*dim {
		panic(fmt.Sprintf("cpu.EmbeddingBackward: %d ids of width %d from %v", len(ids), dim, dout))
	}
	c.parallel(dim, 16, func(_, lo, hi int) {
		for t, id := range ids {
			src := dout.F32[t*dim+lo : t*dim+hi]
			dst := dtable.F32[int(id)*dim+lo : int(id)*dim+hi]
			for i, v := range src {
				dst[i] += v
			}
		}
	})
}
