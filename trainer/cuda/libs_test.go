package cuda

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCandidatesPreferNewestAndSkipLookalikes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"libnvrtc.so.11.2", "libnvrtc.so.12", "libnvrtc.so.13.0.48", "libnvrtc-builtins.so.13.0", "libnvrtc.so", "libnvrtc.so.12.alt", "libcublasLt.so.12"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := libNVRTC.candidates([]string{dir, filepath.Join(dir, "missing")})
	want := []string{"libnvrtc.so.13.0.48", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"}
	for i, w := range want {
		if filepath.Base(got[i]) != w {
			t.Fatalf("candidates %v, want %v first", got, want)
		}
	}
	// After the folder's files come the bare sonames for the loader.
	if rest := got[len(want):]; !slices.Equal(rest, libNVRTC.sonames) {
		t.Fatalf("then %v, want the sonames %v", rest, libNVRTC.sonames)
	}
}

func TestOverrideFolderComesFirstAndStubsAreSkipped(t *testing.T) {
	t.Setenv(envLibDir, "/opt/mine/lib"+string(os.PathListSeparator)+"/usr/local/cuda/lib64/stubs")
	t.Setenv("LD_LIBRARY_PATH", "/from/ld/path")
	dirs := searchDirs()
	if dirs[0] != "/opt/mine/lib" || dirs[1] != "/from/ld/path" {
		t.Fatalf("search starts %v, want the override then LD_LIBRARY_PATH", dirs[:2])
	}
	for _, d := range dirs {
		if strings.Contains(d, "/stubs") {
			t.Fatalf("stub folder %s searched: its libcuda says there is no driver", d)
		}
	}
}

func TestMissingLibraryErrorSaysWhatAndHow(t *testing.T) {
	if !supported {
		t.Skip("purego cannot load libraries on this platform")
	}
	dir := t.TempDir()
	// A name no machine has, so the real cuBLASLt on a GPU machine cannot
	// stand in for the broken file.
	fake := filepath.Join(dir, "libeftabsent.so.13")
	if err := os.WriteFile(fake, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envLibDir, dir)
	spec := libSpec{what: "cuBLASLt (libeftabsent)", prefix: "libeftabsent.so", sonames: []string{"libeftabsent.so.99"}}
	_, _, err := openLibrary(spec, []string{"cublasLtMatmul"})
	if err == nil {
		t.Fatal("a file that is not a library loaded")
	}
	for _, want := range []string{"cuBLASLt", fake, "libeftabsent.so.99", envLibDir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestParseLdconfig(t *testing.T) {
	out := []byte(`1234 libs found in cache
	libnvrtc.so.12 (libc6,x86-64) => /usr/local/cuda-12.8/targets/x86_64-linux/lib/libnvrtc.so.12
	libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
	libz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
`)
	got := parseLdconfig(out, []string{"libcuda.so", "libnvrtc.so"})
	want := []string{"/usr/local/cuda-12.8/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"}
	if !slices.Equal(got, want) {
		t.Fatalf("folders %v, want %v", got, want)
	}
}

func TestSizeClassesBoundWaste(t *testing.T) {
	for _, n := range []int{1, 511, 513, 1 << 20, 3<<20 + 5, 63 << 20, 64<<20 + 1, 5 << 30} {
		c := sizeClass(n)
		if c < n || float64(c-n) > 0.125*float64(n)+512 && n >= 1<<20 && n < 64<<20 {
			t.Errorf("size class of %d is %d", n, c)
		}
		if n >= 64<<20 && c-n >= 2<<20 {
			t.Errorf("size class of %d wastes %d", n, c-n)
		}
		if sizeClass(c) != c {
			t.Errorf("class %d of %d is not its own class", c, n)
		}
	}
}
