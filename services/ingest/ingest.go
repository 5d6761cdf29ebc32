// Package ingest is the ingest service: ConfigValidated → the config's
// datasets read (shared/datasets: local files and folders, https URLs, hub
// repos), rows checked against what their prompt strategy needs and merged
// in config order (datasets, then test_datasets) → the normalized rows stored as
// content-addressed artifacts (shared/prompt.RowsFormat) → DatasetIngested
// with the counts, the rejected rows (file:line and why) and the schema seen.
//
// Data that cannot be used (a missing file, more bad rows than the policy
// allows, no rows at all) ends the run with RunFailed
// at stage ingest, the message naming the file and line.
package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/hub"
	"github.com/eftml/eft/shared/prompt"
)

// Name is the service's name and durable consumer.
const Name = "ingest"

// MaxRejectedSamples bounds the rejected rows an event lists one by one.
const MaxRejectedSamples = 20

// Options configure the service. The zero value stores artifacts in
// artifacts.DefaultBucket and reaches the hub as huggingface_hub would
// (hub.NewFromEnv).
type Options struct {
	Bucket string
	// Hub resolves hub dataset repo ids; nil means hub.NewFromEnv().
	Hub datasets.HubDatasets
	// Load adjusts the dataset reading options (tests: an HTTP client, a
	// download folder).
	Load datasets.Options
}

// Service ingests the datasets of validated runs.
type Service struct {
	bus  *bus.Bus
	opts Options

	mu    sync.Mutex
	store *artifacts.Store
}

// New returns the ingest service over b.
func New(b *bus.Bus) *Service { return NewWith(b, Options{}) }

// NewWith returns the service with opts.
func NewWith(b *bus.Bus, opts Options) *Service {
	if opts.Hub == nil {
		opts.Hub = hub.NewFromEnv()
	}
	return &Service{bus: b, opts: opts}
}

// Run consumes ConfigValidated until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.Consume(ctx, bus.Consumer{
		Name:         Name,
		Subjects:     []string{events.TypeSubjects(events.TypeConfigValidated)},
		Handler:      s.handle,
		OnDeadLetter: stage.FailOnDeadLetter(s.bus, Name, events.StageIngest),
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

func (s *Service) handle(ctx context.Context, d bus.Delivery) error {
	v, err := events.PayloadAs[events.ConfigValidated](d.Envelope)
	if err != nil {
		return bus.Permanent(err)
	}
	if ended, err := runspec.Ended(ctx, s.bus, d.Envelope.RunID, events.TypeRunFailed, events.TypeRunCancelled); err != nil || ended != "" {
		return err // a run that has ended needs no data
	}
	cfg, _, err := config.Parse("resolved config", []byte(v.Resolved), nil)
	if err != nil {
		return stage.Fail(ctx, s.bus, d.Envelope, Name, events.StageIngest, fmt.Errorf("the resolved config does not parse: %w", err), false)
	}
	res, err := Ingest(ctx, cfg, v.WorkDir, s.loadOptions())
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return stage.Fail(ctx, s.bus, d.Envelope, Name, events.StageIngest, err, false)
	}
	store, err := s.artifacts(ctx)
	if err != nil {
		return err
	}
	out, err := res.Store(ctx, store)
	if err != nil {
		return err
	}
	_, err = s.bus.PublishCausedBy(ctx, d.Envelope, Name, out)
	return err
}

func (s *Service) loadOptions() datasets.Options {
	o := s.opts.Load
	o.Hub = s.opts.Hub
	return o
}

// Split is the rows of one split, each tagged with the dataset it came from.
type Split []prompt.Row

// Result is what ingest made of a config's datasets.
type Result struct {
	Train, Test     Split
	Rejected        int64
	RejectedSamples []events.RowIssue
	Sources         []events.DatasetSource
	Schema          []events.SchemaField
}

// Ingest reads cfg's datasets and test_datasets: each read and checked
// against its strategy's fields (relative paths resolve against workDir),
// then merged in config order. The rest of what Axolotl does between loading
// and packing — the seeded shuffle, deduplication and the val_set_size
// split — happens to the tokenized samples, as in Axolotl (the tokenizer
// service): it shuffles after tokenizing, so the shuffle sees every sample a
// row makes, and deduplicates and splits after the length filter.
func Ingest(ctx context.Context, cfg *config.Config, workDir string, opts datasets.Options) (*Result, error) {
	res := &Result{}
	schema := map[string][]string{}
	var order []string

	train, err := loadAll(ctx, cfg.Datasets, "datasets", workDir, opts, "train", res, schema, &order)
	if err != nil {
		return nil, err
	}
	res.Train = merge(train)
	if len(res.Train) == 0 {
		return nil, fmt.Errorf("datasets: no rows to train on (%s)", describeSources(res.Sources))
	}
	if len(cfg.TestDatasets) > 0 {
		test, err := loadAll(ctx, cfg.TestDatasets, "test_datasets", workDir, opts, "test", res, schema, &order)
		if err != nil {
			return nil, err
		}
		res.Test = merge(test)
	}
	for _, name := range order {
		res.Schema = append(res.Schema, events.SchemaField{Name: name, Type: strings.Join(schema[name], "|")})
	}
	return res, nil
}

