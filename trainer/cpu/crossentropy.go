package cpu

import (
	"fmt"
	"math"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// CrossEntropy implements backend.Backend. Each row's loss is
// logsumexp(y) − y[target] with y the logits, soft-capped when softCap > 0;
// its gradient is softmax(y) − onehot, times dy/dlogits = 1 − (y/softCap)²
// when capped.
func (c *CPU) CrossEntropy(logits *tensor.Tensor, targets []int32, softCap float32, grad bool, gradScale float32) (float64, int) {
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
			// With grad the capped logits replace the row (their derivative
			// needs them); without, they are computed as read and the row
			// stays as it was.
			capRead := softCap > 0 && !grad
			if softCap > 0 && grad {
				for j, x := range row {
					row[j] = backend.SoftCapped(x, softCap)
				}
			}
			mx := float32(math.Inf(-1))
			for _, x := range row {
				if capRead {
					x = backend.SoftCapped(x, softCap)
				}
				mx = max(mx, x)
			}
			yt := row[t]
			if capRead {
				yt = backend.SoftCapped(yt, softCap)
			}
			sum -= float64(yt)
			var se float32
			if !grad || softCap > 0 {
				for _, x := range row {
					if capRead {
						x = backend.SoftCapped(x, softCap)
					}
					se += exp32(x - mx)
				}
				sum += float64(mx) + math.Log(float64(se))
			}
			if !grad {
				continue
			}
			if softCap > 0 {
				inv := gradScale / se
				for j, y := range row {
					g := exp32(y-mx) * inv
					if j == t {
						g -= gradScale
					}
					th := y / softCap
					row[j] = g * (1 - th*th)
				}
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
