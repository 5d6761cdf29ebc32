package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/services/evaluator"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/prompt"
	"github.com/eftml/eft/shared/tokenizer"
	"github.com/eftml/eft/trainer/generate"
	"github.com/eftml/eft/trainer/model"
)

func init() { addCommand(newInferenceCommand) }

type inferenceFlags struct {
	loraDir, baseModel, device string
	chat, instruct             bool
	gen                        generate.Options
}

func newInferenceCommand(g *globals) *cobra.Command {
	var f inferenceFlags
	cmd := &cobra.Command{
		Use:   "inference CONFIG [--lora-model-dir DIR | --base-model DIR] [--chat] [--key value ...]",
		Short: "Generate text with the base model, a trained adapter or a merged model",
		Long: `Load the config's base model (or --base-model, a local directory or hub repo id)
with the adapter in --lora-model-dir (default: lora_model_dir, else the adapter
a run left in output_dir), read prompts from stdin — one per line; on a
terminal, interactively — and print each continuation as it is decoded.

With --chat each line is a user turn of one conversation, rendered with the
tokenizer's chat template (the config's chat_template when it sets one).
With --instruct each line is the instruction of a row of the config's first
dataset format (alpaca, alpaca:chatml, a user-defined format...), so the
model sees the prompt exactly as in training.
Decoding is greedy unless --temperature is set; it stops at the model's
end-of-sequence tokens or after --max-new-tokens.`,
	}
	fl := cmd.Flags()
	fl.StringVar(&f.loraDir, "lora-model-dir", "", "a PEFT adapter directory to apply")
	fl.StringVar(&f.baseModel, "base-model", "", "the model to load instead of the config's base_model (a merged or fully fine-tuned output)")
	fl.BoolVar(&f.chat, "chat", false, "render prompts with the chat template, as turns of one conversation")
	fl.BoolVar(&f.instruct, "instruct", false, "wrap each prompt as the instruction of the first dataset's format (alpaca, user-defined formats), as the run trained")
	fl.IntVar(&f.gen.MaxNewTokens, "max-new-tokens", 256, "most tokens to generate per prompt")
	fl.Float64Var(&f.gen.Temperature, "temperature", 0, "sampling temperature (0: greedy)")
	fl.IntVar(&f.gen.TopK, "top-k", 0, "sample among the k most likely tokens (0: all)")
	fl.Float64Var(&f.gen.TopP, "top-p", 0, "sample from the smallest set reaching this probability (0: all)")
	fl.Uint64Var(&f.gen.Seed, "seed", 42, "sampling seed")
	fl.StringVar(&f.device, "device", runspec.DeviceAuto, "where the model runs: auto (cuda when a GPU is usable, else cpu), cpu or cuda")
	return configCommand(g, cmd, func(cmd *cobra.Command, path string, overrides []string) error {
		cfg, err := loadLocalConfig(cmd.ErrOrStderr(), path, overrides)
		if err != nil {
			return err
		}
		dev, err := runspec.OpenDevice(f.device, cfg, quietLogger(cmd.ErrOrStderr()), "inference")
		if err != nil {
			return err
		}
		defer dev.Close()
		if f.baseModel != "" {
			cfg.BaseModel, cfg.RevisionOfModel = f.baseModel, ""
			cfg.LoadIn4bit = false // a given model (merged, fully fine-tuned) is not quantized
			if f.loraDir == "" {
				f.loraDir = "-" // a given model is used as it is
			}
		}
		wd, _ := os.Getwd()
		var res runspec.Resolver
		baseDir, err := res.BaseModelDir(cmd.Context(), cfg, wd)
		if err != nil {
			return err
		}
		adapter := adapterDir(cfg, f.loraDir)
		m, err := loadModel(dev, baseDir, adapter, cfg)
		if err != nil {
			return err
		}
		tokDir := baseDir
		if adapter != "" {
			if _, err := os.Stat(filepath.Join(adapter, "tokenizer.json")); err == nil {
				tokDir = adapter // the tokenizer the run trained with
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "model %s with adapter %s on %s\n", baseDir, adapter, dev.Name)
		} else {
			if tokDir, err = res.TokenizerDir(cmd.Context(), cfg, wd, baseDir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "model %s on %s\n", baseDir, dev.Name)
		}
		tok, err := tokenizer.Load(tokDir)
		if err != nil {
			return err
		}
		f.gen.StopTokens = runspec.StopTokens(baseDir, tok)
		encode := func(line string) ([]int32, error) { return tok.Encode(line, true), nil }
		onReply := func(string) {}
		switch {
		case f.chat && f.instruct:
			return errors.New("--chat and --instruct are two ways to format a prompt: give one")
		case f.chat:
			chat, err := newChatSession(cfg, tokDir)
			if err != nil {
				return err
			}
			encode = func(line string) ([]int32, error) {
				text, err := chat.userTurn(line)
				return tok.Encode(text, false), err
			}
			onReply = chat.assistantTurn
		case f.instruct:
			if encode, err = instructionPrompt(cfg, tok); err != nil {
				return err
			}
		}
		return runInference(cmd.InOrStdin(), cmd.OutOrStdout(), stdinIsTerminal(cmd.InOrStdin()), m, tok, encode, onReply, f.gen)
	})
}

