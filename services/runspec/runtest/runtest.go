// Package runtest builds what the stages before the trainer would have
// published for a run — a resolved config, packed batch files stored as
// artifacts, DatasetTokenized and the TrainJob — so that the trainer,
// evaluator and merger are tested over a real bus without the ingest and
// tokenizer services. The data is synthetic but learnable: counting
// sequences (each token is the previous one plus one), so a run that trains
// visibly lowers its loss.
package runtest

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/packing"
)

// CountingSamples makes n samples of 8 to maxLen tokens counting up from a
// random start below vocab-maxLen; the first two tokens of each are a prompt
// (not trained).
func CountingSamples(seed uint64, n, maxLen, vocab int) []packing.Sample {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]packing.Sample, n)
	for i := range out {
		length := 8 + r.IntN(maxLen-7)
		start := 3 + r.IntN(vocab-maxLen-3)
		s := packing.Sample{InputIDs: make([]int32, length), Labels: make([]int32, length)}
		for j := range length {
			s.InputIDs[j] = int32(start + j)
			s.Labels[j] = s.InputIDs[j]
			if j < 2 {
				s.Labels[j] = packing.IgnoreIndex
			}
		}
		out[i] = s
	}
	return out
}

// StoreBatches packs samples and stores the batch file as an artifact.
func StoreBatches(t testing.TB, b *bus.Bus, samples []packing.Sample, o packing.Options) (events.ArtifactRef, int) {
	t.Helper()
	mbs, _, err := packing.Build(samples, o)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := batches.NewWriter(&buf, o.PadTokenID)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range mbs {
		if err := w.Write(mb); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := artifacts.Open(ctx, b.JetStream(), "", artifacts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := st.Put(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	return ref, len(mbs)
}

// Resolve parses a config and returns its resolved YAML.
func Resolve(t testing.TB, yaml string) (string, *config.Config) {
	t.Helper()
	cfg, _, err := config.Parse("test.yml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return string(out), cfg
}

// Run is a run as the tokenizer stage leaves it.
type Run struct {
	ID     string
	Config *config.Config
	Job    events.TrainJob
	JobEnv events.Envelope
}

// Data are the packed batches of a run.
type Data struct {
	Train, Eval    events.ArtifactRef
	TrainN, EvalN  int
	SequenceLen    int
	MicroBatchSize int
	HasEval        bool
	TrainedSamples int
}

// MakeData packs train and eval samples of the counting task for cfg's
// sequence_len and micro_batch_size.
func MakeData(t testing.TB, b *bus.Bus, cfg *config.Config, trainSamples, evalSamples int) Data {
	t.Helper()
	o := packing.Options{SequenceLen: cfg.SequenceLen, MicroBatchSize: cfg.MicroBatchSize, Pack: cfg.SamplePacking, Seed: uint64(cfg.Seed), PadToSequenceLen: cfg.PadToSequenceLen}
	d := Data{SequenceLen: cfg.SequenceLen, MicroBatchSize: cfg.MicroBatchSize, TrainedSamples: trainSamples}
	d.Train, d.TrainN = StoreBatches(t, b, CountingSamples(1, trainSamples, min(cfg.SequenceLen, 24), 1000), o)
	if evalSamples > 0 {
		o.MicroBatchSize = max(cfg.EvalBatchSize, 1)
		d.Eval, d.EvalN = StoreBatches(t, b, CountingSamples(2, evalSamples, min(cfg.SequenceLen, 24), 1000), o)
		d.HasEval = true
	}
	return d
}

// Submit publishes what validate and tokenize publish for a new run:
// ConfigValidated, DatasetTokenized and the TrainJob.
func Submit(t testing.TB, b *bus.Bus, yaml string, data Data) Run {
	t.Helper()
	resolved, cfg := Resolve(t, yaml)
	r := Run{ID: events.NewRunID(), Config: cfg}
	ctx := context.Background()
	if _, err := b.PublishNew(ctx, r.ID, "validate", events.ConfigValidated{Resolved: resolved}); err != nil {
		t.Fatal(err)
	}
	tok := events.DatasetTokenized{
		Train: data.Train, Format: batches.Format, Samples: int64(data.TrainedSamples),
		MicroBatches: int64(data.TrainN), SequenceLen: data.SequenceLen, MicroBatchSize: data.MicroBatchSize,
	}
	r.Job = events.TrainJob{
		Config: resolved, Train: data.Train, Format: batches.Format,
		MicroBatches: int64(data.TrainN), SequenceLen: data.SequenceLen, MicroBatchSize: data.MicroBatchSize,
	}
	if data.HasEval {
		eval := data.Eval
		tok.Eval, tok.EvalMicroBatches = &eval, int64(data.EvalN)
		r.Job.Eval = &eval
	}
	if _, err := b.PublishNew(ctx, r.ID, "tokenizer", tok); err != nil {
		t.Fatal(err)
	}
	env, err := b.PublishNew(ctx, r.ID, "tokenizer", r.Job)
	if err != nil {
		t.Fatal(err)
	}
	r.JobEnv = env
	return r
}
