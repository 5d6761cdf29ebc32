// Package tokenizer is the tokenizer service: DatasetIngested → the run's
// rows tokenized and label-masked by their datasets' prompt strategies
// (shared/prompt) on all cores, cut to sequence_len, shuffled, deduplicated
// and split as Axolotl does (order.go), packed into micro-batches
// (shared/packing) and written as batch files (shared/batches) for training
// and evaluation → DatasetTokenized, and the TrainJob on the work queue.
//
// The result is cached: it is keyed by a hash of everything it depends on
// (the row artifacts, the tokenizer files, every option that changes a token
// or its place) and stored under that key in the artifact store, so a second
// run with the same inputs reuses it and says so (CacheHit).
// dataset_prepared_path also gets a copy on disk, under the key.
package tokenizer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/prompt"
	hftok "github.com/eftml/eft/shared/tokenizer"
)

// Name is the service's name and durable consumer.
const Name = "tokenizer"

// cacheVersion changes whenever the same inputs would give other batches
// (a fix in a strategy, in packing, in the batch format).
const cacheVersion = "tokenize-2" // 2: Axolotl's sample order, dedup and validation split

// Options configure the service. The zero value stores artifacts in
// artifacts.DefaultBucket, fetches hub tokenizers as huggingface_hub would,
// and publishes the TrainJob.
type Options struct {
	Bucket string
	Source TokenizerSource
	// NoTrainJob leaves the TrainJob out (eft preprocess: nothing trains).
	NoTrainJob bool
	// ScratchDir holds temporary files; "" means the system's temporary folder.
	ScratchDir string
	// Workers tokenizing at once; 0 means GOMAXPROCS.
	Workers int
}

// Service tokenizes and packs ingested datasets.
type Service struct {
	bus  *bus.Bus
	opts Options

	mu    sync.Mutex
	store *artifacts.Store
}

// New returns the tokenizer service over b.
func New(b *bus.Bus) *Service { return NewWith(b, Options{}) }

// NewWith returns the service with opts.
func NewWith(b *bus.Bus, opts Options) *Service { return &Service{bus: b, opts: opts} }

// Run consumes DatasetIngested until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.Consume(ctx, bus.Consumer{
		Name:         Name,
		Subjects:     []string{events.TypeSubjects(events.TypeDatasetIngested)},
		Handler:      s.handle,
		OnDeadLetter: stage.FailOnDeadLetter(s.bus, Name, events.StageTokenize),
		// Tokenizing a large dataset takes a while; JetStream must not hand
		// the message to another tokenizer meanwhile.
		AckWait: 30 * time.Minute,
	})
}

func (s *Service) artifacts(ctx context.Context) (*artifacts.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		st, err := artifacts.Open(ctx, s.bus.JetStream(), s.opts.Bucket, artifacts.Options{})
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	return s.store, nil
}

// failure is an error that ends the run (bad data, a bad config), as
// opposed to one worth retrying (the store or the bus unavailable).
type failure struct{ error }

