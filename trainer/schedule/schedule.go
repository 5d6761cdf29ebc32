package schedule

import (
	"fmt"
	"math"
	"strings"
)

// The scheduler names of transformers' SchedulerType.
const (
	Constant           = "constant"
	ConstantWithWarmup = "constant_with_warmup"
	Linear             = "linear"
	Cosine             = "cosine"
	CosineWithMinLR    = "cosine_with_min_lr"
	CosineWithRestarts = "cosine_with_restarts"
	Polynomial         = "polynomial"
	InverseSqrt        = "inverse_sqrt"
)

// Kinds lists the supported scheduler names.
var Kinds = []string{Constant, ConstantWithWarmup, Linear, Cosine, CosineWithMinLR, CosineWithRestarts, Polynomial, InverseSqrt}

// Schedule is one learning-rate schedule; it marshals to JSON as is, for
// checkpoints.
type Schedule struct {
	Kind        string  `json:"kind"`
	BaseLR      float64 `json:"base_lr"`
	WarmupSteps int     `json:"warmup_steps"`
	TotalSteps  int     `json:"total_steps"`

	// NumCycles: cosine kinds (default 0.5; cosine_with_restarts default 1).
	NumCycles float64 `json:"num_cycles,omitempty"`
	// MinLRRate: cosine_with_min_lr's floor as a fraction of BaseLR.
	MinLRRate float64 `json:"min_lr_rate,omitempty"`
	// LREnd, Power: polynomial (defaults 1e-7 and 1).
	LREnd float64 `json:"lr_end,omitempty"`
	Power float64 `json:"power,omitempty"`
	// Timescale: inverse_sqrt (default: WarmupSteps, else 10000).
	Timescale int `json:"timescale,omitempty"`
}

// Options are the scheduler-specific kwargs (lr_scheduler_kwargs); nil
// pointers take transformers' defaults.
type Options struct {
	NumCycles *float64
	MinLR     *float64 // cosine_with_min_lr: absolute floor ...
	MinLRRate *float64 // ... or the floor as a fraction of the base lr (exactly one)
	LREnd     *float64
	Power     *float64
	Timescale *int
}

// New builds and checks a schedule. totalSteps is the number of optimizer
// updates of the run.
func New(kind string, baseLR float64, warmupSteps, totalSteps int, opt Options) (*Schedule, error) {
	s := &Schedule{Kind: kind, BaseLR: baseLR, WarmupSteps: warmupSteps, TotalSteps: totalSteps}
	switch {
	case !(baseLR >= 0) || math.IsInf(baseLR, 0):
		return nil, fmt.Errorf("schedule: learning rate %g must be a non-negative number", baseLR)
	case warmupSteps < 0:
		return nil, fmt.Errorf("schedule: warmup steps %d must not be negative", warmupSteps)
	case totalSteps < 0:
		return nil, fmt.Errorf("schedule: total steps %d must not be negative", totalSteps)
	}
	num := func(p *float64, def float64) float64 {
		if p == nil {
			return def
		}
		return *p
	}
	switch kind {
	case Constant, ConstantWithWarmup, Linear:
	case Cosine:
		s.NumCycles = num(opt.NumCycles, 0.5)
	case CosineWithRestarts:
		s.NumCycles = num(opt.NumCycles, 1)
	case CosineWithMinLR:
		s.NumCycles = num(opt.NumCycles, 0.5)
		switch {
		case (opt.MinLR == nil) == (opt.MinLRRate == nil):
			return nil, fmt.Errorf("schedule: cosine_with_min_lr needs exactly one of min_lr and min_lr_rate")
		case opt.MinLR != nil:
			if baseLR == 0 {
				return nil, fmt.Errorf("schedule: cosine_with_min_lr with min_lr needs a non-zero learning rate")
			}
			s.MinLRRate = *opt.MinLR / baseLR
		default:
			s.MinLRRate = *opt.MinLRRate
		}
		if s.MinLRRate < 0 || s.MinLRRate > 1 {
			return nil, fmt.Errorf("schedule: cosine_with_min_lr floor is %g of the learning rate; it must be within [0, 1]", s.MinLRRate)
		}
	case Polynomial:
		s.LREnd, s.Power = num(opt.LREnd, 1e-7), num(opt.Power, 1)
		if !(baseLR > s.LREnd) {
			return nil, fmt.Errorf("schedule: polynomial lr_end %g must be smaller than the learning rate %g", s.LREnd, baseLR)
		}
	case InverseSqrt:
		s.Timescale = 10000
		if warmupSteps > 0 {
			s.Timescale = warmupSteps
		}
		if opt.Timescale != nil {
			s.Timescale = *opt.Timescale
		}
		if s.Timescale <= 0 {
			return nil, fmt.Errorf("schedule: inverse_sqrt timescale %d must be positive", s.Timescale)
		}
	default:
		return nil, fmt.Errorf("schedule: unknown lr_scheduler %q (supported: %s)", kind, strings.Join(Kinds, ", "))
	}
	return s, nil
}

