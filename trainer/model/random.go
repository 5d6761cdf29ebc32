package model

import (
	"math/rand/v2"
	"strings"

	"github.com/eftml/eft/trainer/backend"
)

// NewRandom builds a model of config c with random weights the way
// transformers initialises a fresh decoder: matrices normal(0, std), norm
// weights 1, biases 0. Tests and benchmarks use it where no checkpoint is
// needed.
func NewRandom(c Config, be backend.Backend, seed uint64, std float64) (*Model, error) {
	return New(c, be, RandomWeights(seed, std))
}

// RandomWeights gives NewRandom's weights, for NewWith.
func RandomWeights(seed uint64, std float64) WeightFunc {
	rng := rand.New(rand.NewPCG(seed, 0xdecade))
	return func(name string, shape []int) ([]float32, error) {
		v, fixed := FixedInit(name, shape)
		if !fixed {
			for i := range v {
				v[i] = float32(rng.NormFloat64() * std)
			}
		}
		return v, nil
	}
}

// FixedInit allocates the values of a fresh weight of shape and sets those
// transformers does not draw: norm weights 1 and biases 0 (fixed true);
// for any other weight it returns zeros to fill with random values.
func FixedInit(name string, shape []int) (v []float32, fixed bool) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v = make([]float32, n)
	switch {
	case strings.HasSuffix(name, "norm.weight"):
		for i := range v {
			v[i] = 1
		}
		return v, true
	case strings.HasSuffix(name, ".bias"):
		return v, true
	}
	return v, false
}
