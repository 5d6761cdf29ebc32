package tokenizer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/hub"
)

// tokenizerFileNames are the files a tokenizer is loaded from (the JSON
// may be gzipped), and the ones fetched from a hub repo.
var tokenizerFileNames = []string{"tokenizer.json", "tokenizer.json.gz", "tokenizer_config.json"}

var repoID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$`)

// TokenizerSource finds the folder a run's tokenizer is read from.
type TokenizerSource struct {
	// Hub fetches tokenizers of hub repo ids; nil means hub.NewFromEnv().
	Hub *hub.Client
}

// Dir returns the local folder holding cfg's tokenizer (tokenizer_config,
// which defaults to the base model): a folder (relative to workDir) or a hub
// repo id, of which only the tokenizer files are fetched.
func (s TokenizerSource) Dir(ctx context.Context, cfg *config.Config, workDir string) (string, error) {
	name := cfg.TokenizerConfig
	if name == "" {
		name = cfg.BaseModel
	}
	local := name
	if !filepath.IsAbs(local) && workDir != "" {
		local = filepath.Join(workDir, local)
	}
	if info, err := os.Stat(local); err == nil {
		if !info.IsDir() {
			return "", fmt.Errorf("tokenizer %s is a file; give the folder holding tokenizer.json", local)
		}
		if len(tokenizerFiles(local)) == 0 || !hasTokenizerJSON(local) {
			return "", fmt.Errorf("tokenizer folder %s has no tokenizer.json (eft reads Hugging Face fast tokenizers only)", local)
		}
		return local, nil
	}
	if filepath.IsAbs(name) || strings.HasPrefix(name, ".") || !repoID.MatchString(name) {
		return "", fmt.Errorf("tokenizer %s: no such folder, and not a hub repo id (owner/name)", local)
	}
	client := s.Hub
	if client == nil {
		client = hub.NewFromEnv()
	}
	revision := "main"
	if name == cfg.BaseModel && cfg.RevisionOfModel != "" {
		revision = cfg.RevisionOfModel
	}
	dir, err := client.Snapshot(ctx, hub.Model, name, revision, func(f string) bool { return slices.Contains(tokenizerFileNames, f) })
	if err != nil {
		return "", fmt.Errorf("tokenizer %s@%s from the hub: %w", name, revision, err)
	}
	if !hasTokenizerJSON(dir) {
		return "", fmt.Errorf("hub repo %s@%s has no tokenizer.json (eft reads Hugging Face fast tokenizers only)", name, revision)
	}
	return dir, nil
}

func hasTokenizerJSON(dir string) bool {
	for _, n := range []string{"tokenizer.json", "tokenizer.json.gz"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// tokenizerFiles lists the tokenizer files present in dir, in a fixed order.
func tokenizerFiles(dir string) []string {
	var out []string
	for _, n := range tokenizerFileNames {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// fileDigest is the SHA-256 of a file, hex.
func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
