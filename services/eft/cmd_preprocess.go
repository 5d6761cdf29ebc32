package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/tokenizer"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/prompt"
	hftok "github.com/eftml/eft/shared/tokenizer"
)

func init() { addCommand(newPreprocessCommand) }

// debugSamples is how many samples --debug shows, as Axolotl's preprocess does.
const debugSamples = 5

func newPreprocessCommand(g *globals) *cobra.Command {
	var debug bool
	var dump string
	cmd := configCommand(g, &cobra.Command{
		Use:   "preprocess CONFIG [--debug] [--dump FILE] [--key value ...]",
		Short: "Validate, ingest and tokenize a config's datasets without training",
		Long: `Run the validate, ingest and tokenizer stages for CONFIG in this process on
the embedded NATS server, and stop once the batches are made (no train job is
queued). The batches land in the artifact store, where a later eft train with
the same inputs finds them (cache hit), and under dataset_prepared_path when
the config sets it.

--debug prints the first samples with every token and its label, trained
tokens in green and masked ones (label -100) in red on a terminal.
--dump FILE writes every tokenized sample, before packing, as JSON lines:
{"split", "row" (index in the ingested split), "source" (file:line),
"input_ids", "labels"}.`,
	}, func(cmd *cobra.Command, path string, overrides []string) error {
		if g.NATSURL != "" {
			return errors.New("preprocess runs its stages in this process on the embedded server; --nats is not supported (a cluster's tokenizer would queue a train job)")
		}
		req, err := newRunRequest(path, overrides)
		if err != nil {
			return err
		}
		return preprocess(cmd.Context(), g, req, cmd.OutOrStdout(), debug, dump)
	})
	cmd.Flags().BoolVar(&debug, "debug", false, "print the first samples with their trained tokens marked")
	cmd.Flags().StringVar(&dump, "dump", "", "write every tokenized sample (before packing) to `FILE` as JSON lines")
	return cmd
}

func preprocess(ctx context.Context, g *globals, req events.RunRequested, out io.Writer, debug bool, dump string) error {
	return onPrepareSystem(ctx, g, "eft-preprocess", func(sys *system) error {
		return preprocessOnSystem(ctx, sys, req, out, debug, dump)
	})
}

