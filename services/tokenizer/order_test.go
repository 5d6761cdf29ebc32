package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/prompt"
	"github.com/eftml/eft/shared/testfixtures"
)

// numpyPermutation reads np.random.default_rng(seed).permutation(n) from
// the numpy oracle (testdata/datasets/numpy/oracle.json, made by numpy
// itself), so the expected orders below owe nothing to eft's port.
func numpyPermutation(t *testing.T, seed string, n int) []int {
	t.Helper()
	data, err := os.ReadFile(testfixtures.Path(t, "datasets", "numpy", "oracle.json"))
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		Seeds []struct {
			Seed  string `json:"seed"`
			Perms []struct {
				N    int   `json:"n"`
				Perm []int `json:"perm"`
			} `json:"permutations"`
		} `json:"seeds"`
	}
	if err := json.Unmarshal(data, &o); err != nil {
		t.Fatal(err)
	}
	for _, s := range o.Seeds {
		for _, p := range s.Perms {
			if s.Seed == seed && p.N == n && p.Perm != nil {
				return p.Perm
			}
		}
	}
	t.Fatalf("the oracle has no full permutation of %d for seed %s", n, seed)
	return nil
}

// orderRows is a four-dataset merge of 33 Axolotl rows: alpaca rows (one
// too long for sequence_len 64), a completion text cut into six pieces and
// an empty one (no piece), a
// second alpaca file repeating three rows, and chat rows, one of them only
// a system message that drop_system_message removes (no sample here; in
// Axolotl an empty row, dropped by the length filter).
func orderRows() []prompt.Row {
	var rows []prompt.Row
	add := func(ds int, file string, line int, f datasets.Object) {
		rows = append(rows, prompt.Row{Dataset: ds, Source: datasets.Source{File: file, Line: line, Row: line - 1}, Fields: f})
	}
	alpaca := func(i int) datasets.Object {
		return obj("instruction", fmt.Sprintf("Name the number %d.", i), "output", fmt.Sprintf("It is %d.", i))
	}
	for i := range 12 {
		f := alpaca(i)
		if i == 5 {
			f = obj("instruction", strings.Repeat("a very long question ", 30), "output", "ok")
		}
		add(0, "a.jsonl", i+1, f)
	}
	add(1, "notes.txt", 1, obj("text", "A short note."))
	var log strings.Builder
	for i := range 23 {
		fmt.Fprintf(&log, "Day %d: the whale rose by the ship and the mate called out. ", i+1)
	}
	add(1, "notes.txt", 2, obj("text", log.String()))
	add(1, "notes.txt", 3, obj("text", "Another note."))
	add(1, "notes.txt", 4, obj("text", "")) // a blank line: no Axolotl row
	for i := range 10 {
		f := alpaca(100 + i)
		switch i {
		case 2:
			f = alpaca(3) // a.jsonl row 4 again
		case 7:
			f = alpaca(8)
		case 4:
			f = alpaca(101) // this file's row 2 again
		}
		add(2, "b.jsonl", i+1, f)
	}
	msg := func(role, content string) datasets.Object { return obj("role", role, "content", content) }
	add(3, "c.jsonl", 1, obj("messages", []any{msg("user", "Hello?"), msg("assistant", "Hi.")}))
	add(3, "c.jsonl", 2, obj("messages", []any{msg("system", "Be brief.")}))
	add(3, "c.jsonl", 3, obj("messages", []any{msg("user", "Where is the ship?"), msg("assistant", "In port.")}))
	return rows
}

const orderDatasets = `datasets:
  - path: a.jsonl
    type: alpaca
  - path: notes.txt
    type: completion
  - path: b.jsonl
    type: alpaca
  - path: c.jsonl
    type: chat_template
    chat_template: chatml
    drop_system_message: true
`

// axolotlRow is one row of Axolotl's tokenized merge: a sample (nil for a
// row that tokenizes to nothing) and the input row it came from.
type axolotlRow struct {
	sample *packing.Sample
	row    int
}

// axolotlMerge tokenizes the rows one at a time in config order, one
// Axolotl row per sample, and one for a row without any unless it is
// completion's (its batched map returns no piece for an empty text).
func axolotlMerge(t *testing.T, rows []prompt.Row, strategies []prompt.Strategy) []axolotlRow {
	t.Helper()
	var out []axolotlRow
	for i, r := range rows {
		made, err := strategies[r.Dataset].Tokenize(nil, r.Fields)
		if err != nil {
			t.Fatal(err)
		}
		if len(made) == 0 && strategies[r.Dataset].Name() != "completion" {
			out = append(out, axolotlRow{row: i})
		}
		for k := range made {
			out = append(out, axolotlRow{sample: &made[k], row: i})
		}
	}
	return out
}

