package tokenizer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/ingest"
	"github.com/eftml/eft/services/validate"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/prompt"
	"github.com/eftml/eft/shared/testfixtures"
)

// pipeline runs validate, ingest and tokenizer on a real embedded NATS.
type pipeline struct {
	bus     *bus.Bus
	workDir string
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	b, _ := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	for _, r := range []interface{ Run(context.Context) error }{
		validate.New(b), ingest.New(b), NewWith(b, Options{ScratchDir: t.TempDir()}),
	} {
		go func() {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("service stopped: %v", err)
			}
			done <- struct{}{}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})
	work := t.TempDir()
	for _, name := range []string{"alpaca.jsonl", "notes.txt", "bad.jsonl", "chat.jsonl"} {
		data, err := os.ReadFile(testfixtures.Path(t, "pipeline", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return &pipeline{bus: b, workDir: work}
}

func (p *pipeline) config(t *testing.T, datasets string) string {
	return "base_model: " + testfixtures.Path(t, "tokenizers", "llama3") + `
learning_rate: 1e-4
micro_batch_size: 2
gradient_accumulation_steps: 1
sequence_len: 128
sample_packing: true
val_set_size: 0.1
dataset_prepared_path: prepared
` + datasets
}

// run publishes a RunRequested and collects the run's events until the
// tokenizer answers (or the run fails).
func (p *pipeline) run(t *testing.T, yaml string) map[string]events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runID := events.NewRunID()
	req := events.RunRequested{Config: events.ConfigSource{FileName: "cfg.yml", YAML: yaml}, WorkDir: p.workDir}
	if _, err := p.bus.PublishNew(ctx, runID, "test", req); err != nil {
		t.Fatal(err)
	}
	cons, err := p.bus.JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.RunSubjects(runID)}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]events.Envelope{}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Until(deadline(ctx))))
		if err != nil {
			t.Fatalf("run %s: waiting for the tokenizer: %v (events so far: %v)", runID, err, keys(seen))
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		seen[env.Type] = env
		if env.Type == events.TypeDatasetTokenized || env.Type == events.TypeRunFailed {
			return seen
		}
	}
}