// onPrepareSystem starts the stages that prepare data (tracker, validate,
// ingest, and the tokenizer without a train job, since nothing is to train),
// calls fn on them and stops them, returning fn's error first.
func onPrepareSystem(ctx context.Context, g *globals, producer string, fn func(*system) error) error {
	sys, err := startSystem(ctx, g, producer, []string{"tracker", "validate", "ingest"})
	if err != nil {
		return err
	}
	// The tokenizer runs here rather than from the service table, so that it
	// can be told not to publish a train job.
	tokCtx, stopTok := context.WithCancel(context.WithoutCancel(ctx))
	tokDone := make(chan error, 1)
	go func() { tokDone <- tokenizer.NewWith(sys.bus, tokenizer.Options{NoTrainJob: true}).Run(tokCtx) }()
	runErr := fn(sys)
	stopTok()
	if err := <-tokDone; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("tokenizer: %w", err)
	}
	if err := sys.Stop(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func preprocessOnSystem(ctx context.Context, sys *system, req events.RunRequested, out io.Writer, debug bool, dump string) error {
	runID := events.NewRunID()
	env, err := events.New(runID, "eft", req)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "run %s (preprocess)\n", runID)
	if err := sys.bus.Publish(ctx, env); err != nil {
		return err
	}
	var validated events.ConfigValidated
	var ingested events.DatasetIngested
	var tokenized events.DatasetTokenized
	var result error
	err = follow(ctx, sys.bus, runID, func(env events.Envelope) (bool, error) {
		for _, line := range describe(env.Type, env.Payload) {
			fmt.Fprintf(out, "%s %s\n", stamp(env.Time), line)
		}
		var err error
		switch env.Type {
		case events.TypeConfigValidated:
			validated, err = events.PayloadAs[events.ConfigValidated](env)
		case events.TypeDatasetIngested:
			ingested, err = events.PayloadAs[events.DatasetIngested](env)
		case events.TypeDatasetTokenized:
			tokenized, err = events.PayloadAs[events.DatasetTokenized](env)
			return true, err
		case events.TypeRunFailed:
			p, _ := events.PayloadAs[events.RunFailed](env)
			result = fmt.Errorf("run %s failed at stage %s", runID, p.Stage)
			return true, nil
		case events.TypeRunCancelled:
			result = fmt.Errorf("run %s was cancelled", runID)
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return err
	}
	if result != nil {
		return result
	}
	fmt.Fprintf(out, "cache key %s\n", tokenized.CacheKey)
	if !debug && dump == "" {
		return nil
	}
	return inspectSamples(ctx, sys, validated, ingested, out, debug, dump)
}

// inspectSamples tokenizes the ingested rows again, with the tokenizer
// stage's own code, to show (--debug) or write (--dump) the samples as they
// were before packing.
func inspectSamples(ctx context.Context, sys *system, v events.ConfigValidated, in events.DatasetIngested, out io.Writer, debug bool, dump string) error {
	cfg, _, err := config.Parse("resolved config", []byte(v.Resolved), nil)
	if err != nil {
		return err
	}
	dir, err := (tokenizer.TokenizerSource{}).Dir(ctx, cfg, v.WorkDir)
	if err != nil {
		return err
	}
	tok, err := hftok.Load(dir)
	if err != nil {
		return err
	}
	if err := prompt.Configure(cfg, tok); err != nil {
		return err
	}
	store, err := artifacts.Open(ctx, sys.bus.JetStream(), in.Train.Bucket, artifacts.Options{})
	if err != nil {
		return err
	}
	var w *bufio.Writer
	var f *os.File
	if dump != "" {
		if f, err = os.Create(dump); err != nil {
			return err
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 1<<20)
	}
	var dumpErr, rowErr error
	shown := 0
	color := isTerminal(out)
	keep := func(split string, rows *prompt.Rows, t *tokenizer.Tokenized) {
		for i, s := range t.Samples {
			showing := debug && split == "train" && shown < debugSamples
			if rowErr != nil || !showing && (w == nil || dumpErr != nil) {
				continue
			}
			// Tokenize parsed this row already: it parses again.
			r, err := rows.Row(t.Rows[i])
			if err != nil {
				rowErr = err
				return
			}
			if showing {
				fmt.Fprintf(out, "\nsample %d (%s, row %d of the ingested %s split):\n%s", shown, r.Source, t.Rows[i], split, prompt.Explain(tok, s, color))
				shown++
			}
			if w != nil && dumpErr == nil {
				dumpErr = writeDumpLine(w, split, t.Rows[i], r, s.InputIDs, s.AppendLabels(nil))
			}
		}
	}
	b, err := tokenizer.Build(ctx, cfg, tok, prompt.Env{TokenizerDir: dir, WorkDir: v.WorkDir}, tokenizer.StoredRows(store, in), tokenizer.Settings{Keep: keep})
	if err != nil {
		return err
	}
	b.Remove()
	if rowErr != nil {
		return rowErr
	}
	if w != nil {
		if dumpErr == nil {
			dumpErr = w.Flush()
		}
		if dumpErr != nil {
			return fmt.Errorf("--dump %s: %w", dump, dumpErr)
		}
		abs, _ := filepath.Abs(dump)
		fmt.Fprintf(out, "wrote the tokenized samples to %s\n", abs)
	}
	return nil
}

func writeDumpLine(w *bufio.Writer, split string, row int, r prompt.Row, ids, labels []int32) error {
	buf := make([]byte, 0, 64+12*len(ids))
	buf = append(buf, `{"split":`...)
	buf = datasets.AppendJSON(buf, split)
	buf = append(buf, `,"row":`...)
	buf = strconv.AppendInt(buf, int64(row), 10)
	buf = append(buf, `,"source":`...)
	buf = datasets.AppendJSON(buf, r.Source.String())
	buf = appendInts(append(buf, `,"input_ids":`...), ids)
	buf = appendInts(append(buf, `,"labels":`...), labels)
	buf = append(buf, "}\n"...)
	_, err := w.Write(buf)
	return err
}

func appendInts(buf []byte, v []int32) []byte {
	buf = append(buf, '[')
	for i, x := range v {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, int64(x), 10)
	}
	return append(buf, ']')
}

// isTerminal says whether out is a terminal that colours suit (and NO_COLOR
// is not set).
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