// axolotlFilter applies handle_long_seq_in_dataset (drop outside
// [2, seqLen]) and, when dedup, keeps the first of identical samples.
func axolotlFilter(in []axolotlRow, seqLen int, dedup bool) []axolotlRow {
	var out []axolotlRow
	for _, r := range in {
		if r.sample == nil || len(r.sample.InputIDs) < 2 || len(r.sample.InputIDs) > seqLen {
			continue
		}
		if dedup && slices.ContainsFunc(out, func(o axolotlRow) bool {
			return slices.Equal(o.sample.InputIDs, r.sample.InputIDs) && slices.Equal(o.sample.AppendLabels(nil), r.sample.AppendLabels(nil))
		}) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func sameRows(t *testing.T, what string, got *Tokenized, want []axolotlRow) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no samples, want %d", what, len(want))
	}
	wantRows := make([]int, len(want))
	for i, w := range want {
		wantRows[i] = w.row
	}
	if !slices.Equal(got.Rows, wantRows) {
		t.Fatalf("%s: rows %v\nwant %v", what, got.Rows, wantRows)
	}
	for i, w := range want {
		if !slices.Equal(got.Samples[i].InputIDs, w.sample.InputIDs) || !slices.Equal(got.Samples[i].AppendLabels(nil), w.sample.AppendLabels(nil)) {
			t.Fatalf("%s: sample %d (row %d) is not Axolotl's", what, i, w.row)
		}
	}
}

// TestBuildOrdersSamplesAsAxolotl builds a four-dataset config and checks
// the training and validation samples against Axolotl's steps replayed on
// numpy's own permutation: shuffle the 33 tokenized rows, drop by length,
// deduplicate, hold out the last ceil(0.25 n).
func TestBuildOrdersSamplesAsAxolotl(t *testing.T) {
	tok := llama3(t)
	cfg := parse(t, "sequence_len: 64\nmicro_batch_size: 2\nseed: 42\nval_set_size: 0.25\ndataset_exact_deduplication: true\n"+orderDatasets)
	rows := orderRows()
	strategies, err := Strategies(cfg, cfg.Datasets, tok, prompt.Env{})
	if err != nil {
		t.Fatal(err)
	}
	merged := axolotlMerge(t, rows, strategies)
	if len(merged) != 33 {
		t.Fatalf("the fixture makes %d Axolotl rows, the oracle permutation has 33", len(merged))
	}
	perm := numpyPermutation(t, "42", 33)
	shuffled := make([]axolotlRow, len(perm))
	for k, p := range perm {
		shuffled[k] = merged[p]
	}
	kept := axolotlFilter(shuffled, 64, true)
	// 33 rows less the long one, the emptied conversation and 3 repeats.
	if len(kept) != 28 {
		t.Fatalf("%d rows survive; the fixture means 28", len(kept))
	}
	nEval := int(math.Ceil(0.25 * float64(len(kept))))
	wantTrain, wantEval := kept[:len(kept)-nEval], kept[len(kept)-nEval:]

	b, gotTrain, gotEval := buildKept(t, cfg, tok, rows, nil)
	sameRows(t, "train", gotTrain, wantTrain)
	sameRows(t, "eval", gotEval, wantEval)
	// Dropped: the long row; duplicates: the three repeats (the emptied
	// conversation made no sample to drop).
	if b.Event.Samples != 21 || b.Event.Dropped != 1 || b.Event.Duplicates != 3 || b.Eval == nil ||
		b.Event.EvalSamples != int64(len(gotEval.Samples)) {
		t.Fatalf("event %+v", b.Event)
	}
	var tokens int64
	for _, s := range gotTrain.Samples {
		tokens += int64(len(s.InputIDs))
	}
	if b.Event.Tokens != tokens {
		t.Fatalf("event counts %d tokens, the training samples hold %d", b.Event.Tokens, tokens)
	}

	// shuffle_merged_datasets: false keeps config order through the same
	// filters.
	cfg = parse(t, "sequence_len: 64\nmicro_batch_size: 2\nseed: 42\nval_set_size: 5\nshuffle_merged_datasets: false\ndataset_exact_deduplication: true\n"+orderDatasets)
	kept = axolotlFilter(merged, 64, true)
	_, gotTrain, gotEval = buildKept(t, cfg, tok, rows, nil)
	sameRows(t, "unshuffled train", gotTrain, kept[:len(kept)-5])
	sameRows(t, "unshuffled eval", gotEval, kept[len(kept)-5:])
}

