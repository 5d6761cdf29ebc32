package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/evaluator"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/artifacts"
	hftok "github.com/eftml/eft/shared/tokenizer"
)

func init() { addCommand(newEvaluateCommand) }

func newEvaluateCommand(g *globals) *cobra.Command {
	var loraDir, baseModel, device string
	var generations int
	cmd := &cobra.Command{
		Use:   "evaluate CONFIG [--lora-model-dir DIR | --base-model DIR] [--key value ...]",
		Short: "Score a finished model on the config's validation split: eval loss and perplexity",
		Long: `Prepare the config's validation split as "eft train" does (validate, ingest and
tokenize in this process, cached), then score the model on it: the base model
with the adapter in --lora-model-dir (default: lora_model_dir, else the
adapter a run left in output_dir), or --base-model as it is. Prints the eval
loss (mean over every trained token of the split), the perplexity and a few
sample generations, as the evaluator service computes them during training.`,
	}
	cmd.Flags().StringVar(&loraDir, "lora-model-dir", "", "a PEFT adapter directory to apply")
	cmd.Flags().StringVar(&baseModel, "base-model", "", "the model to score instead of the config's base_model")
	cmd.Flags().IntVar(&generations, "generations", 2, "validation prompts to continue and print")
	cmd.Flags().StringVar(&device, "device", runspec.DeviceAuto, "where the model runs: auto (cuda when a GPU is usable, else cpu), cpu or cuda")
	return configCommand(g, cmd, func(cmd *cobra.Command, path string, overrides []string) error {
		if g.NATSURL != "" {
			return errors.New("evaluate prepares its data in this process on the embedded server; --nats is not supported")
		}
		cfg, err := loadLocalConfig(cmd.ErrOrStderr(), path, overrides)
		if err != nil {
			return err
		}
		if !cfg.HasEvalData() {
			return fmt.Errorf("%s has no validation split: set val_set_size or test_datasets", path)
		}
		dev, err := runspec.OpenDevice(device, cfg, quietLogger(cmd.ErrOrStderr()), "evaluate")
		if err != nil {
			return err
		}
		defer dev.Close()

		req, err := newRunRequest(path, overrides)
		if err != nil {
			return err
		}
		ctx, out := cmd.Context(), cmd.OutOrStdout()
		evalFile := filepath.Join(g.Home, "evaluate", "eval.batches")
		if err := prepareEvalSplit(ctx, g, req, out, evalFile); err != nil {
			return err
		}
		defer os.Remove(evalFile)

		wd, _ := os.Getwd()
		if baseModel != "" { // scored as it is, unquantized
			cfg.BaseModel, cfg.RevisionOfModel, cfg.LoadIn4bit, loraDir = baseModel, "", false, "-"
		}
		var res runspec.Resolver
		baseDir, err := res.BaseModelDir(ctx, cfg, wd)
		if err != nil {
			return err
		}
		what := baseDir
		adapter := adapterDir(cfg, loraDir)
		if adapter != "" {
			what += " with adapter " + adapter
		}
		m, err := loadModel(dev, baseDir, adapter, cfg)
		if err != nil {
			return err
		}
		what += " on " + dev.Name
		gen := evaluator.GenerateOptions{}
		if generations > 0 {
			tokDir, err := res.TokenizerDir(ctx, cfg, wd, baseDir)
			if err != nil {
				return err
			}
			tok, err := hftok.Load(tokDir)
			if err != nil {
				return err
			}
			gen = evaluator.GenerateOptions{Count: generations, MaxNewTokens: 32, Tokenizer: tok, StopTokens: runspec.StopTokens(baseDir, tok)}
		}
		fmt.Fprintf(out, "evaluating %s\n", what)
		r, err := evaluator.EvaluateFile(m, evalFile, gen)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "eval_loss %.6f  perplexity %.4f  samples %d  tokens %d\n", r.Loss, r.Perplexity, r.Samples, r.Tokens)
		for _, g := range r.Generations {
			fmt.Fprintf(out, "  %q -> %q\n", g.Prompt, g.Output)
		}
		return nil
	})
}

// prepareEvalSplit runs validate, ingest and tokenize for req (no train job)
// and writes the validation batches to path.
func prepareEvalSplit(ctx context.Context, g *globals, req events.RunRequested, out io.Writer, path string) error {
	return onPrepareSystem(ctx, g, "eft-evaluate", func(sys *system) error {
		return fetchEvalSplit(ctx, sys, req, out, path)
	})
}

func fetchEvalSplit(ctx context.Context, sys *system, req events.RunRequested, out io.Writer, path string) error {
	runID := events.NewRunID()
	env, err := events.New(runID, "eft", req)
	if err != nil {
		return err
	}
	if err := sys.bus.Publish(ctx, env); err != nil {
		return err
	}
	var tokenized *events.DatasetTokenized
	var result error
	err = follow(ctx, sys.bus, runID, func(env events.Envelope) (bool, error) {
		for _, line := range describe(env.Type, env.Payload) {
			fmt.Fprintf(out, "%s %s\n", stamp(env.Time), line)
		}
		switch env.Type {
		case events.TypeDatasetTokenized:
			p, err := events.PayloadAs[events.DatasetTokenized](env)
			tokenized = &p
			return true, err
		case events.TypeRunFailed, events.TypeRunCancelled:
			result = fmt.Errorf("preparing the validation split: run %s ended with %s", runID, env.Type)
			return true, nil
		}
		return false, nil
	})
	if err != nil || result != nil {
		return errors.Join(err, result)
	}
	if tokenized.Eval == nil {
		return errors.New("the prepared data has no validation batches")
	}
	st, err := artifacts.Open(ctx, sys.bus.JetStream(), tokenized.Eval.Bucket, artifacts.Options{})
	if err != nil {
		return err
	}
	return st.GetFile(ctx, *tokenized.Eval, path)
}