func (s *Service) handle(ctx context.Context, d bus.Delivery) error {
	in, err := events.PayloadAs[events.DatasetIngested](d.Envelope)
	if err != nil {
		return bus.Permanent(err)
	}
	runID := d.Envelope.RunID
	if ended, err := runspec.Ended(ctx, s.bus, runID, events.TypeRunFailed, events.TypeRunCancelled); err != nil || ended != "" {
		return err // a run that has ended needs no batches
	}
	validated, ok, err := runspec.LastPayload[events.ConfigValidated](ctx, s.bus, runID)
	if err != nil {
		return err
	}
	if !ok {
		return bus.Permanent(fmt.Errorf("run %s has no %s", runID, events.TypeConfigValidated))
	}
	store, err := s.artifacts(ctx)
	if err != nil {
		return err
	}
	out, err := s.Prepare(ctx, store, validated, in)
	var f failure
	if errors.As(err, &f) {
		return stage.Fail(ctx, s.bus, d.Envelope, Name, events.StageTokenize, f.error, false)
	}
	if err != nil {
		return err
	}
	if _, err := s.bus.PublishCausedBy(ctx, d.Envelope, Name, out); err != nil {
		return err
	}
	if s.opts.NoTrainJob {
		return nil
	}
	cfg, err := runspec.ParseConfig(validated.Resolved)
	if err != nil {
		return bus.Permanent(err) // Prepare parsed it already
	}
	job := events.TrainJob{
		Config: validated.Resolved, Train: out.Train, Eval: out.Eval, Format: out.Format,
		MicroBatches: out.MicroBatches, SequenceLen: out.SequenceLen, MicroBatchSize: out.MicroBatchSize,
		Tokenizer: out.Tokenizer, WorkDir: validated.WorkDir, Pool: cfg.TrainerPool,
	}
	_, err = s.bus.PublishCausedBy(ctx, d.Envelope, Name, job)
	return err
}

// Prepare turns an ingested dataset into stored batches, or finds them in
// the cache. Errors wrapped in failure are the run's fault.
func (s *Service) Prepare(ctx context.Context, store *artifacts.Store, v events.ConfigValidated, in events.DatasetIngested) (events.DatasetTokenized, error) {
	var out events.DatasetTokenized
	if in.Format != prompt.RowsFormat {
		return out, failure{fmt.Errorf("ingested rows are %q; this tokenizer reads %q", in.Format, prompt.RowsFormat)}
	}
	cfg, _, err := config.Parse("resolved config", []byte(v.Resolved), nil)
	if err != nil {
		return out, failure{fmt.Errorf("the resolved config does not parse: %w", err)}
	}
	dir, err := s.opts.Source.Dir(ctx, cfg, v.WorkDir)
	if err != nil {
		return out, failure{err}
	}
	files, err := s.tokenizerRefs(ctx, store, dir)
	if err != nil {
		return out, err
	}
	key, err := cacheKey(cfg, v.WorkDir, in, files)
	if err != nil {
		return out, failure{err}
	}
	if cached, ok, err := s.cached(ctx, store, key); err != nil {
		return out, err
	} else if ok {
		cached.CacheHit = true
		if err := s.export(ctx, store, cfg, v.WorkDir, cached); err != nil {
			return out, failure{err}
		}
		return cached, nil
	}

	// Fetch and parse the training rows while the tokenizer loads.
	rows := StoredRows(store, in)
	rows.Train = prefetch(ctx, rows.Train)
	tok, err := hftok.Load(dir)
	if err != nil {
		return out, failure{err}
	}
	if err := prompt.Configure(cfg, tok); err != nil {
		return out, failure{err}
	}
	b, err := Build(ctx, cfg, tok, prompt.Env{TokenizerDir: dir, WorkDir: v.WorkDir}, rows, Settings{Workers: s.opts.Workers, ScratchDir: s.opts.ScratchDir})
	if err != nil {
		if ctx.Err() != nil {
			return out, err
		}
		var re retryable
		if errors.As(err, &re) {
			return out, re.error
		}
		return out, failure{err}
	}
	defer b.Remove()
	out = b.Event
	out.CacheKey, out.Tokenizer = key, files
	if out.Train, err = store.PutFile(ctx, b.Train.Path); err != nil {
		return out, err
	}
	if b.Eval != nil {
		ref, err := store.PutFile(ctx, b.Eval.Path)
		if err != nil {
			return out, err
		}
		out.Eval = &ref
	}
	if err := s.remember(ctx, store, key, out); err != nil {
		return out, err
	}
	if err := s.export(ctx, store, cfg, v.WorkDir, out); err != nil {
		return out, failure{err}
	}
	return out, nil
}

// retryable marks an error of reading the inputs that is not the run's fault.
type retryable struct{ error }

