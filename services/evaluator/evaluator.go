// Package evaluator is the evaluator service: on each CheckpointSaved at an
// evaluation step of its run (eval_steps / evals_per_epoch, the plan
// package runspec computes), it loads the checkpoint's weights, computes the
// loss and perplexity over the run's validation micro-batches, decodes a few
// sample generations, and publishes EvalCompleted with when it started and
// finished. It is its own consumer, so evaluation runs beside training and
// never holds it up.
//
// Evaluate is the same evaluation for any model and batch file (eft
// evaluate).
package evaluator

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/tokenizer"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/generate"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/train"
)

// Name is the service's name and durable consumer.
const Name = "evaluator"

// Options configure the evaluator. The zero value evaluates on a GPU when
// one is usable, else on the CPU, and decodes two sample generations of up
// to 32 tokens per evaluation.
type Options struct {
	// ScratchDir holds downloaded checkpoints and batches (default
	// $TMPDIR/eft-evaluator).
	ScratchDir string
	// Resolver finds base models.
	Resolver runspec.Resolver
	// Device is where evaluations compute: runspec.DeviceAuto ("" too),
	// DeviceCPU or DeviceCUDA. Each evaluation opens the device and
	// closes it when done; on a GPU in bf16 (unless the config says bf16:
	// false) the frozen weights are stored in bf16, as the model trains.
	Device string
	// Generations is how many validation prompts are continued per
	// evaluation (0: 2; negative: none); MaxNewTokens bounds each (0: 32).
	Generations  int
	MaxNewTokens int
}

// Service is the evaluator service.
type Service struct {
	bus  *bus.Bus
	opts Options
}

// New returns the evaluator service over b.
func New(b *bus.Bus, opts Options) *Service {
	if opts.ScratchDir == "" {
		opts.ScratchDir = filepath.Join(os.TempDir(), "eft-evaluator")
	}
	if opts.Generations == 0 {
		opts.Generations = 2
	}
	if opts.MaxNewTokens == 0 {
		opts.MaxNewTokens = 32
	}
	return &Service{bus: b, opts: opts}
}

// Run consumes CheckpointSaved until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.Consume(ctx, bus.Consumer{
		Name:         Name,
		Subjects:     []string{events.TypeSubjects(events.TypeCheckpointSaved)},
		Handler:      s.handle,
		AckWait:      time.Hour, // evaluating a large model on a large split takes a while
		OnDeadLetter: stage.FailOnDeadLetter(s.bus, Name, events.StageEvaluate),
	})
}

func (s *Service) handle(ctx context.Context, d bus.Delivery) error {
	saved, err := events.PayloadAs[events.CheckpointSaved](d.Envelope)
	if err != nil {
		return bus.Permanent(err)
	}
	runID := d.Envelope.RunID
	validated, ok, err := runspec.LastPayload[events.ConfigValidated](ctx, s.bus, runID)
	if err != nil || !ok {
		return err
	}
	tokenized, ok, err := runspec.LastPayload[events.DatasetTokenized](ctx, s.bus, runID)
	if err != nil || !ok || tokenized.Eval == nil {
		return err // no validation split: nothing to evaluate
	}
	cfg, err := runspec.ParseConfig(validated.Resolved)
	if err != nil {
		return bus.Permanent(err)
	}
	steps, err := runspec.NewSteps(cfg, int(tokenized.MicroBatches))
	if err != nil {
		return bus.Permanent(err)
	}
	if !steps.EvalAt(int(saved.Step)) {
		return nil
	}
	if ended, err := runspec.Ended(ctx, s.bus, runID, events.TypeRunFailed, events.TypeRunCancelled); err != nil || ended != "" {
		return err
	}
	started := time.Now()
	scratch := filepath.Join(s.opts.ScratchDir, runID, saved.Name)
	defer os.RemoveAll(scratch)
	if err := fetchFiles(ctx, s.bus, saved.Files, scratch); err != nil {
		return err
	}
	evalPath := filepath.Join(s.opts.ScratchDir, "blobs", tokenized.Eval.SHA256)
	if err := fetchFile(ctx, s.bus, *tokenized.Eval, evalPath); err != nil {
		return err
	}
	baseDir, err := s.opts.Resolver.BaseModelDir(ctx, cfg, validated.WorkDir)
	if err != nil {
		return bus.Permanent(err)
	}
	dev, err := runspec.OpenDevice(s.opts.Device, cfg, s.bus.Logger(), Name)
	if err != nil {
		return bus.Permanent(err)
	}
	defer dev.Close()
	m, err := LoadCheckpoint(baseDir, scratch, dev.Backend, runspec.LoadOptions(cfg))
	if err != nil {
		return bus.Permanent(err)
	}
	dev.StoreFrozen(m)
	tokDir := ""
	if len(tokenized.Tokenizer) > 0 { // the tokenizer the batches were made with
		tokDir = filepath.Join(scratch, "tokenizer")
		if err := fetchFiles(ctx, s.bus, tokenized.Tokenizer, tokDir); err != nil {
			return err
		}
	}
	opts := s.genOptions(ctx, cfg, validated.WorkDir, baseDir, tokDir)
	res, err := EvaluateFile(m, evalPath, opts)
	if err != nil {
		return bus.Permanent(err)
	}
	out := events.EvalCompleted{
		Step: saved.Step, Epoch: saved.Epoch, Checkpoint: saved.Name,
		Loss: events.Metric(res.Loss), Perplexity: events.Metric(res.Perplexity),
		Samples: res.Samples, Tokens: res.Tokens, StartedAt: started.UTC(), FinishedAt: time.Now().UTC(),
		Generations: res.Generations,
	}
	_, err = s.bus.PublishCausedBy(ctx, d.Envelope, Name, out)
	return err
}

