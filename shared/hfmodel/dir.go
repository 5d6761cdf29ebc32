package hfmodel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/eftml/eft/shared/safetensors"
)

// Dir is a Hugging Face model directory as found on disk.
type Dir struct {
	Path   string
	Config *Config

	// Weights is the weights entry point relative to Path:
	// "model.safetensors.index.json", "model.safetensors", or "" when the
	// directory has no safetensors weights.
	Weights string

	// Files present among the tokenizer and generation files transformers
	// writes next to a model (names relative to Path).
	TokenizerFiles   []string
	GenerationConfig string // "generation_config.json" or ""
}

// TokenizerFileNames are the files AutoTokenizer reads, in the order they are
// listed in Dir.TokenizerFiles.
var TokenizerFileNames = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
	"tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
}

// Open inspects a model directory and parses its config.json.
func Open(dir string) (*Dir, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("hfmodel: model directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("hfmodel: %s is not a directory", dir)
	}
	cfgPath := filepath.Join(dir, "config.json")
	if _, err := os.Stat(cfgPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hfmodel: %s has no config.json; is it a Hugging Face model directory?", dir)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	d := &Dir{Path: dir, Config: cfg}
	for _, w := range []string{"model.safetensors.index.json", "model.safetensors"} {
		if exists(filepath.Join(dir, w)) {
			d.Weights = w
			break
		}
	}
	for _, name := range TokenizerFileNames {
		if exists(filepath.Join(dir, name)) {
			d.TokenizerFiles = append(d.TokenizerFiles, name)
		}
	}
	if exists(filepath.Join(dir, "generation_config.json")) {
		d.GenerationConfig = "generation_config.json"
	}
	return d, nil
}

// HasTokenizer reports whether the directory carries a fast tokenizer
// (tokenizer.json), which is what shared/tokenizer reads.
func (d *Dir) HasTokenizer() bool {
	for _, f := range d.TokenizerFiles {
		if f == "tokenizer.json" {
			return true
		}
	}
	return false
}

// OpenWeights opens the safetensors weights and checks them against the
// config (names, shapes, float dtypes).
func (d *Dir) OpenWeights() (safetensors.Source, error) {
	if d.Weights == "" {
		hint := ""
		for _, legacy := range []string{"pytorch_model.bin", "pytorch_model.bin.index.json"} {
			if exists(filepath.Join(d.Path, legacy)) {
				hint = fmt.Sprintf(" (it has %s: PyTorch pickles are not read; convert them to safetensors)", legacy)
			}
		}
		return nil, fmt.Errorf("hfmodel: %s has neither model.safetensors nor model.safetensors.index.json%s", d.Path, hint)
	}
	src, err := safetensors.OpenModel(d.Path, "model")
	if err != nil {
		return nil, err
	}
	if err := d.Config.CheckWeights(src); err != nil {
		src.Close()
		return nil, err
	}
	return src, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
