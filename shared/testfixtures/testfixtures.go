// Package testfixtures finds the repository's testdata/ folder from any test,
// whatever module or package the test runs in. Tests never read ../shared:
// what they need is copied under testdata/.
package testfixtures

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// Root returns the repository root: the nearest directory above the working
// directory that holds go.work. It fails the test when there is none.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testfixtures: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testfixtures: no go.work above the working directory")
		}
		dir = parent
	}
}

// Path returns root/testdata/<parts...>.
func Path(t testing.TB, parts ...string) string {
	t.Helper()
	return filepath.Join(append([]string{Root(t), "testdata"}, parts...)...)
}

// ReadGzip returns the decompressed bytes of a gzipped file (big fixtures
// are committed gzipped), failing the test on any error.
func ReadGzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

// ParityDir is the directory of Hugging Face model and adapter fixtures that
// parity tests run through: $EFT_PARITY_DIR when set, else testdata/hf.
func ParityDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("EFT_PARITY_DIR"); dir != "" {
		return dir
	}
	return Path(t, "hf")
}