// genOptions sets up sample generations with the run's tokenizer; without a
// tokenizer there are none.
func (s *Service) genOptions(ctx context.Context, cfg *config.Config, workDir, baseDir, tokDir string) GenerateOptions {
	if s.opts.Generations < 0 {
		return GenerateOptions{}
	}
	var err error
	if tokDir == "" {
		if tokDir, err = s.opts.Resolver.TokenizerDir(ctx, cfg, workDir, baseDir); err != nil {
			s.bus.Logger().Warn("evaluator: no sample generations", "error", err)
			return GenerateOptions{}
		}
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		s.bus.Logger().Warn("evaluator: no sample generations", "error", err)
		return GenerateOptions{}
	}
	return GenerateOptions{Count: s.opts.Generations, MaxNewTokens: s.opts.MaxNewTokens, Tokenizer: tok, StopTokens: runspec.StopTokens(baseDir, tok)}
}

// LoadCheckpoint loads the weights a checkpoint (or output) directory holds:
// a PEFT adapter on the base model in baseDir, loaded as base says (a run's
// runspec.LoadOptions: NF4 for QLoRA, so that an adapter is scored on the
// base it trained against, as Axolotl does), or a full model directory, as
// it is.
func LoadCheckpoint(baseDir, dir string, be backend.Backend, base model.Options) (*model.Model, error) {
	if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err == nil {
		m, err := model.LoadWith(baseDir, be, base)
		if err != nil {
			return nil, err
		}
		if _, err := lora.Load(m, dir); err != nil {
			return nil, err
		}
		return m, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		return model.Load(dir, be)
	}
	return nil, fmt.Errorf("evaluator: %s holds neither an adapter (%s) nor a model (config.json)", dir, "adapter_config.json")
}

// GenerateOptions control the sample generations of an evaluation.
type GenerateOptions struct {
	Count        int // validation samples to continue (0: none)
	MaxNewTokens int
	Tokenizer    *tokenizer.Tokenizer
	StopTokens   []int32
}

// Result is an evaluation.
type Result struct {
	// Loss is the mean cross-entropy over every counted target token of the
	// split (not a mean of per-batch means); Perplexity is exp(Loss).
	Loss, Perplexity float64
	Samples          int64 // samples in the split
	Tokens           int64 // counted target tokens
	Generations      []events.Generation
}

// EvaluateFile evaluates m on the micro-batches of a batch file.
func EvaluateFile(m *model.Model, path string, g GenerateOptions) (Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Result{}, err
	}
	r, err := batches.Open(f, info.Size())
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", path, err)
	}
	return Evaluate(m, r, g)
}

// Evaluate computes the loss of m on every micro-batch of r (packed samples
// never see each other, as in training) and continues the prompts of the
// first g.Count samples.
func Evaluate(m *model.Model, r *batches.Reader, g GenerateOptions) (Result, error) {
	var res Result
	var sum float64
	var prompts [][]int32
	for i := range r.Len() {
		mb, err := r.Read(i)
		if err != nil {
			return res, err
		}
		s, n, err := m.Loss(train.FromPacked(&mb, 0))
		if err != nil {
			return res, fmt.Errorf("evaluator: micro-batch %d: %w", i, err)
		}
		sum += s
		res.Tokens += int64(n)
		for row := range mb.Rows {
			res.Samples += int64(len(mb.SampleIDs[row]))
			for j := 0; j+1 < len(mb.Boundaries[row]) && len(prompts) < g.Count; j++ {
				prompts = append(prompts, promptOf(&mb, row, j))
			}
		}
	}
	if res.Tokens == 0 {
		return res, fmt.Errorf("evaluator: the validation split has no target tokens")
	}
	res.Loss = sum / float64(res.Tokens)
	res.Perplexity = math.Exp(res.Loss)
	if g.Tokenizer == nil {
		return res, nil
	}
	for _, p := range prompts {
		out, err := generate.Generate(m, p, generate.Options{MaxNewTokens: g.MaxNewTokens, StopTokens: g.StopTokens})
		if err != nil {
			return res, err
		}
		res.Generations = append(res.Generations, events.Generation{
			Prompt: g.Tokenizer.Decode(p, false), Output: g.Tokenizer.Decode(out, true),
		})
	}
	return res, nil
}

// promptOf is the untrained start of sample j of a row (its prompt), or its
// first token when all of it trains.
func promptOf(mb *packing.MicroBatch, row, j int) []int32 {
	b := mb.Boundaries[row]
	base := row * mb.Width
	ids, labels := mb.InputIDs[base+int(b[j]):base+int(b[j+1])], mb.Labels[base+int(b[j]):base+int(b[j+1])]
	n := 0
	for n < len(labels) && labels[n] == packing.IgnoreIndex {
		n++
	}
	n = max(min(n, len(ids)-1), 1)
	return append([]int32(nil), ids[:n]...)
}

func fetchFile(ctx context.Context, b *bus.Bus, ref events.ArtifactRef, path string) error {
	if info, err := os.Stat(path); err == nil && info.Size() == ref.Size {
		return nil
	}
	st, err := artifacts.Open(ctx, b.JetStream(), ref.Bucket, artifacts.Options{})
	if err != nil {
		return err
	}
	return st.GetFile(ctx, ref, path)
}

func fetchFiles(ctx context.Context, b *bus.Bus, files []events.FileRef, dir string) error {
	for _, f := range files {
		st, err := artifacts.Open(ctx, b.JetStream(), f.Artifact.Bucket, artifacts.Options{})
		if err != nil {
			return err
		}
		if err := st.GetFiles(ctx, []events.FileRef{f}, dir); err != nil {
			return err
		}
	}
	return nil
}
