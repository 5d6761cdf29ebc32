package cpu

import (
	"fmt"
	"math"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// CrossEntropy implements backend.Backend. Each row's loss is
// logsumexp(logits) − logits[target]; its gradient is softmax − onehot.
func (c *CPU) CrossEntropy(logits *tensor.Tensor, targets []int32, grad bool, gradScale float32) (float64, int) {
	rows, vocab := logits.Rows(), logits.Cols()
	if rows != len(targets) {
		panic(fmt.Sprintf("cpu.CrossEntropy: %d targets for %v", len(targets), logits))
	}
	for w := range c.partial {
		c.partial[w] = 0
	}
	counted := 0
	for _, t := range targets {
		if t != backend.IgnoreIndex {
			counted++
		}
	}
	c.parallel(rows, 4, func(w, lo, hi int) {
		var sum float64
		for r := lo; r < hi; r++ {
			row := logits.F32[r*vocab : (r+1)*vocab]
			t := int(targets[r])
			if t == backend.IgnoreIndex {
				if grad {
					clear(row)
				}
				continue
			}
			if t < 0 || t >= vocab {
				panic(fmt.Sprintf("cpu.CrossEntropy: target %d outside vocabulary of %d", t, vocab))
			}
			mx := float32(math.Inf(-1))
			for _, x := range row {
				mx = max(mx, x)
			}
			sum -= float64(row[t])
			var se float32
			if !grad {
				for _, x := range row {
					se += exp32(x - mx)
				}
				sum += float64(mx) + math.Log(float64(se))
				continue
			}
			for j, x := range row { // keep the exponentials: they become the gradient
				e := exp32(x - mx)
				row[j] = e
				se += e
			}
			sum += float64(mx) + math.Log(float64(se))
			inv := gradScale / se
			for j := range row {
				row[j] *= inv
			}
			row[t] -= gradScale
		}
		c.partial[w] += sum
	})
	var total float64
	for _, s := range c.partial {
		total += s
	}
	return total, counted
}