// LR is the learning rate of the update that follows step completed updates.
func (s *Schedule) LR(step int) float64 { return s.BaseLR * s.Factor(step) }

// Factor is the multiplier of the base learning rate at step (transformers'
// lr_lambda).
func (s *Schedule) Factor(step int) float64 {
	if s.Kind == Constant {
		return 1
	}
	if step < s.WarmupSteps {
		return float64(step) / float64(max(1, s.WarmupSteps))
	}
	progress := float64(step-s.WarmupSteps) / float64(max(1, s.TotalSteps-s.WarmupSteps))
	switch s.Kind {
	case Linear:
		return max(0, float64(s.TotalSteps-step)/float64(max(1, s.TotalSteps-s.WarmupSteps)))
	case Cosine:
		return max(0, 0.5*(1+math.Cos(math.Pi*s.NumCycles*2*progress)))
	case CosineWithMinLR:
		f := 0.5 * (1 + math.Cos(math.Pi*s.NumCycles*2*progress))
		return max(0, f*(1-s.MinLRRate)+s.MinLRRate)
	case CosineWithRestarts:
		if progress >= 1 {
			return 0
		}
		return max(0, 0.5*(1+math.Cos(math.Pi*math.Mod(s.NumCycles*progress, 1))))
	case Polynomial:
		if step > s.TotalSteps {
			return s.LREnd / s.BaseLR
		}
		lrRange := s.BaseLR - s.LREnd
		remaining := 1 - float64(step-s.WarmupSteps)/float64(s.TotalSteps-s.WarmupSteps)
		return (lrRange*math.Pow(remaining, s.Power) + s.LREnd) / s.BaseLR
	case InverseSqrt:
		shift := s.Timescale - s.WarmupSteps
		return 1 / math.Sqrt(float64(step+shift)/float64(s.Timescale))
	}
	return 1 // constant_with_warmup after warmup
}

// WarmupSteps applies Axolotl's rule: warmup_steps when set; else
// int(warmup_ratio·total); else min(int(0.03·total), 100); and a single
// warmup step becomes 2. Pass nil for keys the config does not set.
func WarmupSteps(totalSteps int, warmupSteps *int, warmupRatio *float64) (int, error) {
	if warmupSteps != nil && warmupRatio != nil && *warmupSteps != 0 && *warmupRatio != 0 {
		return 0, fmt.Errorf("schedule: warmup_steps and warmup_ratio are mutually exclusive")
	}
	var w int
	switch {
	case warmupSteps != nil:
		w = *warmupSteps
	case warmupRatio != nil:
		if *warmupRatio < 0 || *warmupRatio > 1 {
			return 0, fmt.Errorf("schedule: warmup_ratio %g must be within [0, 1]", *warmupRatio)
		}
		w = max(int(*warmupRatio*float64(totalSteps)), 0)
	default:
		w = min(int(0.03*float64(totalSteps)), 100)
	}
	if w < 0 {
		return 0, fmt.Errorf("schedule: warmup_steps %d must not be negative", w)
	}
	if w == 1 {
		w = 2
	}
	return w, nil
}
