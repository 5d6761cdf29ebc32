package datasets

import (
	"fmt"
	"math"
)

// ValidationCount is how many of n samples val_set_size holds out, as
// Axolotl computes it: a value above 1 is a count (Axolotl passes
// int(val_set_size)), anything else a fraction that datasets'
// train_test_split rounds up (ceil(size * n)); the held-out samples are the
// last ones (shuffle=False). Both sides must keep at least one sample, and
// 1.0 is refused as train_test_split refuses it.
func ValidationCount(n int, size float64) (int, error) {
	var nEval int
	switch {
	case size < 0 || math.IsNaN(size) || math.IsInf(size, 0):
		return 0, fmt.Errorf("val_set_size %v must be a fraction in (0,1) or a row count", size)
	case size == 0:
		return 0, nil
	case size < 1:
		nEval = int(math.Ceil(size * float64(n)))
	case size == 1:
		return 0, fmt.Errorf("val_set_size 1.0 would leave no training samples; use a fraction below 1 or a count above 1")
	default:
		if size != math.Trunc(size) {
			return 0, fmt.Errorf("val_set_size %v above 1 must be a whole number of samples", size)
		}
		if size >= float64(n) {
			return 0, fmt.Errorf("val_set_size %v holds out every one of the %d samples; both splits need at least one", size, n)
		}
		nEval = int(size)
	}
	if nEval <= 0 || nEval >= n {
		return 0, fmt.Errorf("val_set_size %v gives %d validation samples out of %d; both splits need at least one", size, nEval, n)
	}
	return nEval, nil
}
