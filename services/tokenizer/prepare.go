package tokenizer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/parallel"
	"github.com/eftml/eft/shared/prompt"
	hftok "github.com/eftml/eft/shared/tokenizer"
)

// Strategies builds the prompt strategy of every entry of list (the
// config's datasets or test_datasets).
func Strategies(cfg *config.Config, list []config.Dataset, tok *hftok.Tokenizer, env prompt.Env) ([]prompt.Strategy, error) {
	out := make([]prompt.Strategy, len(list))
	for i := range list {
		s, err := prompt.NewWith(cfg, &list[i], tok, env)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// Tokenized is one split's samples after the length policy: in row order
// from Tokenize, in Axolotl's order after Arrange.
type Tokenized struct {
	Samples []packing.Sample
	// Rows[i] is the index (into the split's rows) of the row Samples[i] came from.
	Rows []int
	// Slot[i] is Samples[i]'s place among the Slots rows Axolotl's
	// tokenizing makes of the split's rows before its length filter (see
	// axolotlRows): the places its shuffle permutes (see Arrange).
	Slot  []int
	Slots int
	// Tokens and Trained count the samples' tokens and trained tokens.
	Tokens, Trained int64
	// Truncated and Dropped count samples cut to sequence_len and samples left
	// out (too long under "drop", shorter than two tokens, or, when packing,
	// without a trained token).
	Truncated, Dropped int64
}

// TokenizeOptions say how a split is tokenized.
type TokenizeOptions struct {
	Length prompt.LengthPolicy
	// DropUntrained leaves out samples with no trained token, as Axolotl
	// does before packing.
	DropUntrained bool
	// Workers tokenizing at once; 0 means GOMAXPROCS.
	Workers int
}

// block is the unit of work: consecutive rows, so that results come back
// in row order without a sort.
const block = 256

// Tokenize decodes each row and runs it through the strategy of its
// dataset on all cores, and applies the length policy. The first bad row
// (in row order) is an error naming its file and line.
func Tokenize(ctx context.Context, rows *prompt.Rows, strategies []prompt.Strategy, o TokenizeOptions) (*Tokenized, error) {
	nBlocks := (rows.Len() + block - 1) / block
	parts := make([]Tokenized, nBlocks)
	errs := make([]error, nBlocks)
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Each worker decodes its rows into an arena of its own: a strategy is
	// done with a row when it returns its samples (ids and labels, none of
	// the row's values), so the next row can reuse the memory.
	arenas := make([]datasets.Arena, workers)
	parallel.Chunks(rows.Len(), block, workers, func(worker, lo, hi int) bool {
		if ctx.Err() != nil {
			return false
		}
		b := lo / block
		errs[b] = tokenizeBlock(&parts[b], rows, lo, hi, strategies, o, &arenas[worker])
		return errs[b] == nil
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := firstError(errs); err != nil {
		return nil, err
	}
	out := &Tokenized{}
	n := 0
	for i := range parts {
		n += len(parts[i].Samples)
	}
	out.Samples = make([]packing.Sample, 0, n)
	out.Rows = make([]int, 0, n)
	out.Slot = make([]int, 0, n)
	for i := range parts {
		p := &parts[i]
		out.Samples = append(out.Samples, p.Samples...)
		out.Rows = append(out.Rows, p.Rows...)
		for _, s := range p.Slot {
			out.Slot = append(out.Slot, out.Slots+s)
		}
		out.Slots += p.Slots
		out.Tokens += p.Tokens
		out.Trained += p.Trained
		out.Truncated += p.Truncated
		out.Dropped += p.Dropped
	}
	return out, nil
}

func firstError(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func tokenizeBlock(out *Tokenized, rows *prompt.Rows, lo, hi int, strategies []prompt.Strategy, o TokenizeOptions, arena *datasets.Arena) error {
	var made []packing.Sample
	for i := lo; i < hi; i++ {
		r, err := rows.RowIn(i, arena)
		if err != nil {
			return err
		}
		if r.Dataset < 0 || r.Dataset >= len(strategies) {
			return fmt.Errorf("%s: row of dataset %d, but the config lists %d", r.Source, r.Dataset, len(strategies))
		}
		made, err = strategies[r.Dataset].Tokenize(made[:0], r.Fields)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", r.Source, strategies[r.Dataset].Name(), err)
		}
		first := out.Slots
		out.Slots += axolotlRows(strategies[r.Dataset], len(made))
		for k, s := range made {
			if err := s.Check(); err != nil {
				return fmt.Errorf("%s: %s: %w", r.Source, strategies[r.Dataset].Name(), err)
			}
			s, fit, err := o.Length.Apply(s)
			if err != nil {
				return fmt.Errorf("%s: %w", r.Source, err)
			}
			switch fit {
			case prompt.DroppedLong, prompt.DroppedShort:
				out.Dropped++
				continue
			case prompt.Truncated:
				out.Truncated++
			}
			trained := s.CountTrained()
			if trained == 0 && o.DropUntrained {
				out.Dropped++
				continue
			}
			out.Samples = append(out.Samples, s)
			out.Rows = append(out.Rows, i)
			out.Slot = append(out.Slot, first+k)
			out.Tokens += int64(len(s.InputIDs))
			out.Trained += int64(trained)
		}
	}
	return nil
}

// Packed is one split packed into micro-batches and written as a batch file.
type Packed struct {
	Path  string // the batch file (a temporary file the caller removes)
	Stats packing.Stats
}

// Pack lays the samples out into micro-batches and writes them to a new
// batch file in dir ("" for the system's temporary folder), on workers
// goroutines (0: GOMAXPROCS).
func Pack(samples []packing.Sample, o packing.Options, dir string, workers int) (*Packed, error) {
	bs, err := packing.Pack(samples, o)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "eft-batches-*.eftb")
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := batches.NewWriter(bw, o.PadTokenID)
	if err == nil {
		err = w.WriteBatches(bs, workers)
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("writing batches: %w", err)
	}
	return &Packed{Path: f.Name(), Stats: bs.Stats}, nil
}

// RowsSource fetches the rows of each split; a split the dataset lacks gives nil.
type RowsSource struct {
	Train, Test func(ctx context.Context) (*prompt.Rows, error)
}

// Settings are how Build runs (not what it computes).
type Settings struct {
	Workers    int
	ScratchDir string
	// Keep, when set, receives each split's samples before packing
	// ("train" or "eval"), with the rows they came from (eft preprocess --dump).
	Keep func(split string, rows *prompt.Rows, t *Tokenized)
}

// Built is the outcome of Build: batch files and the event describing them
// (artifact references still unset).
type Built struct {
	Train, Eval *Packed
	Event       events.DatasetTokenized
}

// Remove deletes the batch files.
func (b *Built) Remove() {
	for _, p := range []*Packed{b.Train, b.Eval} {
		if p != nil {
			os.Remove(p.Path)
		}
	}
}

// Build tokenizes the training rows with tok (its files in
// env.TokenizerDir), applies excess_length_strategy, puts the samples in
// Axolotl's order (Arrange: the seeded shuffle, deduplication), holds out
// val_set_size of them for evaluation — else evaluates on the test rows,
// tokenized and arranged the same way — and packs each split into a batch
// file.
func Build(ctx context.Context, cfg *config.Config, tok *hftok.Tokenizer, env prompt.Env, src RowsSource, set Settings) (*Built, error) {
	trainStrategies, err := Strategies(cfg, cfg.Datasets, tok, env)
	if err != nil {
		return nil, err
	}
	length := prompt.LengthPolicy{SequenceLen: cfg.SequenceLen, Strategy: cfg.ExcessLengthStrategy}
	pad := prompt.PadTokenID(tok)
	b := &Built{Event: events.DatasetTokenized{Format: batches.Format, SequenceLen: cfg.SequenceLen, MicroBatchSize: cfg.MicroBatchSize, SamplePacking: cfg.SamplePacking}}

	rows, err := src.Train(ctx)
	if err != nil {
		return nil, err
	}
	t, err := Tokenize(ctx, rows, trainStrategies, TokenizeOptions{Length: length, DropUntrained: cfg.SamplePacking, Workers: set.Workers})
	if err != nil {
		return nil, err
	}
	order := OrderOptions{Shuffle: cfg.ShuffleMergedDatasets, Seed: uint64(cfg.Seed), Dedup: cfg.DatasetExactDeduplication}
	duplicates := Arrange(t, order)
	if len(t.Samples) == 0 {
		return nil, fmt.Errorf("no training samples are left: %d were dropped (longer than sequence_len %d under excess_length_strategy %s, shorter than %d tokens, or with nothing to train on)",
			t.Dropped, cfg.SequenceLen, orDrop(cfg.ExcessLengthStrategy), prompt.MinSampleLen)
	}
	val, err := SplitValidation(t, cfg.ValSetSize)
	if err != nil {
		return nil, err
	}
	if set.Keep != nil {
		set.Keep("train", rows, t)
		if val != nil {
			set.Keep("eval", rows, val)
		}
	}
	rows = nil
	b.Event.Samples, b.Event.Tokens, b.Event.TrainedTokens = int64(len(t.Samples)), t.Tokens, t.Trained
	b.Event.Dropped, b.Event.Duplicates, b.Event.Truncated = t.Dropped, int64(duplicates), t.Truncated
	b.Train, err = Pack(t.Samples, packing.Options{SequenceLen: cfg.SequenceLen, MicroBatchSize: cfg.MicroBatchSize, Pack: cfg.SamplePacking,
		PadToSequenceLen: cfg.PadToSequenceLen, PadTokenID: pad, Seed: uint64(cfg.Seed)}, set.ScratchDir, set.Workers)
	if err != nil {
		return nil, err
	}
	b.Event.MicroBatches = int64(b.Train.Stats.MicroBatches)
	b.Event.PackingEfficiency = b.Train.Stats.Efficiency
	t = nil

	// Evaluation samples: the validation split, else the test_datasets.
	e := val
	if e == nil {
		if e, err = tokenizeTest(ctx, cfg, tok, env, src, length, order, set); err != nil {
			b.Remove()
			return nil, err
		}
	}
	if e == nil || len(e.Samples) == 0 {
		return b, nil
	}
	b.Eval, err = Pack(e.Samples, packing.Options{SequenceLen: cfg.SequenceLen, MicroBatchSize: cfg.EvalBatchSize, Pack: cfg.EvalSamplePacking,
		PadToSequenceLen: cfg.PadToSequenceLen, PadTokenID: pad, Seed: uint64(cfg.Seed)}, set.ScratchDir, set.Workers)
	if err != nil {
		b.Remove()
		return nil, err
	}
	b.Event.EvalSamples = int64(len(e.Samples))
	b.Event.EvalMicroBatches = int64(b.Eval.Stats.MicroBatches)
	return b, nil
}

// tokenizeTest tokenizes and arranges the test rows (nil when there are
// none): Axolotl prepares test_datasets as it does datasets, with
// eval_sample_packing deciding whether untrained samples are dropped.
func tokenizeTest(ctx context.Context, cfg *config.Config, tok *hftok.Tokenizer, env prompt.Env, src RowsSource,
	length prompt.LengthPolicy, order OrderOptions, set Settings) (*Tokenized, error) {
	rows, err := src.Test(ctx)
	if err != nil || rows.Len() == 0 {
		return nil, err
	}
	strategies, err := Strategies(cfg, cfg.TestDatasets, tok, env)
	if err != nil {
		return nil, err
	}
	e, err := Tokenize(ctx, rows, strategies, TokenizeOptions{Length: length, DropUntrained: cfg.EvalSamplePacking, Workers: set.Workers})
	if err != nil {
		return nil, fmt.Errorf("evaluation rows: %w", err)
	}
	Arrange(e, order)
	if set.Keep != nil {
		set.Keep("eval", rows, e)
	}
	return e, nil
}

func orDrop(s string) string {
	if s == "" {
		return "drop"
	}
	return s
}
