package packing

import (
	"cmp"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// samplesOfLengths makes samples whose tokens identify them: sample i's
// token p is i*10000+p, and every other label is masked.
func samplesOfLengths(lengths []int) []Sample {
	out := make([]Sample, len(lengths))
	for i, n := range lengths {
		s := Sample{InputIDs: make([]int32, n), Labels: make([]int32, n)}
		for p := 0; p < n; p++ {
			s.InputIDs[p] = int32(i*10000 + p)
			s.Labels[p] = s.InputIDs[p]
			if p%2 == 0 {
				s.Labels[p] = IgnoreIndex
			}
		}
		out[i] = s
	}
	return out
}

// realisticLengths draws chat-like sample lengths: log-normal around a few
// hundred tokens, capped at seqLen.
func realisticLengths(n, seqLen int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]int, n)
	for i := range out {
		l := int(math.Exp(5.5 + 0.8*rng.NormFloat64()))
		out[i] = max(8, min(seqLen, l))
	}
	return out
}

// checkLayout verifies every token of every sample appears exactly once, in
// order, where the boundaries say, with positions restarting per sample.
func checkLayout(t *testing.T, samples []Sample, batches []MicroBatch, o Options) {
	t.Helper()
	seen := make([]int, len(samples))
	for bi, mb := range batches {
		if mb.Rows > o.MicroBatchSize {
			t.Fatalf("micro-batch %d has %d rows", bi, mb.Rows)
		}
		for r := 0; r < mb.Rows; r++ {
			row := r * mb.Width
			b := mb.Boundaries[r]
			if b[0] != 0 || b[len(b)-1] != mb.RowLengths[r] || int(mb.RowLengths[r]) > mb.Width {
				t.Fatalf("batch %d row %d: boundaries %v, length %d, width %d", bi, r, b, mb.RowLengths[r], mb.Width)
			}
			for k, id := range mb.SampleIDs[r] {
				s := samples[id]
				seen[id]++
				start, end := int(b[k]), int(b[k+1])
				if end-start != len(s.InputIDs) {
					t.Fatalf("sample %d spans %d tokens, has %d", id, end-start, len(s.InputIDs))
				}
				if !slices.Equal(mb.InputIDs[row+start:row+end], s.InputIDs) || !slices.Equal(mb.Labels[row+start:row+end], s.Labels) {
					t.Fatalf("sample %d tokens or labels differ in batch %d row %d", id, bi, r)
				}
				for p := start; p < end; p++ {
					if mb.PositionIDs[row+p] != int32(p-start) {
						t.Fatalf("sample %d position %d = %d", id, p-start, mb.PositionIDs[row+p])
					}
				}
			}
			for p := int(mb.RowLengths[r]); p < mb.Width; p++ {
				if mb.InputIDs[row+p] != o.PadTokenID || mb.Labels[row+p] != IgnoreIndex || mb.PositionIDs[row+p] != 0 {
					t.Fatalf("padding at batch %d row %d col %d is not pad/-100/0", bi, r, p)
				}
			}
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("sample %d placed %d times", id, n)
		}
	}
}

func TestPackKeepsEveryTokenOnce(t *testing.T) {
	lengths := realisticLengths(3000, 2048, 3)
	samples := samplesOfLengths(lengths)
	o := Options{SequenceLen: 2048, MicroBatchSize: 4, Pack: true, PadTokenID: -1, Seed: 11}
	batches, st, err := Build(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, samples, batches, o)
	total := 0
	for _, l := range lengths {
		total += l
	}
	if st.Tokens != total || st.Samples != 3000 || st.MicroBatches != len(batches) {
		t.Fatalf("stats %+v, want %d tokens", st, total)
	}
	// Realistic chat lengths pack almost without padding.
	if st.Efficiency < 0.99 {
		t.Errorf("packing efficiency %.4f < 0.99 (%d rows for %d tokens)", st.Efficiency, st.Rows, total)
	}
	lower := int(math.Ceil(float64(total) / 2048))
	if st.Rows > lower+1 {
		t.Errorf("%d rows; the lower bound is %d", st.Rows, lower)
	}
}

func TestFirstFitDecreasing(t *testing.T) {
	// Longest first: 6 → bin0; 5 → bin1; 4 → bin0 (10); 3 → bin1 (8); 2 → bin1 (10).
	bins := Bins([]int{3, 6, 2, 5, 4}, 10, 0)
	var got []string
	for _, b := range bins {
		parts := make([]string, len(b))
		for i, id := range b {
			parts[i] = string(rune('a' + id))
		}
		got = append(got, strings.Join(parts, ""))
	}
	slices.Sort(got) // items a=3 b=6 c=2 d=5 e=4
	if want := []string{"be", "dac"}; !slices.Equal(got, want) {
		t.Errorf("bins = %v, want %v", got, want)
	}
}