func keys(m map[string]events.Envelope) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func payload[T events.Payload](t *testing.T, seen map[string]events.Envelope) T {
	t.Helper()
	var zero T
	env, ok := seen[zero.EventType()]
	if !ok {
		if f, failed := seen[events.TypeRunFailed]; failed {
			t.Fatalf("no %s: the run failed: %s", zero.EventType(), f.Payload)
		}
		t.Fatalf("no %s", zero.EventType())
	}
	p, err := events.PayloadAs[T](env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPipelineOverNATS(t *testing.T) {
	p := startPipeline(t)
	yaml := p.config(t, "datasets:\n  - path: alpaca.jsonl\n    type: alpaca\n  - path: notes.txt\n    type: completion\n  - path: chat.jsonl\n    type: chat_template\n")
	seen := p.run(t, yaml)
	ing := payload[events.DatasetIngested](t, seen)
	tok := payload[events.DatasetTokenized](t, seen)
	// All 57 rows: the tokenizer holds out val_set_size of the samples.
	if ing.Rows != 57 || len(ing.Sources) != 3 || ing.Format != prompt.RowsFormat {
		t.Fatalf("ingested %+v", ing)
	}
	if tok.CacheHit || tok.Samples == 0 || tok.MicroBatches == 0 || tok.Eval == nil || tok.PackingEfficiency <= 0 || len(tok.Tokenizer) != 2 {
		t.Fatalf("tokenized %+v", tok)
	}

	// The artifacts read back: the rows as ingested, the batches as counted.
	ctx := context.Background()
	store := artifactstest.Open(t, p.bus.JetStream(), "")
	rowsPath := filepath.Join(t.TempDir(), "rows.jsonl")
	if err := store.GetFile(ctx, ing.Train, rowsPath); err != nil {
		t.Fatal(err)
	}
	stored, err := prompt.ReadRows(rowsPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := stored.All()
	if err != nil || int64(len(rows)) != ing.Rows {
		t.Fatalf("%d rows back (%v), event says %d", len(rows), err, ing.Rows)
	}
	batchPath := filepath.Join(t.TempDir(), "train.eftb")
	if err := store.GetFile(ctx, tok.Train, batchPath); err != nil {
		t.Fatal(err)
	}
	if r := openBatches(t, batchPath); int64(r.Len()) != tok.MicroBatches {
		t.Fatalf("%d micro-batches stored, event says %d", r.Len(), tok.MicroBatches)
	}

	// The train job is on the work queue with the same batches. The stage
	// publishes it right after DatasetTokenized, so it may not be there yet.
	jobs, err := p.bus.JetStream().Stream(ctx, bus.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	var msg *jetstream.RawStreamMsg
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		msg, err = jobs.GetLastMsgForSubject(ctx, events.JobSubject(seen[events.TypeDatasetTokenized].RunID))
		if err == nil || !errors.Is(err, jetstream.ErrMsgNotFound) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	job, err := events.PayloadAs[events.TrainJob](env)
	if err != nil {
		t.Fatal(err)
	}
	if job.Train != tok.Train || job.MicroBatches != tok.MicroBatches || job.WorkDir != p.workDir || !strings.Contains(job.Config, "sample_packing: true") {
		t.Fatalf("job %+v", job)
	}

	// dataset_prepared_path has a copy under the cache key.
	exported := filepath.Join(p.workDir, "prepared", tok.CacheKey)
	for _, f := range []string{"train.eftb", "eval.eftb", "tokenized.json"} {
		if _, err := os.Stat(filepath.Join(exported, f)); err != nil {
			t.Fatalf("dataset_prepared_path: %v", err)
		}
	}
	if !sameFile(t, filepath.Join(exported, "train.eftb"), batchPath) {
		t.Fatal("the exported batches differ from the stored ones")
	}

	// A second run with the same inputs reuses the result and says so.
	again := payload[events.DatasetTokenized](t, p.run(t, yaml))
	if !again.CacheHit || again.Train != tok.Train || again.CacheKey != tok.CacheKey || again.Samples != tok.Samples {
		t.Fatalf("second run: %+v", again)
	}
	// Anything the batches or their order depend on changes the key.
	for _, c := range []struct{ from, to string }{
		{"sequence_len: 128\n", "sequence_len: 96\n"},
		{"val_set_size: 0.1\n", "val_set_size: 0.2\n"},
		{"sample_packing: true\n", "sample_packing: true\nseed: 7\n"},
		{"sample_packing: true\n", "sample_packing: true\nshuffle_merged_datasets: false\n"},
	} {
		changed := strings.Replace(yaml, c.from, c.to, 1)
		if changed == yaml {
			t.Fatalf("the config has no %q", c.from)
		}
		other := payload[events.DatasetTokenized](t, p.run(t, changed))
		if other.CacheHit || other.CacheKey == tok.CacheKey {
			t.Fatalf("%q -> %q but the cache was hit: %+v", c.from, c.to, other)
		}
	}
}

func TestPipelineFailures(t *testing.T) {
	p := startPipeline(t)

	// A run cancelled before its stages reach it is left alone: the stages
	// handle messages in order, so once a later run is tokenized the
	// cancelled one has been seen, and nothing was made for it.
	ctx := context.Background()
	cancelled := events.NewRunID()
	if _, err := p.bus.PublishNew(ctx, cancelled, "test", events.RunCancelled{Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	yaml := p.config(t, "datasets:\n  - path: alpaca.jsonl\n    type: alpaca\n")
	req := events.RunRequested{Config: events.ConfigSource{FileName: "cfg.yml", YAML: yaml}, WorkDir: p.workDir}
	if _, err := p.bus.PublishNew(ctx, cancelled, "test", req); err != nil {
		t.Fatal(err)
	}
	payload[events.DatasetTokenized](t, p.run(t, yaml))
	st, err := p.bus.JetStream().Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, events.Subject(cancelled, events.TypeConfigValidated)); err != nil {
		t.Fatalf("the cancelled run was not validated: %v", err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, events.Subject(cancelled, events.TypeDatasetIngested)); err == nil {
		t.Fatal("a cancelled run was ingested")
	}

	for _, c := range []struct {
		datasets, stage string
		want            []string
	}{
		{"datasets:\n  - path: bad.jsonl\n    type: alpaca\n", events.StageIngest, []string{"bad.jsonl:4", "malformed", "bad.jsonl:6"}},
		{"datasets:\n  - path: alpaca.jsonl\n    type: alpacca\n", events.StageTokenize, []string{"alpaca.jsonl: type alpacca: unknown prompt strategy"}},
		{"datasets:\n  - path: alpaca.jsonl\n    type: completion\n", events.StageIngest, []string{`alpaca.jsonl:1: missing field "text"`}},
	} {
		seen := p.run(t, p.config(t, c.datasets))
		f := payload[events.RunFailed](t, seen)
		if f.Stage != c.stage {
			t.Errorf("%s: failed at %s: %s", c.datasets, f.Stage, f.Error)
		}
		for _, w := range c.want {
			if !strings.Contains(f.Error, w) {
				t.Errorf("%s: error %q does not say %q", c.datasets, f.Error, w)
			}
		}
	}
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
