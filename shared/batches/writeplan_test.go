package batches

import (
	"bytes"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/packing"
)

// TestWritePlanMatchesWrite: the parallel writer makes the same file, byte
// for byte, as Write of Build's micro-batches, for one worker and several,
// over more micro-batches than one window holds; a plan padded with another
// token is refused naming the micro-batch.
func TestWritePlanMatchesWrite(t *testing.T) {
	samples := randomSamples(700, 128256, 5, true)
	for _, o := range []packing.Options{
		{SequenceLen: 512, MicroBatchSize: 2, Pack: true, PadTokenID: 3, Seed: 1},
		{SequenceLen: 512, MicroBatchSize: 3, PadTokenID: 3, Seed: 2},
	} {
		mbs, _, err := packing.Build(samples, o)
		if err != nil {
			t.Fatal(err)
		}
		want := writeAll(t, mbs, o.PadTokenID)
		for _, workers := range []int{1, 3} {
			plan, err := packing.NewPlan(samples, o)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Len() <= 8*workers {
				t.Fatalf("%d micro-batches fit in one window of %d workers", plan.Len(), workers)
			}
			var buf bytes.Buffer
			w, err := NewWriter(&buf, o.PadTokenID)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WritePlan(plan, workers); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("%+v, %d workers: WritePlan wrote %d bytes unlike Write's %d", o, workers, buf.Len(), len(want))
			}
		}
	}
	plan, err := packing.NewPlan(samples, packing.Options{SequenceLen: 512, MicroBatchSize: 2, Pack: true, PadTokenID: 4})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(&bytes.Buffer{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePlan(plan, 2); err == nil || !strings.Contains(err.Error(), "batches: micro-batch ") || !strings.Contains(err.Error(), "is not pad token") {
		t.Fatalf("a plan padded with 4 into a file padded with 3: %v", err)
	}
}