// StoredRows fetches the rows of an ingested dataset's splits from the
// store into memory (verified against their digest) and indexes them there
// for Tokenize to parse: the rows keep the bytes anyway, and a file would be
// written and read back.
func StoredRows(store *artifacts.Store, in events.DatasetIngested) RowsSource {
	get := func(ctx context.Context, ref *events.ArtifactRef) (*prompt.Rows, error) {
		if ref == nil {
			return nil, nil
		}
		data, err := store.ReadAll(ctx, *ref)
		if err != nil {
			return nil, retryable{fmt.Errorf("rows %s: %w", ref, err)}
		}
		return prompt.IndexRows(data, ref.String()), nil
	}
	return RowsSource{
		Train: func(ctx context.Context) (*prompt.Rows, error) { return get(ctx, &in.Train) },
		Test:  func(ctx context.Context) (*prompt.Rows, error) { return get(ctx, in.Test) },
	}
}

// prefetch starts get now and hands its result over when asked.
func prefetch(ctx context.Context, get func(context.Context) (*prompt.Rows, error)) func(context.Context) (*prompt.Rows, error) {
	type result struct {
		rows *prompt.Rows
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		rows, err := get(ctx)
		ch <- result{rows, err}
	}()
	return func(context.Context) (*prompt.Rows, error) {
		r := <-ch
		return r.rows, r.err
	}
}

// tokenizerRefs stores the tokenizer files (once: they are content
// addressed) so that trainers on other machines can fetch them.
func (s *Service) tokenizerRefs(ctx context.Context, store *artifacts.Store, dir string) ([]events.FileRef, error) {
	var refs []events.FileRef
	for _, name := range tokenizerFiles(dir) {
		path := filepath.Join(dir, name)
		sum, size, err := fileDigest(path)
		if err != nil {
			return nil, failure{err}
		}
		ref := events.ArtifactRef{Bucket: store.Bucket(), Name: artifacts.ObjectName(sum), SHA256: sum, Size: size}
		have, err := store.Has(ctx, ref)
		if err != nil {
			return nil, err
		}
		if !have {
			if ref, err = store.PutFile(ctx, path); err != nil {
				return nil, err
			}
		}
		refs = append(refs, events.FileRef{Path: name, Artifact: ref})
	}
	return refs, nil
}

