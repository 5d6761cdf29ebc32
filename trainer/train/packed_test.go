package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/model"
)

// Training on packed rows is training on the samples one by one: the same
// summed loss over the same counted tokens and the same gradients, because
// attention never crosses a sample boundary, positions restart, and no
// target straddles two samples. Padding counts for nothing.
func TestPackedRowsTrainLikeSeparateSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	var samples []packing.Sample
	for _, n := range []int{5, 9, 3, 12, 7, 4} {
		s := packing.Sample{InputIDs: make([]int32, n), Labels: make([]int32, n)}
		for i := range n {
			s.InputIDs[i] = int32(r.IntN(96))
			s.Labels[i] = s.InputIDs[i]
		}
		s.Labels[0] = backend.IgnoreIndex // a prompt token
		samples = append(samples, s)
	}
	packed, st, err := packing.Build(samples, packing.Options{SequenceLen: 16, MicroBatchSize: 8, Pack: true, PadTokenID: 0, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(packed) != 1 || st.Rows >= len(samples) {
		t.Fatalf("expected one micro-batch of packed rows, got %d batches, %d rows", len(packed), st.Rows)
	}

	m := tinyModel(t, tinyConfig())
	for _, p := range m.Params() {
		m.SetTrainable(p, true)
	}
	m.ZeroGrads()
	packedSum, packedN, err := m.ForwardBackward(FromPacked(&packed[0], 0), 1)
	if err != nil {
		t.Fatal(err)
	}
	g1 := grads(m)

	m.ZeroGrads()
	var sepSum float64
	sepN := 0
	for _, s := range samples {
		n := len(s.InputIDs)
		b := &model.Batch{Rows: 1, Cols: n, Tokens: s.InputIDs, Targets: model.ShiftLabels(s.Labels, nil, 1, n)}
		sum, cnt, err := m.ForwardBackward(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		sepSum += sum
		sepN += cnt
	}
	if packedN != sepN || math.Abs(packedSum-sepSum) > 1e-4*sepSum {
		t.Fatalf("packed: loss %v over %d tokens; separately: %v over %d", packedSum, packedN, sepSum, sepN)
	}
	assertSameGrads(t, "packed vs separate", m, grads(m), g1, 1e-5)
}
