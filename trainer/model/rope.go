package model

import (
	"fmt"
	"math"

	"github.com/eftml/eft/trainer/backend"
)

// RopeParams are the rotary-embedding settings of config.json, from either
// transformers 5's rope_parameters or the older rope_theta + rope_scaling.
type RopeParams struct {
	Type          string  // default, linear, dynamic, llama3, yarn, longrope
	Theta         float64 // rope_theta
	Factor        float64 // scaling factor (linear, dynamic, llama3, yarn)
	PartialRotary float64 // partial_rotary_factor; 0 means 1

	// llama3
	LowFreqFactor, HighFreqFactor float64
	// llama3, yarn and longrope; 0 means max_position_embeddings
	OriginalMaxPositions int

	// yarn
	AttentionFactor      float64 // 0 means derived from Factor (and the mscales)
	BetaFast, BetaSlow   float64 // 0 means 32 and 1
	Mscale, MscaleAllDim float64
	Truncate             *bool // nil means true

	// longrope (Phi-3): the inverse frequencies are divided by ShortFactor
	// while the longest sequence fits OriginalMaxPositions, by LongFactor
	// beyond it (rotaryDim/2 entries each); Factor, when 0, is
	// maxPositions/OriginalMaxPositions and sets the default attention
	// factor.
	ShortFactor, LongFactor []float64
}

func (p *RopeParams) validate(headDim int) error {
	if p.Theta <= 0 {
		return fmt.Errorf("model: rope_theta %g must be positive", p.Theta)
	}
	switch p.Type {
	case "", "default":
	case "linear", "dynamic":
		if p.Factor <= 0 {
			return fmt.Errorf("model: rope type %q needs a positive factor, got %g", p.Type, p.Factor)
		}
	case "llama3":
		if p.Factor <= 0 || p.LowFreqFactor <= 0 || p.HighFreqFactor <= p.LowFreqFactor {
			return fmt.Errorf("model: rope type llama3 needs factor > 0 and high_freq_factor > low_freq_factor > 0, got %g, %g, %g",
				p.Factor, p.LowFreqFactor, p.HighFreqFactor)
		}
	case "yarn":
		if p.Factor <= 0 {
			return fmt.Errorf("model: rope type yarn needs a positive factor, got %g", p.Factor)
		}
	case "longrope":
		half := p.rotaryDim(headDim) / 2
		if len(p.ShortFactor) != half || len(p.LongFactor) != half {
			return fmt.Errorf("model: rope type longrope needs %d short and long factors (rotary dim / 2), got %d and %d",
				half, len(p.ShortFactor), len(p.LongFactor))
		}
	default:
		return fmt.Errorf("model: rope type %q is not supported (default, linear, dynamic, llama3, yarn, longrope)", p.Type)
	}
	if d := p.rotaryDim(headDim); d <= 0 || d%2 != 0 {
		return fmt.Errorf("model: partial_rotary_factor %g leaves %d rotary features of head_dim %d", p.PartialRotary, d, headDim)
	}
	return nil
}

func (p *RopeParams) rotaryDim(headDim int) int {
	if p.PartialRotary == 0 {
		return headDim
	}
	return int(float64(headDim) * p.PartialRotary)
}

// InvFreq returns the inverse frequencies (rotaryDim/2 of them) and the
// attention factor that multiplies cos and sin, exactly as transformers'
// modeling_rope_utils computes them. seqLen (the longest sequence, max
// position + 1) only matters for dynamic NTK scaling, which stretches the
// base once a sequence outgrows maxPositions, and for longrope, which
// switches to its long factors once one outgrows OriginalMaxPositions.
func (p *RopeParams) InvFreq(headDim, maxPositions, seqLen int) ([]float64, float64) {
	dim := p.rotaryDim(headDim)
	half := dim / 2
	// torch computes base ** (arange(0, dim, 2) / dim) in float32.
	defaultInv := func(base float64) []float64 {
		inv := make([]float64, half)
		for i := range inv {
			exp := float32(float32(2*i) / float32(dim))
			inv[i] = float64(float32(1 / float32(math.Pow(base, float64(exp)))))
		}
		return inv
	}
	origMax := p.OriginalMaxPositions
	if origMax == 0 {
		origMax = maxPositions
	}
	switch p.Type {
	case "linear":
		inv := defaultInv(p.Theta)
		for i := range inv {
			inv[i] /= p.Factor
		}
		return inv, 1
	case "dynamic":
		base := p.Theta
		if seqLen > maxPositions {
			base *= math.Pow(p.Factor*float64(seqLen)/float64(maxPositions)-(p.Factor-1), float64(dim)/float64(dim-2))
		}
		return defaultInv(base), 1
	case "llama3":
		inv := defaultInv(p.Theta)
		lowWavelen := float64(origMax) / p.LowFreqFactor
		highWavelen := float64(origMax) / p.HighFreqFactor
		for i, f := range inv {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen < highWavelen: // high frequency: unchanged
			case wavelen > lowWavelen: // low frequency: interpolated
				inv[i] = f / p.Factor
			default: // in between: smooth blend
				smooth := (float64(origMax)/wavelen - p.LowFreqFactor) / (p.HighFreqFactor - p.LowFreqFactor)
				inv[i] = (1-smooth)*f/p.Factor + smooth*f
			}
		}
		return inv, 1
	case "yarn":
		return p.yarn(dim, origMax)
	case "longrope":
		return p.longrope(dim, maxPositions, origMax, seqLen)
	}
	return defaultInv(p.Theta), 1
}

