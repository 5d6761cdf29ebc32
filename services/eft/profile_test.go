package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EFT_CPUPROFILE writes a pprof CPU profile (gzipped protobuf) of the
// command; an unwritable path fails the command with the variable named.
func TestCPUProfileIsWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	t.Setenv("EFT_CPUPROFILE", path)
	if code := profiled(func() int { return run([]string{"version"}, strings.NewReader(""), io.Discard, io.Discard) }); code != 0 {
		t.Fatalf("exit %d", code)
	}
	data, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
		t.Fatalf("profile %d bytes, %v: want a gzipped pprof profile", len(data), err)
	}
	t.Setenv("EFT_CPUPROFILE", filepath.Join(t.TempDir(), "missing", "cpu.prof"))
	if code := profiled(func() int { return 0 }); code != 1 {
		t.Fatalf("unwritable profile path: exit %d, want 1", code)
	}
}