// TestBuildOrdersTestDatasetsAsAxolotl: test_datasets are merged and
// shuffled with the seed as datasets are, and not split.
func TestBuildOrdersTestDatasetsAsAxolotl(t *testing.T) {
	tok := llama3(t)
	cfg := parse(t, "sequence_len: 64\nmicro_batch_size: 2\nseed: 0\n"+orderDatasets+`test_datasets:
  - path: t.jsonl
    type: alpaca
`)
	rows := orderRows()
	var test []prompt.Row
	for i := range 10 {
		test = append(test, prompt.Row{Source: datasets.Source{File: "t.jsonl", Line: i + 1, Row: i},
			Fields: obj("instruction", fmt.Sprintf("Test %d.", i), "output", "Yes.")})
	}
	b, _, gotEval := buildKept(t, cfg, tok, rows, test)
	if want := numpyPermutation(t, "0", 10); gotEval == nil || !slices.Equal(gotEval.Rows, want) {
		t.Fatalf("test rows in order %v, numpy's permutation is %v", gotEval.Rows, want)
	}
	if b.Eval == nil || b.Event.EvalMicroBatches != 5 {
		t.Fatalf("event %+v", b.Event)
	}
}

// TestArrangeKeepsSurvivorsInPermutedOrder checks Arrange on its own: a
// split of 10 slots of which some samples were dropped and one row made
// two samples follows numpy's permutation of all 10.
func TestArrangeKeepsSurvivorsInPermutedOrder(t *testing.T) {
	sample := func(id int32) packing.Sample {
		return packing.Sample{InputIDs: []int32{id, id}, Labels: []int32{id, id}}
	}
	// Slots 0..9; slots 2 and 7 were dropped; slots 4 and 5 are one row's
	// two pieces; slot 9 repeats slot 0's sample; slot 8 has slot 1's ids
	// but other labels, so it is not a repeat.
	slots := []int{0, 1, 3, 4, 5, 6, 8, 9}
	tk := &Tokenized{Slots: 10}
	for i, s := range slots {
		id := int32(s)
		if s == 9 {
			id = 0
		}
		smp := sample(id)
		if id == 8 {
			smp = packing.Sample{InputIDs: []int32{1, 1}, Labels: []int32{prompt.IgnoreIndex, 1}}
		}
		tk.Samples = append(tk.Samples, smp)
		tk.Slot = append(tk.Slot, s)
		tk.Rows = append(tk.Rows, i)
	}
	tk.count()
	if dups := Arrange(tk, OrderOptions{Shuffle: true, Seed: 1234, Dedup: true}); dups != 1 {
		t.Fatalf("%d duplicates, want 1", dups)
	}
	var want []int
	firstZero := true
	for _, s := range numpyPermutation(t, "1234", 10) {
		if s == 2 || s == 7 {
			continue
		}
		if s == 0 || s == 9 {
			if !firstZero {
				continue
			}
			firstZero = false
		}
		want = append(want, s)
	}
	if !slices.Equal(tk.Slot, want) || tk.Tokens != 14 || tk.Trained != 13 {
		t.Fatalf("slots %v (tokens %d), want %v", tk.Slot, tk.Tokens, want)
	}
}

// randomTokenized makes a split of slots samples or so, some slots dropped,
// from a small alphabet so that repeats (and ids repeated with other
// labels) are common; its counts are the samples' sums, as Tokenize's are.
func randomTokenized(r *rand.Rand, slots int) *Tokenized {
	tk := &Tokenized{Slots: slots, Truncated: 3, Dropped: 5}
	for s := range slots {
		if r.IntN(4) == 0 {
			continue // dropped by the length filter
		}
		n := 2 + r.IntN(2)
		smp := packing.Sample{InputIDs: make([]int32, n), Labels: make([]int32, n)}
		for k := range n {
			smp.InputIDs[k] = int32(r.IntN(2))
			smp.Labels[k] = smp.InputIDs[k]
			if r.IntN(3) == 0 {
				smp.Labels[k] = prompt.IgnoreIndex
			}
		}
		tk.Samples = append(tk.Samples, smp)
		tk.Rows = append(tk.Rows, s/2)
		tk.Slot = append(tk.Slot, s)
	}
	tk.count()
	return tk
}

