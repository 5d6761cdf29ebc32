package batches

import (
	"fmt"
	"math/rand/v2"
)

// Plan says which micro-batch a data-parallel rank reads at each step of
// each epoch. Every epoch has its own seeded order of all N micro-batches;
// rank r of World takes positions r, r+World, r+2·World, ... of that order,
// and the last N mod World micro-batches of the order are left out that
// epoch so every rank runs the same number of steps and no two ranks share
// a micro-batch.
type Plan struct {
	N     int    // micro-batches in the file
	Seed  uint64 // the run's seed
	Rank  int    // this trainer's rank, in [0, World)
	World int    // data-parallel trainers; 0 or 1 for one
}

func (p Plan) world() int { return max(1, p.World) }

func (p Plan) check() error {
	if p.N < 0 || p.Rank < 0 || p.Rank >= p.world() {
		return fmt.Errorf("batches: plan with %d micro-batches, rank %d of %d", p.N, p.Rank, p.world())
	}
	return nil
}

// StepsPerEpoch is how many micro-batches each rank reads per epoch.
func (p Plan) StepsPerEpoch() int { return p.N / p.world() }

// Order is the shared order of all micro-batches in an epoch: the same for
// the same seed and epoch, on every rank and every run.
func (p Plan) Order(epoch int) []int {
	order := make([]int, p.N)
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(p.Seed, uint64(epoch)*0x9e3779b97f4a7c15+1))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// Epoch lists the micro-batches this rank reads in an epoch, in order.
func (p Plan) Epoch(epoch int) ([]int, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	order := p.Order(epoch)
	steps := p.StepsPerEpoch()
	mine := make([]int, steps)
	for s := 0; s < steps; s++ {
		mine[s] = order[s*p.world()+p.Rank]
	}
	return mine, nil
}

// At is the micro-batch this rank reads at a step of an epoch: where a
// resumed run picks up.
func (p Plan) At(epoch, step int) (int, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	if step < 0 || step >= p.StepsPerEpoch() {
		return 0, fmt.Errorf("batches: step %d out of range [0, %d)", step, p.StepsPerEpoch())
	}
	return p.Order(epoch)[step*p.world()+p.Rank], nil
}
