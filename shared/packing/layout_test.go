package packing

import (
	"reflect"
	"testing"
)

// TestLayoutIntoMatchesBuild: laying out Pack's micro-batches one at a
// time into a single reused MicroBatch (in reverse, so every reuse shrinks
// or grows something) gives exactly Build's micro-batches and stats.
func TestLayoutIntoMatchesBuild(t *testing.T) {
	samples := samplesOfLengths(realisticLengths(500, 512, 3))
	for _, o := range []Options{
		{SequenceLen: 512, MicroBatchSize: 3, Pack: true, PadTokenID: 7, Seed: 1},
		{SequenceLen: 512, MicroBatchSize: 4, PadTokenID: 9, Seed: 2},
		{SequenceLen: 512, MicroBatchSize: 4, PadToSequenceLen: true, PadTokenID: 9, Seed: 3},
	} {
		want, wantStats, err := Build(samples, o)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Pack(samples, o)
		if err != nil {
			t.Fatal(err)
		}
		if p.Len() != len(want) || !reflect.DeepEqual(p.Stats, wantStats) {
			t.Fatalf("%+v: Pack has %d micro-batches, %+v; Build %d, %+v", o, p.Len(), p.Stats, len(want), wantStats)
		}
		var mb MicroBatch
		for i := p.Len() - 1; i >= 0; i-- {
			p.LayoutInto(&mb, i)
			if !reflect.DeepEqual(mb, want[i]) {
				t.Fatalf("%+v: micro-batch %d laid out into a reused one differs from Build's", o, i)
			}
		}
	}
}