// referenceArrange is Axolotl's steps 2 and 4 done plainly: shuffle the
// slots, keep the survivors, then keep the first of identical samples.
func referenceArrange(in *Tokenized, o OrderOptions) (*Tokenized, int) {
	idx := make([]int, len(in.Samples))
	for i := range idx {
		idx[i] = i
	}
	if o.Shuffle && in.Slots > 1 {
		bySlot := map[int]int{}
		for i, s := range in.Slot {
			bySlot[s] = i
		}
		idx = idx[:0:0]
		for _, s := range datasets.NumpyPermutation(o.Seed, in.Slots) {
			if i, ok := bySlot[s]; ok {
				idx = append(idx, i)
			}
		}
	}
	out := &Tokenized{Slots: in.Slots, Truncated: in.Truncated, Dropped: in.Dropped}
	dups := 0
	seen := map[string]bool{}
	for _, i := range idx {
		s := in.Samples[i]
		key := fmt.Sprint(s.InputIDs, s.AppendLabels(nil))
		if o.Dedup && seen[key] {
			dups++
			continue
		}
		seen[key] = true
		out.Samples = append(out.Samples, s)
		out.Rows = append(out.Rows, in.Rows[i])
		out.Slot = append(out.Slot, in.Slot[i])
	}
	out.count()
	return out, dups
}

// sameTokenized compares two splits element by element, parallel arrays
// and counts.
func sameTokenized(t *testing.T, what string, got, want *Tokenized) {
	t.Helper()
	if len(got.Samples) != len(want.Samples) || len(got.Rows) != len(want.Samples) || len(got.Slot) != len(want.Samples) {
		t.Fatalf("%s: %d samples, %d rows, %d slots, want %d", what, len(got.Samples), len(got.Rows), len(got.Slot), len(want.Samples))
	}
	for i := range want.Samples {
		if !slices.Equal(got.Samples[i].InputIDs, want.Samples[i].InputIDs) || !slices.Equal(got.Samples[i].AppendLabels(nil), want.Samples[i].AppendLabels(nil)) ||
			got.Rows[i] != want.Rows[i] || got.Slot[i] != want.Slot[i] {
			t.Fatalf("%s: element %d is (%v, row %d, slot %d), want (%v, row %d, slot %d)", what, i,
				got.Samples[i], got.Rows[i], got.Slot[i], want.Samples[i], want.Rows[i], want.Slot[i])
		}
	}
	if got.Slots != want.Slots || got.Tokens != want.Tokens || got.Trained != want.Trained ||
		got.Truncated != want.Truncated || got.Dropped != want.Dropped {
		t.Fatalf("%s: counts %d/%d/%d/%d/%d, want %d/%d/%d/%d/%d", what,
			got.Slots, got.Tokens, got.Trained, got.Truncated, got.Dropped,
			want.Slots, want.Tokens, want.Trained, want.Truncated, want.Dropped)
	}
}

// TestArrangeMatchesReference checks Arrange's single pass against the
// plain two-step reference for every mix of shuffle and dedup, on splits
// with dropped slots and many repeats.
func TestArrangeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for trial := range 200 {
		slots := trial // 0, 1 and 2 slots first: no shuffle to do
		if trial > 2 {
			slots = r.IntN(60)
		}
		for _, o := range []OrderOptions{
			{Shuffle: true, Dedup: true}, {Shuffle: true}, {Dedup: true}, {},
		} {
			o.Seed = uint64(trial)
			in := randomTokenized(r, slots)
			want, wantDups := referenceArrange(in, o)
			dups := Arrange(in, o)
			what := fmt.Sprintf("trial %d %+v", trial, o)
			if dups != wantDups {
				t.Fatalf("%s: %d duplicates, want %d", what, dups, wantDups)
			}
			sameTokenized(t, what, in, want)
		}
	}
}

// TestSplitValidationCounts: the held-out tail and the rest keep their
// parallel arrays and have their own counts, whichever side is smaller.
func TestSplitValidationCounts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for trial := range 50 {
		tk := randomTokenized(r, 30+r.IntN(60)) // enough samples for 0.9 to leave one
		n := len(tk.Samples)
		for _, size := range []float64{0.05, 0.5, 0.9, 2, float64(n - 1)} {
			in := *tk
			nEval, err := datasets.ValidationCount(n, size)
			if err != nil {
				t.Fatal(err)
			}
			wantTrain := &Tokenized{Samples: in.Samples[:n-nEval], Rows: in.Rows[:n-nEval], Slot: in.Slot[:n-nEval],
				Slots: in.Slots, Truncated: in.Truncated, Dropped: in.Dropped}
			wantEval := &Tokenized{Samples: in.Samples[n-nEval:], Rows: in.Rows[n-nEval:], Slot: in.Slot[n-nEval:], Slots: in.Slots}
			wantTrain.count()
			wantEval.count()
			eval, err := SplitValidation(&in, size)
			if err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("trial %d, %d samples, val_set_size %v", trial, n, size)
			sameTokenized(t, what+" train", &in, wantTrain)
			sameTokenized(t, what+" eval", eval, wantEval)
		}
	}
}
