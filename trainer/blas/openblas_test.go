package blas

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestOpenBLASConcurrentCallers multiplies from many goroutines at once, as
// the engine does (its attention calls Sgemm per head on every worker), with
// products large enough to be split between goroutines themselves, and
// checks every result against the float64 reference.
func TestOpenBLASConcurrentCallers(t *testing.T) {
	if library() == nil {
		t.Skipf("OpenBLAS not in use: %v", OpenBLASError())
	}
	shapes := []gemmCase{
		{false, true, 300, 200, 100, 3, 1, 0},  // split along m
		{true, false, 40, 500, 120, 0, 0.5, 1}, // split along n
		{false, false, 33, 17, 65, 1, 1, 0},    // one call
		{true, true, 129, 130, 131, 2, -1, 0.25},
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for it := range 6 {
				tc := shapes[(g+it)%len(shapes)]
				if msg := runCase(tc, Sgemm, r); msg != "" {
					errs <- fmt.Sprintf("goroutine %d, product %d: %s", g, it, msg)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestOpenBLASRunsOneThreadPerCall checks the threading setup: OpenBLAS
// itself runs single-threaded (Sgemm splits work between goroutines), so
// concurrent callers never oversubscribe the cores and no OpenBLAS worker
// spins between calls.
func TestOpenBLASRunsOneThreadPerCall(t *testing.T) {
	lib := library()
	if lib == nil {
		t.Skipf("OpenBLAS not in use: %v", OpenBLASError())
	}
	SetThreads(3)
	defer SetThreads(0)
	got := lib.threads()
	if got == 0 {
		t.Skipf("%s has no openblas_get_num_threads", lib.path)
	}
	if got != 1 {
		t.Fatalf("OpenBLAS runs %d threads per call, want 1", got)
	}
}

// A warm OpenBLAS call allocates nothing (its argument list is pooled with
// its scalars), and the operands it points to stay put and alive: products
// of freshly allocated matrices, while the collector runs beside them, all
// equal the Go kernel's.
func TestOpenBLASCallAllocatesNothing(t *testing.T) {
	lib := library()
	if lib == nil {
		t.Skipf("OpenBLAS not in use: %v", OpenBLASError())
	}
	const m, n, k = 48, 40, 64
	r := rand.New(rand.NewPCG(5, 6))
	a, b, c := randMatrix(r, m*k, 1), randMatrix(r, k*n, 1), make([]float32, m*n)
	if allocs := testing.AllocsPerRun(100, func() { lib.call(false, true, m, n, k, 1, a, k, b, k, 0, c, n) }); allocs != 0 {
		t.Fatalf("an sgemm_ call allocates %v times", allocs)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				runtime.GC()
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	for i := range 300 {
		a, b := randMatrix(r, m*k, 1), randMatrix(r, n*k, 1)
		got, want := make([]float32, m*n), make([]float32, m*n)
		lib.call(false, true, m, n, k, 1, a, k, b, k, 0, got, n)
		goSgemm(false, true, m, n, k, 1, a, k, b, k, 0, want, n)
		for j := range got {
			if d := got[j] - want[j]; d > 1e-4 || d < -1e-4 {
				t.Fatalf("product %d: C[%d] = %g, the Go kernel gives %g", i, j, got[j], want[j])
			}
		}
	}
}

func TestLoadOpenBLASErrors(t *testing.T) {
	dir := t.TempDir()
	notALibrary := filepath.Join(dir, "libopenblas.so.0")
	if err := os.WriteFile(notALibrary, []byte("not an ELF file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"missing file", filepath.Join(dir, "missing.so"), []string{"missing.so"}},
		{"not a library", notALibrary, []string{notALibrary}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EFT_OPENBLAS", tc.path)
			lib, err := loadOpenBLAS()
			if lib != nil || err == nil {
				t.Fatalf("loaded %v from %s", lib, tc.path)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
	// A real shared library without sgemm_: the C library itself.
	if libc := findLibc(); libc != "" {
		t.Run("no sgemm_", func(t *testing.T) {
			t.Setenv("EFT_OPENBLAS", libc)
			lib, err := loadOpenBLAS()
			if lib != nil || err == nil || !strings.Contains(err.Error(), "no sgemm_") || !strings.Contains(err.Error(), libc) {
				t.Fatalf("loading %s: lib %v, error %v; want an error naming the file and sgemm_", libc, lib, err)
			}
		})
	}
}

func findLibc() string {
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6", "/usr/lib/libSystem.B.dylib"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// TestImplementationChoice runs this test binary again with EFT_BLAS=go and
// with EFT_OPENBLAS pointing nowhere: both must fall back to the Go kernel
// and say why, and a plain run must pick OpenBLAS when it is installed and
// leave the environment as it found it.
func TestImplementationChoice(t *testing.T) {
	if os.Getenv("BLAS_REPORT_IMPLEMENTATION") != "" {
		fmt.Printf("implementation=%s\nerror=%v\n", Implementation(), OpenBLASError())
		for _, name := range singleThreadedEnv {
			if v, set := os.LookupEnv(name); set {
				fmt.Printf("left in the environment: %s=%s\n", name, v)
			}
		}
		return
	}
	run := func(env ...string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestImplementationChoice$", "-test.v")
		for _, kv := range os.Environ() {
			if name, _, _ := strings.Cut(kv, "="); !slices.Contains(singleThreadedEnv, name) {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, append(env, "BLAS_REPORT_IMPLEMENTATION=1")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", env, err, out)
		}
		return string(out)
	}
	if out := run("EFT_BLAS=go"); !strings.Contains(out, "implementation=go\n") || !strings.Contains(out, "error=EFT_BLAS=go") {
		t.Errorf("EFT_BLAS=go:\n%s", out)
	}
	missing := filepath.Join(t.TempDir(), "nowhere", "libopenblas.so.0")
	if out := run("EFT_BLAS=", "EFT_OPENBLAS="+missing); !strings.Contains(out, "implementation=go\n") || !strings.Contains(out, missing) {
		t.Errorf("EFT_OPENBLAS=%s:\n%s", missing, out)
	}
	if library() != nil {
		// Loading sets OPENBLAS_NUM_THREADS and friends to 1 for the
		// library's start-up only.
		if out := run("EFT_BLAS=", "EFT_OPENBLAS="); !strings.Contains(out, "implementation=openblas (") || strings.Contains(out, "left in the environment") {
			t.Errorf("default run with OpenBLAS installed:\n%s", out)
		}
	}
}

func TestForceGo(t *testing.T) {
	defer ForceGo(false)
	ForceGo(true)
	if got := Implementation(); got != "go" {
		t.Fatalf("with ForceGo(true), Implementation() = %q, want go", got)
	}
	if OpenBLASError() == nil {
		t.Fatal("with ForceGo(true), OpenBLASError() is nil")
	}
	testSgemm(t, Sgemm)
	// The guarantee ForceGo is for: a row of C is bit-identical whether it
	// is computed alone or inside a taller product.
	r := rand.New(rand.NewPCG(9, 9))
	const m, n, k = 300, 200, 700
	a, b := randMatrix(r, m*k, 1), randMatrix(r, k*n, 1)
	all, row := make([]float32, m*n), make([]float32, n)
	Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, all, n)
	for _, i := range []int{0, 7, 299} {
		Sgemm(false, true, 1, n, k, 1, a[i*k:], k, b, k, 0, row, n)
		if !slices.Equal(row, all[i*n:(i+1)*n]) {
			t.Fatalf("with ForceGo(true), row %d alone differs from row %d of the %d-row product", i, i, m)
		}
	}
	ForceGo(false)
	if library() != nil && !strings.HasPrefix(Implementation(), "openblas (") {
		t.Fatalf("after ForceGo(false), Implementation() = %q, want OpenBLAS back", Implementation())
	}
}
