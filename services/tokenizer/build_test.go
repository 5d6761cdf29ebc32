package tokenizer

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/prompt"
	"github.com/eftml/eft/shared/testfixtures"
	hftok "github.com/eftml/eft/shared/tokenizer"
)

func parse(t *testing.T, yaml string) *config.Config { return parseConfigTB(t, yaml) }

func parseConfigTB(t testing.TB, yaml string) *config.Config {
	t.Helper()
	base := "base_model: m\nlearning_rate: 1e-4\ngradient_accumulation_steps: 1\n"
	cfg, _, err := config.Parse("t.yml", []byte(base+yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func llama3(t testing.TB) *hftok.Tokenizer {
	t.Helper()
	tok, err := hftok.Load(testfixtures.Path(t, "tokenizers", "llama3"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func obj(kv ...any) datasets.Object {
	o := make(datasets.Object, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		o = append(o, datasets.Field{Name: kv[i].(string), Value: kv[i+1]})
	}
	return o
}

// mixedRows are alpaca rows (dataset 0) and completion rows (dataset 1).
func mixedRows(n int) []prompt.Row {
	var rows []prompt.Row
	for i := range n {
		if i%4 == 3 {
			rows = append(rows, prompt.Row{Dataset: 1, Source: datasets.Source{File: "notes.txt", Line: i + 1, Row: i},
				Fields: obj("text", strings.Repeat("The sea was calm and the sky was grey. ", 1+i%7))})
			continue
		}
		rows = append(rows, prompt.Row{Dataset: 0, Source: datasets.Source{File: "a.jsonl", Line: i + 1, Row: i},
			Fields: obj("instruction", "Say something about the number "+strings.Repeat("nine ", i%5), "output", "It is a number.")})
	}
	return rows
}

// buildKept runs Build on rows and returns what it kept of each split (nil
// for a split it did not make); the batch files go when the test ends.
func buildKept(t *testing.T, cfg *config.Config, tok *hftok.Tokenizer, train, test []prompt.Row) (b *Built, kept, eval *Tokenized) {
	t.Helper()
	b, err := Build(context.Background(), cfg, tok, prompt.Env{}, source(train, test), Settings{Keep: func(split string, _ *prompt.Rows, t *Tokenized) {
		if split == "train" {
			kept = t
		} else {
			eval = t
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Remove)
	return b, kept, eval
}

func source(train, test []prompt.Row) RowsSource {
	of := func(rows []prompt.Row) *prompt.Rows {
		if rows == nil {
			return nil
		}
		return prompt.RowsOf(rows)
	}
	return RowsSource{
		Train: func(context.Context) (*prompt.Rows, error) { return of(train), nil },
		Test:  func(context.Context) (*prompt.Rows, error) { return of(test), nil },
	}
}

func TestTokenizeIsRowOrderedAndMatchesTheStrategies(t *testing.T) {
	tok := llama3(t)
	cfg := parse(t, "sequence_len: 64\nmicro_batch_size: 2\ndatasets:\n  - path: a.jsonl\n    type: alpaca\n  - path: notes.txt\n    type: completion\n")
	strategies, err := Strategies(cfg, cfg.Datasets, tok, prompt.Env{})
	if err != nil {
		t.Fatal(err)
	}
	rows := mixedRows(1000)
	got, err := Tokenize(context.Background(), prompt.RowsOf(rows), strategies, TokenizeOptions{Length: prompt.LengthPolicy{SequenceLen: 64}, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	// One at a time, in order: the same samples.
	var want []packing.Sample
	var wantRows []int
	for i, r := range rows {
		out, err := strategies[r.Dataset].Tokenize(nil, r.Fields)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out {
			if len(s.InputIDs) >= 2 {
				want = append(want, s)
				wantRows = append(wantRows, i)
			}
		}
	}
	if len(got.Samples) != len(want) || !slices.Equal(got.Rows, wantRows) {
		t.Fatalf("%d samples from rows %v..., want %d", len(got.Samples), got.Rows[:10], len(want))
	}
	var tokens int64
	for i := range want {
		if !slices.Equal(got.Samples[i].InputIDs, want[i].InputIDs) || !slices.Equal(got.Samples[i].AppendLabels(nil), want[i].AppendLabels(nil)) {
			t.Fatalf("sample %d differs", i)
		}
		tokens += int64(len(want[i].InputIDs))
	}
	if got.Tokens != tokens || got.Dropped != 0 {
		t.Fatalf("tokens %d (want %d), dropped %d", got.Tokens, tokens, got.Dropped)
	}

	// A bad row is reported with its place, the first in row order.
	rows[700].Fields = obj("instruction", "x")
	rows[900].Fields = obj("output", "y")
	_, err = Tokenize(context.Background(), prompt.RowsOf(rows), strategies, TokenizeOptions{Length: prompt.LengthPolicy{SequenceLen: 64}, Workers: 3})
	if err == nil || !strings.Contains(err.Error(), `a.jsonl:701: alpaca: field "output" is missing`) {
		t.Fatalf("bad row: %v", err)
	}

	// A damaged record of the rows file is decoded where it is tokenized,
	// and reported as that row of that file when it comes first.
	var data []byte
	var damaged int
	for i, r := range rows[:800] {
		if i == 300 {
			damaged = len(data) // the record's start: its one-byte length
			data = append(data, prompt.AppendRow(nil, r)[:4]...)
			data[damaged] = 3
			continue
		}
		data = prompt.AppendRow(data, r)
	}
	_, err = Tokenize(context.Background(), prompt.IndexRows(data, "rows.bin"), strategies, TokenizeOptions{Length: prompt.LengthPolicy{SequenceLen: 64}, Workers: 3})
	if want := fmt.Sprintf("rows: rows.bin: row 300 (byte %d): the record ends in its header", damaged); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("damaged rows: %v, want %q", err, want)
	}
}

// TestTokenizeChatRowsInArenas: conversations decoded into the workers'
// reused arenas (lists and objects of every size, one after another) make
// the samples the strategy makes from rows decoded on their own.
func TestTokenizeChatRowsInArenas(t *testing.T) {
	tok := llama3(t)
	cfg := parse(t, "sequence_len: 512\nmicro_batch_size: 2\ndatasets:\n  - path: chat.jsonl\n    type: chat_template\n")
	strategies, err := Strategies(cfg, cfg.Datasets, tok, prompt.Env{TokenizerDir: testfixtures.Path(t, "tokenizers", "llama3")})
	if err != nil {
		t.Fatal(err)
	}
	var rows []prompt.Row
	for i := range 600 {
		var msgs []any
		if i%3 == 0 {
			msgs = append(msgs, obj("role", "system", "content", "Be brief."))
		}
		for k := range 1 + i%5 {
			msgs = append(msgs, obj("role", "user", "content", fmt.Sprintf("Question %d of row %d: %s?", k, i, strings.Repeat("why ", i%9))),
				obj("role", "assistant", "content", fmt.Sprintf("Answer %d.%s", k, strings.Repeat(" Because.", (i+k)%6))))
		}
		rows = append(rows, prompt.Row{Source: datasets.Source{File: "chat.jsonl", Line: i + 1, Row: i}, Fields: obj("messages", msgs)})
	}
	data := make([]byte, 0, 1<<16)
	for _, r := range rows {
		data = prompt.AppendRow(data, r)
	}
	indexed := prompt.IndexRows(data, "rows.bin")
	got, err := Tokenize(context.Background(), indexed, strategies, TokenizeOptions{Length: prompt.LengthPolicy{SequenceLen: 512}, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	k := 0
	for i := range rows {
		r, err := indexed.Row(i) // decoded on its own
		if err != nil {
			t.Fatal(err)
		}
		want, err := strategies[0].Tokenize(nil, r.Fields)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range want {
			if k >= len(got.Samples) || got.Rows[k] != i || !slices.Equal(got.Samples[k].InputIDs, s.InputIDs) ||
				!slices.Equal(got.Samples[k].AppendLabels(nil), s.AppendLabels(nil)) {
				t.Fatalf("row %d: its sample differs in the arenas", i)
			}
			k++
		}
	}
	if k != len(got.Samples) || k < len(rows) {
		t.Fatalf("%d samples, %d expected from %d rows", len(got.Samples), k, len(rows))
	}
}

func TestBuildPacksEverySampleOnce(t *testing.T) {
	tok := llama3(t)
	cfg := parse(t, "sequence_len: 128\nmicro_batch_size: 3\nsample_packing: true\nseed: 3\nval_set_size: 40\ndatasets:\n  - path: a.jsonl\n    type: alpaca\n  - path: notes.txt\n    type: completion\n")
	rows := mixedRows(400)
	b, kept, _ := buildKept(t, cfg, tok, rows, nil)
	ev := b.Event
	if ev.Samples != int64(len(kept.Samples)) || ev.Tokens != kept.Tokens || ev.TrainedTokens != kept.Trained || !ev.SamplePacking {
		t.Fatalf("event %+v", ev)
	}
	if ev.PackingEfficiency < 0.9 || ev.EvalMicroBatches == 0 || ev.MicroBatches == 0 {
		t.Fatalf("efficiency %.3f, %d micro-batches, %d eval", ev.PackingEfficiency, ev.MicroBatches, ev.EvalMicroBatches)
	}
	r := openBatches(t, b.Train.Path)
	if int64(r.Len()) != ev.MicroBatches || r.PadTokenID() != prompt.PadTokenID(tok) {
		t.Fatalf("%d micro-batches in the file, pad %d", r.Len(), r.PadTokenID())
	}
	seen := make([]int, len(kept.Samples))
	for i := range r.Len() {
		mb, err := r.Read(i)
		if err != nil {
			t.Fatal(err)
		}
		for row, ids := range mb.SampleIDs {
			for k, id := range ids {
				seen[id]++
				s := kept.Samples[id]
				start := int(mb.Boundaries[row][k]) + row*mb.Width
				if !slices.Equal(mb.InputIDs[start:start+len(s.InputIDs)], s.InputIDs) || !slices.Equal(mb.Labels[start:start+len(s.Labels)], s.Labels) {
					t.Fatalf("micro-batch %d row %d: sample %d is not where its boundary says", i, row, id)
				}
				if mb.PositionIDs[start] != 0 || mb.PositionIDs[start+len(s.InputIDs)-1] != int32(len(s.InputIDs)-1) {
					t.Fatalf("positions do not restart per sample")
				}
			}
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("sample %d packed %d times", id, n)
		}
	}

	// The same inputs give the same file.
	b2, err := Build(context.Background(), cfg, tok, prompt.Env{}, source(rows, nil), Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Remove()
	if !sameFile(t, b.Train.Path, b2.Train.Path) || !sameFile(t, b.Eval.Path, b2.Eval.Path) {
		t.Fatal("building twice gave different batch files")
	}
}

func TestBuildLengthPolicies(t *testing.T) {
	tok := llama3(t)
	long := prompt.Row{Source: datasets.Source{File: "a.jsonl", Line: 1}, Fields: obj("instruction", strings.Repeat("word ", 200), "output", "ok")}
	short := prompt.Row{Source: datasets.Source{File: "a.jsonl", Line: 2}, Fields: obj("instruction", "hi", "output", "ok")}
	yaml := "sequence_len: 32\nmicro_batch_size: 1\ndatasets:\n  - path: a.jsonl\n    type: alpaca\n"
	for _, c := range []struct {
		strategy           string
		samples, truncated int64
		err                string
	}{
		{"drop", 1, 0, ""},
		{"truncate", 2, 1, ""},
		{"raise", 0, 0, "a.jsonl:1: a sample of"},
	} {
		cfg := parse(t, yaml+"excess_length_strategy: "+c.strategy+"\n")
		b, err := Build(context.Background(), cfg, tok, prompt.Env{}, source([]prompt.Row{long, short}, nil), Settings{})
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("%s: %v", c.strategy, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Remove()
		if b.Event.Samples != c.samples || b.Event.Truncated != c.truncated || b.Event.Dropped != 2-c.samples {
			t.Fatalf("%s: %+v", c.strategy, b.Event)
		}
	}
	cfg := parse(t, yaml)
	if _, err := Build(context.Background(), cfg, tok, prompt.Env{}, source([]prompt.Row{long}, nil), Settings{}); err == nil || !strings.Contains(err.Error(), "no training samples") {
		t.Fatalf("everything dropped: %v", err)
	}
}

func openBatches(t *testing.T, path string) *batches.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	info, _ := f.Stat()
	r, err := batches.Open(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sameFile(t *testing.T, a, b string) bool {
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Equal(x, y)
}