func TestPackingIsDeterministic(t *testing.T) {
	samples := samplesOfLengths(realisticLengths(500, 1024, 5))
	o := Options{SequenceLen: 1024, MicroBatchSize: 2, Pack: true, Seed: 1}
	a, _, _ := Build(samples, o)
	b, _, _ := Build(samples, o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different packing")
	}
	o.Seed = 2
	c, _, _ := Build(samples, o)
	if reflect.DeepEqual(a[0].SampleIDs, c[0].SampleIDs) {
		t.Fatal("the seed does not change the order")
	}
}

func TestPaddingWithoutPacking(t *testing.T) {
	samples := samplesOfLengths([]int{3, 7, 5, 2, 4})
	o := Options{SequenceLen: 16, MicroBatchSize: 2, PadTokenID: 0, Seed: 9}
	batches, st, err := Build(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, samples, batches, o)
	if len(batches) != 3 || batches[2].Rows != 1 {
		t.Fatalf("%d micro-batches, last has %d rows", len(batches), batches[len(batches)-1].Rows)
	}
	for _, mb := range batches {
		longest := slices.Max(mb.RowLengths)
		if mb.Width != int(longest) {
			t.Errorf("width %d, longest row %d: without pad_to_sequence_len rows pad to the longest", mb.Width, longest)
		}
	}
	o.PadToSequenceLen = true
	batches, st2, _ := Build(samples, o)
	for _, mb := range batches {
		if mb.Width != 16 {
			t.Errorf("pad_to_sequence_len width = %d", mb.Width)
		}
	}
	if st2.Efficiency >= st.Efficiency || st.Efficiency > 1 {
		t.Errorf("efficiency %.3f (padded to 16) vs %.3f (to longest)", st2.Efficiency, st.Efficiency)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		samples []Sample
		o       Options
		want    string
	}{
		{samplesOfLengths([]int{5, 20}), Options{SequenceLen: 16, MicroBatchSize: 1, Pack: true}, "sample 1 has 20 tokens, more than sequence_len 16"},
		{[]Sample{{InputIDs: []int32{1, 2}, Labels: []int32{1}}}, Options{SequenceLen: 16, MicroBatchSize: 1}, "sample 0: 2 input ids but 1 labels"},
		{[]Sample{{}}, Options{SequenceLen: 16, MicroBatchSize: 1}, "sample 0 is empty"},
		{nil, Options{SequenceLen: 0, MicroBatchSize: 1}, "must be positive"},
	} {
		if _, _, err := Build(tc.samples, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// BenchmarkPack packs 100k realistic chat samples into 4096-token rows and
// reports the packing efficiency next to the time.
func BenchmarkPack(b *testing.B) {
	lengths := realisticLengths(100_000, 4096, 7)
	samples := samplesOfLengths(lengths)
	o := Options{SequenceLen: 4096, MicroBatchSize: 1, Pack: true, Seed: 1}
	var st Stats
	b.ResetTimer()
	for b.Loop() {
		_, st, _ = Build(samples, o)
	}
	b.ReportMetric(st.Efficiency, "efficiency")
	b.ReportMetric(float64(st.Tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func TestLongestFirstIsAStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ n, longest int }{{0, 1}, {1, 1}, {1000, 7}, {5000, 4096}, {300, maxCountedLength + 5}} {
		lengths := make([]int, tc.n)
		for i := range lengths {
			lengths[i] = 1 + rng.IntN(tc.longest)
		}
		order := shuffled(tc.n, 9)
		want := slices.Clone(order)
		slices.SortStableFunc(want, func(a, b int) int { return cmp.Compare(lengths[b], lengths[a]) })
		if got := longestFirst(slices.Clone(order), lengths); !slices.Equal(got, want) {
			t.Errorf("%d lengths up to %d: order differs from a stable sort", tc.n, tc.longest)
		}
	}
}

// BenchmarkBins packs the lengths of 100k realistic chat samples (first-fit
// decreasing alone, no layout).
func BenchmarkBins(b *testing.B) {
	lengths := realisticLengths(100_000, 4096, 7)
	for b.Loop() {
		Bins(lengths, 4096, 1)
	}
}
