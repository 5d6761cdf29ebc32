package optim

import (
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"sync"
)

// Param is one trainable tensor's host buffers. Data and Grad have the same
// length; Grad == nil marks a frozen parameter.
type Param struct {
	Name string
	Data []float32
	Grad []float32
	// NoDecay exempts the parameter from weight decay (the second parameter
	// group transformers' Trainer builds; see DecayExempt).
	NoDecay bool
}

// Optimizer is what the training loop steps.
type Optimizer interface {
	// Step updates every parameter with a gradient at learning rate lr.
	Step(params []*Param, lr float64) error
	// State returns the optimizer state keyed by parameter name; the slices
	// are the live buffers (copy them if the optimizer keeps stepping).
	State() State
	// LoadState restores a state taken from an optimizer of the same kind.
	LoadState(State) error
}

// State is an optimizer's resumable state.
type State struct {
	Kind   string                 // "adamw" or "sgd"
	Params map[string]*ParamState // by Param.Name
}

// ParamState is one parameter's step count and buffers, named as torch names
// them in optimizer.state_dict(): "exp_avg" and "exp_avg_sq" for AdamW,
// "momentum_buffer" for SGD.
type ParamState struct {
	Step    int64
	Buffers map[string][]float32
}

var decayExemptPatterns = regexp.MustCompile(`bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)`)

// DecayExempt reports whether transformers' Trainer puts a parameter in the
// no-weight-decay group: its lower-cased name contains "bias", "layernorm",
// "rmsnorm", a ".norm" component or a "_norm" suffix (get_decay_parameter_names).
func DecayExempt(name string) bool {
	return decayExemptPatterns.MatchString(strings.ToLower(name))
}

func checkParam(p *Param) error {
	if p.Grad != nil && len(p.Grad) != len(p.Data) {
		return fmt.Errorf("optim: parameter %q has %d values but %d gradients", p.Name, len(p.Data), len(p.Grad))
	}
	return nil
}

// parallelChunk is the element count below which a loop runs on one
// goroutine; above it, chunks of this size spread over the CPUs.
const parallelChunk = 1 << 16

// forChunks calls fn on [lo, hi) ranges covering [0, n), concurrently when n
// is large. The update of each element depends only on that element, so
// splitting changes nothing in the result.
func forChunks(n int, fn func(lo, hi int)) {
	if n <= parallelChunk {
		fn(0, n)
		return
	}
	workers := min(runtime.GOMAXPROCS(0), (n+parallelChunk-1)/parallelChunk)
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
