package packing

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// maskedCopy is s with its labels (which copy or ignore the ids) as a
// trained mask, marked a run at a time as the chat strategy marks turns.
func maskedCopy(s Sample) Sample {
	mask := make([]uint64, MaskWords(len(s.InputIDs)))
	for i := 0; i < len(s.Labels); {
		if s.Labels[i] == IgnoreIndex {
			i++
			continue
		}
		j := i
		for j < len(s.Labels) && s.Labels[j] != IgnoreIndex {
			j++
		}
		MarkTrained(mask, i, j)
		i = j
	}
	return Sample{InputIDs: s.InputIDs, TrainedMask: mask}
}

// randomSamples are samples of lengths around the word size, each label
// its id or ignored in runs.
func randomSamples(rng *rand.Rand, n int) []Sample {
	out := make([]Sample, n)
	for k := range out {
		l := 1 + rng.IntN(200)
		s := Sample{InputIDs: make([]int32, l), Labels: make([]int32, l)}
		trained := rng.IntN(2) == 0
		for i := range l {
			if rng.IntN(10) == 0 {
				trained = !trained
			}
			s.InputIDs[i] = rng.Int32N(1 << 17)
			s.Labels[i] = IgnoreIndex
			if trained {
				s.Labels[i] = s.InputIDs[i]
			}
		}
		out[k] = s
	}
	return out
}

func TestTrainedMaskIsTheLabels(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for k, s := range randomSamples(rng, 500) {
		m := maskedCopy(s)
		if !m.Masked() || s.Masked() {
			t.Fatalf("sample %d: Masked %v, %v", k, m.Masked(), s.Masked())
		}
		if err := m.Check(); err != nil {
			t.Fatalf("sample %d: %v", k, err)
		}
		if w, ok := s.WithTrainedMask(); !ok || !reflect.DeepEqual(w, m) {
			t.Fatalf("sample %d: WithTrainedMask %v differs from the runs marked", k, ok)
		}
		if got := m.AppendLabels(nil); !slices.Equal(got, s.Labels) {
			t.Fatalf("sample %d: mask labels %v, want %v", k, got, s.Labels)
		}
		for i := range s.Labels {
			if m.Label(i) != s.Labels[i] {
				t.Fatalf("sample %d: label %d = %d, want %d", k, i, m.Label(i), s.Labels[i])
			}
		}
		if m.CountTrained() != s.CountTrained() {
			t.Fatalf("sample %d: %d trained, want %d", k, m.CountTrained(), s.CountTrained())
		}
		n := 1 + rng.IntN(len(s.InputIDs))
		cut, want := maskedCopy(s).Prefix(n), s.Prefix(n)
		if err := cut.Check(); err != nil {
			t.Fatalf("sample %d cut to %d: %v", k, n, err)
		}
		if !slices.Equal(cut.AppendLabels(nil), want.Labels) || cut.CountTrained() != want.CountTrained() {
			t.Fatalf("sample %d cut to %d: labels differ", k, n)
		}
	}
}

func TestMaskedLayoutMatchesLabels(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	samples := randomSamples(rng, 300)
	masked := make([]Sample, len(samples))
	for i, s := range samples {
		masked[i] = maskedCopy(s)
	}
	o := Options{SequenceLen: 512, MicroBatchSize: 2, Pack: true, PadTokenID: 3, Seed: 4}
	a, _, err := Build(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Build(masked, o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("masked samples lay out differently from the same labels")
	}
}

func TestWithTrainedMaskKeepsOtherLabels(t *testing.T) {
	s := Sample{InputIDs: []int32{5, 6, 7}, Labels: []int32{IgnoreIndex, 6, 9}}
	if got, ok := s.WithTrainedMask(); ok || got.Masked() {
		t.Fatalf("label 9 for id 7 made a mask: %+v", got)
	}
}

func TestBadTrainedMask(t *testing.T) {
	ids := make([]int32, 70)
	for _, c := range []struct {
		name string
		mask []uint64
		want string
	}{
		{"short", []uint64{1}, "70 input ids but a trained mask of 1 words"},
		{"past the end", []uint64{1, 1 << 6}, "marks tokens past its 70"},
	} {
		_, err := Pack([]Sample{{InputIDs: ids, TrainedMask: c.mask}}, Options{SequenceLen: 128, MicroBatchSize: 1})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}