// longrope is _compute_longrope_parameters: 1/(ext·theta^(2i/dim)) in
// float32, ext the short or long factors; the attention factor is
// attention_factor, else sqrt(1 + ln(factor)/ln(original max)) for a
// factor above 1.
func (p *RopeParams) longrope(dim, maxPositions, origMax, seqLen int) ([]float64, float64) {
	ext := p.ShortFactor
	if seqLen > origMax {
		ext = p.LongFactor
	}
	factor := p.Factor
	if factor == 0 {
		factor = float64(maxPositions) / float64(origMax)
	}
	attn := p.AttentionFactor
	if attn == 0 {
		attn = 1
		if factor > 1 {
			attn = math.Sqrt(1 + math.Log(factor)/math.Log(float64(origMax)))
		}
	}
	inv := make([]float64, dim/2)
	for i := range inv {
		exp := float32(float32(2*i) / float32(dim))
		pow := float32(math.Pow(p.Theta, float64(exp)))
		inv[i] = float64(1 / (float32(ext[i]) * pow))
	}
	return inv, attn
}

// longropeSeqLen is the seqLen the table is made for when need positions
// are in use: 0 while they fit the original maximum, one past it beyond
// (longrope's frequencies depend on nothing else).
func (p *RopeParams) longropeSeqLen(need, maxPositions int) int {
	origMax := p.OriginalMaxPositions
	if origMax == 0 {
		origMax = maxPositions
	}
	if need > origMax {
		return origMax + 1
	}
	return 0
}

func (p *RopeParams) yarn(dim, origMax int) ([]float64, float64) {
	factor := p.Factor
	mscale := func(scale, m float64) float64 {
		if scale <= 1 {
			return 1
		}
		return 0.1*m*math.Log(scale) + 1
	}
	attn := p.AttentionFactor
	if attn == 0 {
		if p.Mscale != 0 && p.MscaleAllDim != 0 {
			attn = mscale(factor, p.Mscale) / mscale(factor, p.MscaleAllDim)
		} else {
			attn = mscale(factor, 1)
		}
	}
	betaFast, betaSlow := p.BetaFast, p.BetaSlow
	if betaFast == 0 {
		betaFast = 32
	}
	if betaSlow == 0 {
		betaSlow = 1
	}
	correctionDim := func(rotations float64) float64 {
		return float64(dim) * math.Log(float64(origMax)/(rotations*2*math.Pi)) / (2 * math.Log(p.Theta))
	}
	low, high := correctionDim(betaFast), correctionDim(betaSlow)
	if p.Truncate == nil || *p.Truncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = max(low, 0), min(high, float64(dim-1))
	if low == high {
		high += 0.001 // as transformers: avoid dividing by zero
	}
	half := dim / 2
	inv := make([]float64, half)
	for i := range inv {
		posFreq := float64(float32(math.Pow(p.Theta, float64(float32(2*i)/float32(dim)))))
		extrapolation := 1 / posFreq
		interpolation := 1 / (factor * posFreq)
		ramp := min(max((float64(i)-low)/(high-low), 0), 1)
		extrapolationFactor := 1 - ramp
		inv[i] = interpolation*(1-extrapolationFactor) + extrapolation*extrapolationFactor
	}
	return inv, attn
}

// ropeTable fills cos and sin ([positions, half], row-major) for positions
// 0..positions-1. Angles are computed in float64 from the float32 inverse
// frequencies, then rounded once.
func ropeTable(inv []float64, attn float64, positions int, cos, sin []float32) {
	half := len(inv)
	for p := range positions {
		for i, f := range inv {
			ang := float64(float32(float64(p) * f))
			cos[p*half+i] = float32(math.Cos(ang) * attn)
			sin[p*half+i] = float32(math.Sin(ang) * attn)
		}
	}
}

// ropeCache keeps the cos/sin table on the backend, growing it when a batch
// reaches further positions. For longrope it switches between the short and
// long factors as the batch's longest sequence requires; for dynamic NTK
// scaling it follows
// transformers' dynamic_rope_update: the frequencies are recomputed when a
// sequence grows past the longest seen beyond max_position_embeddings, and
// restored once a sequence is shorter than max_position_embeddings again.
type ropeCache struct {
	table     backend.RoPETable
	positions int // rows in the table
	seqLen    int // sequence length the frequencies were computed for (dynamic only)
}

func (rc *ropeCache) ensure(m *Model, need int) {
	c := &m.Config
	seqLen := rc.seqLen
	switch c.Rope.Type {
	case "dynamic":
		switch {
		case need > max(rc.seqLen, c.MaxPositions):
			seqLen = need
		case need < c.MaxPositions && rc.seqLen > c.MaxPositions:
			seqLen = 0
		}
	case "longrope":
		// transformers' longrope_frequency_update: long factors while
		// the longest sequence outgrows the original maximum, short ones
		// otherwise.
		seqLen = c.Rope.longropeSeqLen(need, c.MaxPositions)
	}
	if rc.table.Cos != nil && need <= rc.positions && seqLen == rc.seqLen {
		return
	}
	positions := max(need, rc.positions)
	positions = (positions + 255) &^ 255
	inv, attn := c.Rope.InvFreq(c.HeadDim, c.MaxPositions, seqLen)
	half := len(inv)
	cos, sin := make([]float32, positions*half), make([]float32, positions*half)
	ropeTable(inv, attn, positions, cos, sin)
	be := m.Backend
	rc.table = backend.RoPETable{Cos: be.Alloc(positions, half), Sin: be.Alloc(positions, half), RotaryDim: 2 * half}
	be.Upload(rc.table.Cos, cos)
	be.Upload(rc.table.Sin, sin)
	rc.positions, rc.seqLen = positions, seqLen
}