// merge concatenates the datasets in config order (datasets'
// concatenate_datasets), each row tagged with its entry's index.
func merge(loaded []*datasets.Dataset) Split {
	n := 0
	for _, d := range loaded {
		n += len(d.Rows)
	}
	out := make(Split, 0, n)
	for i, d := range loaded {
		for _, r := range d.Rows {
			out = append(out, prompt.Row{Dataset: i, Source: r.Source, Fields: r.Fields})
		}
	}
	return out
}

// loadAll reads the entries of one datasets list, several at a time.
func loadAll(ctx context.Context, list []config.Dataset, key, workDir string, base datasets.Options, defaultSplit string,
	res *Result, schema map[string][]string, order *[]string) ([]*datasets.Dataset, error) {
	out := make([]*datasets.Dataset, len(list))
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	limit := make(chan struct{}, 4)
	for i := range list {
		wg.Go(func() {
			limit <- struct{}{}
			defer func() { <-limit }()
			ds := &list[i]
			opts := base
			opts.Require = prompt.Requirements(ds)
			opts.DefaultSplit = defaultSplit
			spec := datasets.Spec{Path: resolvePath(ds.Path, workDir), DSType: ds.DsType, DataFiles: ds.DataFiles,
				Split: ds.Split, TrainOnSplit: ds.TrainOnSplit, Name: ds.Name, Revision: ds.Revision}
			d, err := datasets.Load(ctx, spec, opts)
			if err != nil {
				errs[i] = fmt.Errorf("%s[%d] (%s): %w", key, i, ds.Path, err)
				return
			}
			out[i] = d
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, d := range out {
		ds := &list[i]
		typ := ds.Type.Name
		if ds.Type.Format != nil {
			typ = "user_defined"
		}
		res.Sources = append(res.Sources, events.DatasetSource{Path: ds.Path, Type: typ, Rows: int64(len(d.Rows)), Rejected: int64(d.Report.Rejected)})
		res.Rejected += int64(d.Report.Rejected)
		for _, p := range d.Report.Problems {
			if len(res.RejectedSamples) < MaxRejectedSamples {
				res.RejectedSamples = append(res.RejectedSamples, events.RowIssue{File: p.Source.File, Line: int64(p.Source.Line), Reason: p.Class + ": " + p.Detail})
			}
		}
		for _, c := range d.Report.Columns {
			if _, seen := schema[c.Name]; !seen {
				*order = append(*order, c.Name)
			}
			for _, k := range c.Kinds {
				if !slices.Contains(schema[c.Name], k) {
					schema[c.Name] = append(schema[c.Name], k)
				}
			}
		}
	}
	return out, nil
}

// resolvePath joins a relative local path to the submitter's working
// directory when that names something there; anything else (a hub repo id,
// a URL) is left as written.
func resolvePath(p, workDir string) string {
	if workDir == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
		return p
	}
	joined := filepath.Join(workDir, p)
	if _, err := os.Stat(joined); err == nil {
		return joined
	}
	return p
}

func describeSources(src []events.DatasetSource) string {
	parts := make([]string, len(src))
	for i, s := range src {
		parts[i] = fmt.Sprintf("%s: %d rows, %d rejected", s.Path, s.Rows, s.Rejected)
	}
	return strings.Join(parts, "; ")
}

// Store writes each split to the artifact store and returns the event that
// announces them. The validation split and duplicates are the tokenizer's
// to make and find, after tokenizing (see Ingest).
func (r *Result) Store(ctx context.Context, store *artifacts.Store) (events.DatasetIngested, error) {
	out := events.DatasetIngested{
		Format: prompt.RowsFormat, Rows: int64(len(r.Train)), TestRows: int64(len(r.Test)),
		Rejected: r.Rejected, RejectedSamples: r.RejectedSamples, Sources: r.Sources, Schema: r.Schema,
	}
	var err error
	if out.Train, err = putSplit(ctx, store, r.Train); err != nil {
		return out, err
	}
	if len(r.Test) > 0 {
		ref, err := putSplit(ctx, store, r.Test)
		if err != nil {
			return out, err
		}
		out.Test = &ref
	}
	return out, nil
}

// putSplit encodes rows and stores them, streaming: the store reads the
// encoding as it is made (a pipe, not the whole split in memory, nor a
// temporary file written and read back), so encoding and uploading overlap.
func putSplit(ctx context.Context, store *artifacts.Store, rows Split) (events.ArtifactRef, error) {
	pr, pw := io.Pipe()
	encoded := make(chan struct{})
	go func() {
		defer close(encoded)
		w := bufio.NewWriterSize(pw, 1<<20)
		var buf []byte
		for _, r := range rows {
			buf = prompt.AppendRow(buf[:0], r)
			if _, err := w.Write(buf); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(w.Flush())
	}()
	ref, err := store.Put(ctx, pr)
	// A Put that stopped early leaves the encoder blocked on the pipe.
	pr.CloseWithError(errors.New("ingest: the upload stopped"))
	<-encoded
	return ref, err
}