func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// runInference answers each line of in: encode makes the prompt, onReply
// hears the answer.
func runInference(in io.Reader, out io.Writer, interactive bool, m *model.Model, tok *tokenizer.Tokenizer,
	encode func(string) ([]int32, error), onReply func(string), opt generate.Options) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for {
		if interactive {
			fmt.Fprint(out, "> ")
		}
		if !sc.Scan() {
			return sc.Err()
		}
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		prompt, err := encode(line)
		if err != nil {
			return err
		}
		reply, err := stream(out, m, tok, prompt, opt)
		if err != nil {
			return err
		}
		fmt.Fprintln(out)
		onReply(reply)
	}
}

// instructionPrompt encodes a line as the prompt part of a row of the
// config's first dataset: the row {instruction: line, input: "", output:
// ""} tokenized by the dataset's strategy, up to where training would
// start (the labels the strategy masks).
func instructionPrompt(cfg *config.Config, tok *tokenizer.Tokenizer) (func(string) ([]int32, error), error) {
	if len(cfg.Datasets) == 0 {
		return nil, errors.New("--instruct: the config has no datasets")
	}
	ds := cfg.Datasets[0]
	local := *cfg
	local.TrainOnInputs = false
	if err := prompt.Configure(&local, tok); err != nil {
		return nil, err
	}
	st, err := prompt.New(&local, &ds, tok)
	if err != nil {
		return nil, fmt.Errorf("--instruct: %w", err)
	}
	fields := map[string]bool{"instruction": true, "input": false, "output": false}
	if f := ds.Type.Format; f != nil {
		fields = map[string]bool{f.FieldInstruction: true, f.FieldInput: false, f.FieldOutput: false}
	}
	return func(line string) ([]int32, error) {
		var row datasets.Object
		for name, isInstruction := range fields {
			v := ""
			if isInstruction {
				v = line
			}
			row = append(row, datasets.Field{Name: name, Value: v})
		}
		samples, err := st.Tokenize(nil, row)
		if err != nil {
			return nil, fmt.Errorf("--instruct: dataset %s (type %s): %w", ds.Path, st.Name(), err)
		}
		if len(samples) != 1 {
			return nil, fmt.Errorf("--instruct: dataset %s (type %s) makes %d samples of a row; it is not an instruction format", ds.Path, st.Name(), len(samples))
		}
		s := samples[0]
		if err := s.Check(); err != nil {
			return nil, fmt.Errorf("--instruct: dataset type %s: %w", st.Name(), err)
		}
		n := 0
		for n < len(s.InputIDs) && s.Label(n) == prompt.IgnoreIndex {
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("--instruct: dataset type %s masks no prompt; it is not an instruction format", st.Name())
		}
		return s.InputIDs[:n], nil
	}, nil
}

// stream generates from prompt, printing the text as it grows (a token
// whose bytes do not end a UTF-8 character waits for the next).
func stream(out io.Writer, m *model.Model, tok *tokenizer.Tokenizer, prompt []int32, opt generate.Options) (string, error) {
	var ids []int32
	printed := ""
	opt.OnToken = func(id int32) bool {
		ids = append(ids, id)
		text := tok.Decode(ids, true)
		if strings.HasPrefix(text, printed) && utf8.ValidString(text) {
			fmt.Fprint(out, text[len(printed):])
			printed = text
		}
		return true
	}
	if _, err := generate.Generate(m, prompt, opt); err != nil {
		return "", err
	}
	if text := tok.Decode(ids, true); text != printed && strings.HasPrefix(text, printed) {
		fmt.Fprint(out, text[len(printed):])
		printed = text
	}
	return printed, nil
}

// loadModel loads the model in baseDir, with the PEFT adapter in adapter
// ("" for none), on dev as the run trained it: NF4 for QLoRA
// (runspec.LoadOptions), frozen weights in bf16 on a GPU in bf16.
func loadModel(dev *runspec.Device, baseDir, adapter string, cfg *config.Config) (*model.Model, error) {
	var m *model.Model
	var err error
	if adapter != "" {
		m, err = evaluator.LoadCheckpoint(baseDir, adapter, dev.Backend, runspec.LoadOptions(cfg))
	} else {
		m, err = model.LoadWith(baseDir, dev.Backend, runspec.LoadOptions(cfg))
	}
	if err != nil {
		return nil, err
	}
	dev.StoreFrozen(m)
	return m, nil
}

// quietLogger logs warnings and errors to w: where a command runs is
// printed with its model, so the device fallback's reason stays out.
func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
