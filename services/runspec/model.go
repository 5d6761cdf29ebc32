package runspec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/hub"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/quant"
)

// TokenizerFiles are the files of a model directory that make up its
// tokenizer; outputs carry them so that an output folder is usable alone.
var TokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"tokenizer.model", "chat_template.jinja", "added_tokens.json",
}

// ModelFiles are the files a model directory needs besides its weights.
var ModelFiles = []string{"config.json", "generation_config.json"}

// keepModelFile says which files of a hub model repo are fetched: config,
// the transformers safetensors weights (model.safetensors, or its shards and
// index) and tokenizer files; never pickles, other frameworks' weights or
// other copies (consolidated.safetensors, original/, onnx/).
func keepModelFile(name string) bool {
	if strings.Contains(name, "/") {
		return false
	}
	if name == "model.safetensors" || name == "model.safetensors.index.json" ||
		(strings.HasPrefix(name, "model-") && strings.HasSuffix(name, ".safetensors")) {
		return true
	}
	for _, f := range append(ModelFiles, TokenizerFiles...) {
		if name == f {
			return true
		}
	}
	return false
}

// repoID is a hub repo id: owner/name.
var repoID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Resolver finds a run's models on this machine.
type Resolver struct {
	// Hub fetches hub repo ids into the hub cache; nil means
	// hub.NewFromEnv() (HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_OFFLINE).
	Hub *hub.Client
}

// LocalPath resolves p against workDir when it is relative.
func LocalPath(p, workDir string) string {
	if p == "" || filepath.IsAbs(p) || workDir == "" {
		return p
	}
	return filepath.Join(workDir, p)
}

// ModelDir returns a local Hugging Face model directory for name: a local
// directory (relative paths against workDir) holding config.json, or a hub
// repo id fetched at revision ("" means main) into the hub cache.
func (r Resolver) ModelDir(ctx context.Context, name, revision, workDir string) (string, error) {
	if name == "" {
		return "", errors.New("runspec: no base_model")
	}
	local := LocalPath(name, workDir)
	if info, err := os.Stat(local); err == nil {
		if !info.IsDir() {
			return "", fmt.Errorf("runspec: base model %s is a file; give the model's directory", local)
		}
		if _, err := os.Stat(filepath.Join(local, "config.json")); err != nil {
			return "", fmt.Errorf("runspec: base model %s is not a Hugging Face model directory (no config.json)", local)
		}
		return local, nil
	}
	if filepath.IsAbs(name) || strings.HasPrefix(name, ".") || !repoID.MatchString(name) {
		return "", fmt.Errorf("runspec: base model %s: no such directory, and not a hub repo id (owner/name)", local)
	}
	client := r.Hub
	if client == nil {
		client = hub.NewFromEnv()
	}
	if revision == "" {
		revision = "main"
	}
	dir, err := client.Snapshot(ctx, hub.Model, name, revision, keepModelFile)
	if err != nil {
		return "", fmt.Errorf("runspec: base model %s@%s from the hub: %w", name, revision, err)
	}
	return dir, nil
}

// BaseModelDir resolves cfg's base_model.
func (r Resolver) BaseModelDir(ctx context.Context, cfg *config.Config, workDir string) (string, error) {
	return r.ModelDir(ctx, cfg.BaseModel, cfg.RevisionOfModel, workDir)
}

// TokenizerDir resolves the directory the run's tokenizer comes from:
// tokenizer_config when it names another model than base_model, else the
// base model's directory.
func (r Resolver) TokenizerDir(ctx context.Context, cfg *config.Config, workDir, baseDir string) (string, error) {
	if cfg.TokenizerConfig == "" || cfg.TokenizerConfig == cfg.BaseModel {
		return baseDir, nil
	}
	return r.ModelDir(ctx, cfg.TokenizerConfig, "", workDir)
}

// Built is a run's model, ready to train or evaluate.
type Built struct {
	Model *model.Model
	// Adapter is the LoRA config of an adapter run, nil for a full fine-tune.
	Adapter *peft.Config
	// BaseDir is the base model's directory.
	BaseDir string
}

// Quantization is the 4-bit format cfg holds its base weights in, nil for
// none. As in Axolotl, only adapter: qlora (which requires load_in_4bit)
// quantizes, with its BitsAndBytesConfig: NF4, blocks of 64, double
// quantization; adapter: lora with load_in_4bit trains over unquantized
// weights there, and so it does here.
func Quantization(cfg *config.Config) *quant.Options {
	if cfg.Adapter != "qlora" || !cfg.LoadIn4bit {
		return nil
	}
	o := quant.QLoRA()
	return &o
}

// LoadOptions is how a model of cfg's run holds its base weights: in NF4
// for QLoRA. Whatever loads the base for a run (training, evaluation,
// inference on an adapter) should load it so, as Axolotl evaluates a QLoRA
// adapter on the 4-bit base it trains on.
func LoadOptions(cfg *config.Config) model.Options {
	return model.Options{Quantize4bit: Quantization(cfg)}
}

// Build loads the base model in baseDir onto be and sets it up as cfg
// trains it: a fresh LoRA adapter (seeded with cfg.seed), the adapter in
// lora_model_dir to continue training, or every weight trainable for a full
// fine-tune. For QLoRA the decoder's linear weights are loaded in NF4
// (Quantization).
func (r Resolver) Build(cfg *config.Config, baseDir, workDir string, be backend.Backend) (*Built, error) {
	m, err := model.LoadWith(baseDir, be, LoadOptions(cfg))
	if err != nil {
		return nil, err
	}
	m.GradientCheckpointing = cfg.GradientCheckpointing
	b := &Built{Model: m, BaseDir: baseDir}
	if cfg.Adapter == "" {
		for _, p := range m.Params() {
			m.SetTrainable(p, true)
		}
		return b, nil
	}
	if cfg.LoraModelDir != "" {
		dir := LocalPath(cfg.LoraModelDir, workDir)
		if b.Adapter, err = lora.Load(m, dir); err != nil {
			return nil, fmt.Errorf("lora_model_dir: %w", err)
		}
		return b, nil
	}
	if b.Adapter, err = PeftConfig(cfg); err != nil {
		return nil, err
	}
	if err := lora.Attach(m, b.Adapter, uint64(cfg.Seed)); err != nil {
		return nil, err
	}
	return b, nil
}

// CopyModelFiles lists the files of dir (config, generation config,
// tokenizer) that exist, for a full checkpoint or an output folder.
func CopyModelFiles(dir string, names ...string) []string {
	var out []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// WeightsDType is the dtype of the floating-point weights of the model in
// dir (F32, BF16 or F16; another float type counts as F32). A model saved
// from one loaded from dir keeps it, as transformers keeps the dtype a
// model was loaded in: the merged model, and a full fine-tune's output
// (its checkpoints stay float32, so resuming is exact).
func WeightsDType(dir string) (safetensors.DType, error) {
	src, err := safetensors.OpenModel(dir, "model")
	if err != nil {
		return "", err
	}
	defer src.Close()
	for _, name := range src.Names() {
		if info, ok := src.Info(name); ok && info.DType.IsFloat() {
			switch info.DType {
			case safetensors.F32, safetensors.BF16, safetensors.F16:
				return info.DType, nil
			}
			return safetensors.F32, nil
		}
	}
	return "", fmt.Errorf("runspec: the model in %s has no floating-point weights", dir)
}
