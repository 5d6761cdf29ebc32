package optim

import "math"

// ClipGradNorm scales every gradient so that their global L2 norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_ does: each tensor's norm, then
// the norm of those norms; coefficient min(1, maxNorm/(norm+1e-6)) applied to
// all gradients. It returns the total norm before clipping. maxNorm <= 0 only
// measures. A non-finite norm is returned without touching the gradients
// (torch would multiply them by NaN); the caller decides what to do.
func ClipGradNorm(params []*Param, maxNorm float64) float64 {
	var sumSq float64
	for _, p := range params {
		if p.Grad == nil {
			continue
		}
		var s float64
		for _, g := range p.Grad {
			s += float64(g) * float64(g)
		}
		// torch computes each tensor's norm in float32 before combining.
		n := float64(float32(math.Sqrt(s)))
		sumSq += n * n
	}
	total := float64(float32(math.Sqrt(sumSq)))
	if maxNorm <= 0 || math.IsNaN(total) || math.IsInf(total, 0) {
		return total
	}
	coef := maxNorm / (total + 1e-6)
	if coef >= 1 {
		return total
	}
	c := float32(coef)
	for _, p := range params {
		if p.Grad == nil {
			continue
		}
		forChunks(len(p.Grad), func(lo, hi int) {
			g := p.Grad[lo:hi]
			for i := range g {
				g[i] *= c
			}
		})
	}
	return total
}