// cacheKey hashes everything the batches depend on.
func cacheKey(cfg *config.Config, workDir string, in events.DatasetIngested, tokenizer []events.FileRef) (string, error) {
	type datasetKey struct {
		Entry config.Dataset
		// TemplateFile is the digest of a chat_template_jinja given as a file.
		TemplateFile string `json:",omitempty"`
	}
	keyed := func(list []config.Dataset) ([]datasetKey, error) {
		out := make([]datasetKey, len(list))
		for i, ds := range list {
			out[i].Entry = ds
			sum, err := templateFileDigest(ds.ChatTemplateJinja, workDir)
			if err != nil {
				return nil, err
			}
			out[i].TemplateFile = sum
		}
		return out, nil
	}
	train, err := keyed(cfg.Datasets)
	if err != nil {
		return "", err
	}
	test, err := keyed(cfg.TestDatasets)
	if err != nil {
		return "", err
	}
	topTemplate, err := templateFileDigest(cfg.ChatTemplateJinja, workDir)
	if err != nil {
		return "", err
	}
	ref := func(r *events.ArtifactRef) string {
		if r == nil {
			return ""
		}
		return r.SHA256
	}
	input := map[string]any{
		"version": cacheVersion, "batch_format": batches.Format,
		"rows": []string{in.Train.SHA256, ref(in.Test)}, "rows_format": in.Format,
		"tokenizer": tokenizer, "datasets": train, "test_datasets": test,
		"train_on_inputs": cfg.TrainOnInputs, "sequence_len": cfg.SequenceLen, "excess_length_strategy": cfg.ExcessLengthStrategy,
		"sample_packing": cfg.SamplePacking, "eval_sample_packing": cfg.EvalSamplePacking, "pad_to_sequence_len": cfg.PadToSequenceLen,
		"micro_batch_size": cfg.MicroBatchSize, "eval_batch_size": cfg.EvalBatchSize, "seed": cfg.Seed,
		"shuffle_merged_datasets": cfg.ShuffleMergedDatasets, "dataset_exact_deduplication": cfg.DatasetExactDeduplication, "val_set_size": cfg.ValSetSize,
		"special_tokens": cfg.SpecialTokens, "tokens": cfg.Tokens, "chat_template": cfg.ChatTemplate,
		"chat_template_jinja": cfg.ChatTemplateJinja, "chat_template_file": topTemplate,
		"chat_template_kwargs": cfg.ChatTemplateKwargs, "eot_tokens": cfg.EOTTokens,
	}
	data, err := json.Marshal(input)
	if err != nil {
		return "", fmt.Errorf("cache key: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// templateFileDigest is the digest of a chat template given as a path to a
// .jinja file ("" when it is inline Jinja or empty), so that editing the file
// changes the key.
func templateFileDigest(jinja, workDir string) (string, error) {
	if jinja == "" || filepath.Ext(jinja) != ".jinja" {
		return "", nil
	}
	path := jinja
	if !filepath.IsAbs(path) && workDir != "" {
		path = filepath.Join(workDir, path)
	}
	sum, _, err := fileDigest(path)
	if err != nil {
		return "", fmt.Errorf("chat_template_jinja: %w", err)
	}
	return sum, nil
}

func tagKey(key string) string { return "tokenized/" + key }

// cached returns the result stored under key, if it and its batches are
// all still in the store.
func (s *Service) cached(ctx context.Context, store *artifacts.Store, key string) (events.DatasetTokenized, bool, error) {
	var out events.DatasetTokenized
	ref, ok, err := store.Lookup(ctx, tagKey(key))
	if err != nil || !ok {
		return out, false, err
	}
	data, err := store.ReadAll(ctx, ref)
	if err != nil {
		return out, false, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, false, nil // not ours any more: compute again
	}
	for _, r := range []*events.ArtifactRef{&out.Train, out.Eval} {
		if r == nil {
			continue
		}
		if have, err := store.Has(ctx, *r); err != nil || !have {
			return out, false, err
		}
	}
	return out, true, nil
}

// remember stores the result under key.
func (s *Service) remember(ctx context.Context, store *artifacts.Store, key string, out events.DatasetTokenized) error {
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	ref, err := store.Put(ctx, bytes.NewReader(data))
	if err != nil {
		return err
	}
	return store.Tag(ctx, tagKey(key), ref)
}

// export copies the batches to dataset_prepared_path/<key>/ (train.eftb,
// eval.eftb and tokenized.json, the event's payload) unless they are there.
func (s *Service) export(ctx context.Context, store *artifacts.Store, cfg *config.Config, workDir string, out events.DatasetTokenized) error {
	if cfg.DatasetPreparedPath == "" {
		return nil
	}
	dir := cfg.DatasetPreparedPath
	if !filepath.IsAbs(dir) && workDir != "" {
		dir = filepath.Join(workDir, dir)
	}
	dir = filepath.Join(dir, out.CacheKey)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dataset_prepared_path: %w", err)
	}
	files := []struct {
		name string
		ref  *events.ArtifactRef
	}{{"train.eftb", &out.Train}, {"eval.eftb", out.Eval}}
	for _, f := range files {
		if f.ref == nil {
			continue
		}
		path := filepath.Join(dir, f.name)
		if info, err := os.Stat(path); err == nil && info.Size() == f.ref.Size {
			continue
		}
		if err := store.GetFile(ctx, *f.ref, path); err != nil {
			return fmt.Errorf("dataset_prepared_path: %w", err)
		}
	}
	manifest := out
	manifest.CacheHit = false
	data, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tokenized.json"), append(data, '\n'), 0o644)
}
