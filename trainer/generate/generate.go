// Package generate decodes text from a model.Model with its KV cache: greedy
// or sampled (temperature, top-k, top-p, applied in that order as
// transformers' logits warpers do), up to a number of new tokens or a stop
// token. It owns only the decoding loop and the sampler; the forward pass is
// the model's.
package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/eftml/eft/trainer/model"
)

// Options control decoding. The zero value (with MaxNewTokens set) is greedy.
type Options struct {
	MaxNewTokens int
	// Temperature divides the logits before sampling; 0 means greedy.
	Temperature float64
	TopK        int     // keep the k most likely tokens; 0 means all
	TopP        float64 // keep the smallest set whose probability reaches p; 0 or 1 means all
	StopTokens  []int32 // decoding ends after emitting one of these
	Seed        uint64  // sampling seed
	// OnToken, when set, receives each new token as soon as it is chosen
	// (streamed output); returning false ends decoding after that token.
	OnToken func(id int32) bool
}

// Generate continues prompt and returns the new tokens (the stop token
// included when one ended decoding).
func Generate(m *model.Model, prompt []int32, opt Options) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("generate: empty prompt")
	}
	if opt.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("generate: MaxNewTokens must be positive, got %d", opt.MaxNewTokens)
	}
	if opt.Temperature < 0 || opt.TopK < 0 || opt.TopP < 0 || opt.TopP > 1 {
		return nil, fmt.Errorf("generate: temperature %g, top_k %d, top_p %g out of range", opt.Temperature, opt.TopK, opt.TopP)
	}
	cache := m.NewKVCache(len(prompt) + opt.MaxNewTokens)
	s := newSampler(opt, m.Config.Vocab)
	logits, err := m.Decode(cache, prompt)
	if err != nil {
		return nil, err
	}
	var out []int32
	for {
		next := s.pick(logits)
		out = append(out, next)
		more := opt.OnToken == nil || opt.OnToken(next)
		if !more || len(out) == opt.MaxNewTokens || slices.Contains(opt.StopTokens, next) {
			return out, nil
		}
		if logits, err = m.Decode(cache, []int32{next}); err != nil {
			return nil, err
		}
	}
}

type sampler struct {
	opt   Options
	rng   *rand.Rand
	probs []float64
	order []int32
}

func newSampler(opt Options, vocab int) *sampler {
	return &sampler{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0x5eed)), probs: make([]float64, vocab), order: make([]int32, vocab)}
}

// pick returns the next token for one position's logits.
func (s *sampler) pick(logits []float32) int32 {
	if s.opt.Temperature == 0 {
		return argmax(logits)
	}
	// Temperature, then top-k and top-p over the tokens sorted by logit.
	for i := range s.order {
		s.order[i] = int32(i)
	}
	slices.SortStableFunc(s.order, func(a, b int32) int {
		switch {
		case logits[a] > logits[b]:
			return -1
		case logits[a] < logits[b]:
			return 1
		}
		return 0
	})
	keep := len(s.order)
	if s.opt.TopK > 0 {
		keep = min(keep, s.opt.TopK)
	}
	mx := float64(logits[s.order[0]]) / s.opt.Temperature
	var sum float64
	for i := range keep {
		p := math.Exp(float64(logits[s.order[i]])/s.opt.Temperature - mx)
		s.probs[i] = p
		sum += p
	}
	if p := s.opt.TopP; p > 0 && p < 1 {
		var cum float64
		for i := range keep {
			cum += s.probs[i] / sum
			if cum >= p {
				keep = i + 1
				break
			}
		}
		sum = 0
		for i := range keep {
			sum += s.probs[i]
		}
	}
	u := s.rng.Float64() * sum
	for i := range keep {
		u -= s.probs[i]
		if u < 0 {
			return s.order[i]
		}
	}
	return s.order[keep-1]
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}
