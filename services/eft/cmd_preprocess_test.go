package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/prompt"
	"github.com/eftml/eft/shared/testfixtures"
	hftok "github.com/eftml/eft/shared/tokenizer"
)

type dumpLine struct {
	Split    string  `json:"split"`
	Row      int     `json:"row"`
	Source   string  `json:"source"`
	InputIDs []int32 `json:"input_ids"`
	Labels   []int32 `json:"labels"`
}

func TestPreprocessDebugDumpAndCache(t *testing.T) {
	home, work := t.TempDir(), t.TempDir()
	for _, name := range []string{"alpaca.jsonl", "chat.jsonl"} {
		data, err := os.ReadFile(testfixtures.Path(t, "pipeline", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tokDir := testfixtures.Path(t, "tokenizers", "llama3")
	cfgPath := filepath.Join(work, "cfg.yml")
	yaml := "base_model: " + tokDir + `
learning_rate: 1e-4
micro_batch_size: 2
gradient_accumulation_steps: 1
sequence_len: 256
sample_packing: true
val_set_size: 4
datasets:
  - path: alpaca.jsonl
    type: alpaca
  - path: chat.jsonl
    type: chat_template
`
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)
	dump := filepath.Join(work, "samples.jsonl")
	code, out, stderr := runCLI(t, "--home", home, "preprocess", "cfg.yml", "--debug", "--dump", dump)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"(preprocess)", "ingested   52 rows (", "0 rejected)", "tokenized  48 samples", "cache key ", "sample 0 (", "(-100, ", "Count of labels:", "wrote the tokenized samples"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatal("colours written to a pipe")
	}

	// Every sample is in the dump, and is what the strategy makes of its row.
	tok, err := hftok.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse("cfg.yml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	strategies := map[string]prompt.Strategy{}
	var rows []datasets.Record
	for i, name := range []string{"alpaca.jsonl", "chat.jsonl"} {
		s, err := prompt.NewWith(cfg, &cfg.Datasets[i], tok, prompt.Env{TokenizerDir: tokDir})
		if err != nil {
			t.Fatal(err)
		}
		strategies[filepath.Join(work, name)] = s
		recs, _, err := datasets.ReadFile(filepath.Join(work, name), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, recs...)
	}
	f, err := os.Open(dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	splits := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l dumpLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		splits[l.Split]++
		file, _, _ := strings.Cut(l.Source, ":")
		strategy, ok := strategies[file]
		if !ok {
			t.Fatalf("source %q", l.Source)
		}
		var n int
		for _, r := range rows {
			if r.Source.String() == l.Source {
				want, err := strategy.Tokenize(nil, r.Fields)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(want[0].InputIDs, l.InputIDs) || !slices.Equal(want[0].AppendLabels(nil), l.Labels) {
					t.Fatalf("%s: dumped sample differs from its row's tokenization", l.Source)
				}
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%s matches %d rows", l.Source, n)
		}
	}
	if splits["train"] != 48 || splits["eval"] != 4 {
		t.Fatalf("dumped %v", splits)
	}

	// Again: the batches come from the cache.
	code, out, _ = runCLI(t, "--home", home, "preprocess", "cfg.yml")
	if code != 0 || !strings.Contains(out, "micro-batches, packing") || !strings.Contains(out, "(cached)") {
		t.Fatalf("second preprocess: %d\n%s", code, out)
	}

	// Nothing was queued for a trainer.
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Dir: filepath.Join(home, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	b, err := bus.Connect(context.Background(), srv.URL(), bus.Options{Name: "check"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := b.JetStream().Stream(context.Background(), bus.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(context.Background()); err != nil || info.State.Msgs != 0 {
		t.Fatalf("jobs stream: %+v %v", info.State, err)
	}

	if code, _, stderr := runCLI(t, "--home", home, "--nats", "nats://127.0.0.1:1", "preprocess", "cfg.yml"); code == 0 || !strings.Contains(stderr, "--nats is not supported") {
		t.Fatalf("--nats: %d %s", code, stderr)
	}
}
