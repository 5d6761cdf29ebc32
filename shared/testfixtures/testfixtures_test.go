package testfixtures

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPathFindsTestdata(t *testing.T) {
	cfg := filepath.Join(Path(t, "hf", "llama"), "config.json")
	if _, err := os.Stat(cfg); err != nil {
		t.Fatalf("llama fixture not found through Path: %v", err)
	}
}

func TestParityDirHonoursEnvironment(t *testing.T) {
	t.Setenv("EFT_PARITY_DIR", "/some/where")
	if got := ParityDir(t); got != "/some/where" {
		t.Fatalf("ParityDir = %q, want the EFT_PARITY_DIR value", got)
	}
	t.Setenv("EFT_PARITY_DIR", "")
	if got := ParityDir(t); filepath.Base(got) != "hf" {
		t.Fatalf("ParityDir without EFT_PARITY_DIR = %q, want testdata/hf", got)
	}
}
