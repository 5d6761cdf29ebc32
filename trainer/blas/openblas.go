//go:build (linux || darwin) && (amd64 || arm64)

package blas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// openBLAS is a loaded BLAS library: the Fortran sgemm_ entry point (every
// argument by pointer, so purego.SyscallN can call it without reflection or
// per-call garbage) and OpenBLAS's thread control when it has one.
type openBLAS struct {
	path       string
	sgemmFn    uintptr
	setThreads uintptr // openblas_set_num_threads, 0 if absent
	getThreads uintptr // openblas_get_num_threads, 0 if absent
	config     string  // openblas_get_config(), "" if absent
}

// sgemmArgs holds the by-reference scalars of one sgemm_ call. Integers are
// stored in 64-bit slots holding values below 2³¹: on these little-endian
// targets a 32-bit-integer (LP64) build reads the low half and a 64-bit
// (ILP64, libopenblas64) build reads the whole slot, so both get the right
// value.
//
// It also holds the call's argument list, so that SyscallN gets an existing
// slice instead of allocating one for its variadic arguments on every call
// (128 B, thousands of times a training step). That is safe because everything
// the list points to is on the heap, where nothing moves, and is held
// alive through this struct until the call returns: the scalars are its
// own fields, and the operands are stored in a, b and c (which also makes
// them escape to the heap).
type sgemmArgs struct {
	transA, transB byte
	_              [6]byte
	m, n, k        int64
	lda, ldb, ldc  int64
	alpha, beta    float32
	a, b, c        unsafe.Pointer
	list           [15]uintptr
}

var sgemmArgsPool = sync.Pool{New: func() any { return new(sgemmArgs) }}

// libraryCandidates lists where to look for OpenBLAS, in order: the
// EFT_OPENBLAS override alone when set, else LD_LIBRARY_PATH, the Debian
// multiarch paths with their alternatives, the usual other prefixes, and
// finally the bare soname for the dynamic loader to resolve.
func libraryCandidates() []string {
	if p := os.Getenv("EFT_OPENBLAS"); p != "" {
		return []string{p}
	}
	names := []string{"libopenblas.so.0", "libopenblas.so"}
	if runtime.GOOS == "darwin" {
		names = []string{"libopenblas.0.dylib", "libopenblas.dylib"}
	}
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	switch runtime.GOOS {
	case "linux":
		multiarch := "/usr/lib/x86_64-linux-gnu"
		if runtime.GOARCH == "arm64" {
			multiarch = "/usr/lib/aarch64-linux-gnu"
		}
		dirs = append(dirs, multiarch,
			multiarch+"/openblas-pthread", multiarch+"/openblas-openmp", multiarch+"/openblas-serial",
			"/usr/lib64", "/usr/lib", "/usr/local/lib", "/opt/OpenBLAS/lib")
	case "darwin":
		dirs = append(dirs, "/opt/homebrew/opt/openblas/lib", "/usr/local/opt/openblas/lib", "/opt/local/lib")
	}
	var out []string
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				out = append(out, p)
			}
		}
	}
	return append(out, names[0])
}

// loadOpenBLAS opens the first candidate that loads, has sgemm_ and computes
// a small product correctly. The error lists why each candidate failed.
func loadOpenBLAS() (*openBLAS, error) {
	var errs []string
	for _, path := range libraryCandidates() {
		lib, err := openLibrary(path)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		return lib, nil
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

func openLibrary(path string) (*openBLAS, error) {
	var restore []string
	for _, name := range singleThreadedEnv {
		if _, set := os.LookupEnv(name); !set {
			os.Setenv(name, "1")
			restore = append(restore, name)
		}
	}
	handle, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	for _, name := range restore {
		os.Unsetenv(name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	lib := &openBLAS{path: path}
	if lib.sgemmFn, err = purego.Dlsym(handle, "sgemm_"); err != nil {
		purego.Dlclose(handle)
		return nil, fmt.Errorf("%s: no sgemm_: %v", path, err)
	}
	lib.setThreads, _ = purego.Dlsym(handle, "openblas_set_num_threads")
	lib.getThreads, _ = purego.Dlsym(handle, "openblas_get_num_threads")
	if getConfig, err := purego.Dlsym(handle, "openblas_get_config"); err == nil {
		var config func() string
		purego.RegisterFunc(&config, getConfig)
		lib.config = strings.TrimSpace(config())
	}
	// Every call runs on one OpenBLAS thread; Sgemm parallelises with
	// goroutines.
	lib.setThreadCount(1)
	if err := lib.selfTest(); err != nil {
		// Leave the library mapped: its initialisation may have started
		// threads, and unloading code under running threads is worse than
		// a few idle megabytes.
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return lib, nil
}

// selfTest multiplies two small matrices with every transpose combination
// and compares with the Go kernel, so a library with an unexpected ABI is
// refused instead of silently computing garbage.
func (l *openBLAS) selfTest() error {
	const m, n, k = 3, 5, 4
	a := make([]float32, m*k)
	b := make([]float32, k*n)
	for i := range a {
		a[i] = float32(i%7) - 2.5
	}
	for i := range b {
		b[i] = float32(i%5)*0.5 - 1
	}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			lda, ldb := k, n
			if tA {
				lda = m
			}
			if tB {
				ldb = k
			}
			got := make([]float32, m*n)
			want := make([]float32, m*n)
			for i := range got {
				got[i] = 1
				want[i] = 1
			}
			l.call(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0.5, got, n)
			goSgemm(tA, tB, m, n, k, 1.5, a, lda, b, ldb, 0.5, want, n)
			for i := range got {
				if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
					return fmt.Errorf("self-test product wrong (transA=%v transB=%v): C[%d] = %g, want %g", tA, tB, i, got[i], want[i])
				}
			}
		}
	}
	return nil
}

// call runs sgemm_ for the row-major product. A row-major matrix is its
// transpose in column-major order, so C = op(A)·op(B) is computed as the
// column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B and A swap places, m and n swap.
func (l *openBLAS) call(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	args := sgemmArgsPool.Get().(*sgemmArgs)
	*args = sgemmArgs{transA: 'N', transB: 'N', m: int64(n), n: int64(m), k: int64(k),
		lda: int64(ldb), ldb: int64(lda), ldc: int64(ldc), alpha: alpha, beta: beta}
	if transB {
		args.transA = 'T'
	}
	if transA {
		args.transB = 'T'
	}
	args.a, args.b, args.c = unsafe.Pointer(unsafe.SliceData(a)), unsafe.Pointer(unsafe.SliceData(b)), unsafe.Pointer(unsafe.SliceData(c))
	// Column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B is the first operand.
	args.list = [15]uintptr{
		uintptr(unsafe.Pointer(&args.transA)), uintptr(unsafe.Pointer(&args.transB)),
		uintptr(unsafe.Pointer(&args.m)), uintptr(unsafe.Pointer(&args.n)), uintptr(unsafe.Pointer(&args.k)),
		uintptr(unsafe.Pointer(&args.alpha)),
		uintptr(args.b), uintptr(unsafe.Pointer(&args.lda)),
		uintptr(args.a), uintptr(unsafe.Pointer(&args.ldb)),
		uintptr(unsafe.Pointer(&args.beta)),
		uintptr(args.c), uintptr(unsafe.Pointer(&args.ldc)),
		1, 1, // hidden Fortran CHARACTER lengths
	}
	purego.SyscallN(l.sgemmFn, args.list[:]...)
	runtime.KeepAlive(args)
	args.a, args.b, args.c = nil, nil, nil // hold no tensor in the pool
	sgemmArgsPool.Put(args)
}

// openBLASMinSplitFlops is the work below which a product is not split
// between goroutines for OpenBLAS.
const openBLASMinSplitFlops = 1 << 22

// sgemm is Sgemm through OpenBLAS: one call, or for enough work, up to
// Threads() calls on goroutines.
func (l *openBLAS) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	flops := 2 * float64(m) * float64(n) * float64(k)
	workers := min(Threads(), max(1, int(flops/openBLASMinSplitFlops)))
	l.callSplit(workers, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// callSplit runs the product as up to workers single-threaded sgemm_
// calls on goroutines, each on its own stripe of C along the longer side
// (each call packs its own operands, a cost of ~1/n or ~1/m of the
// arithmetic). It needs OpenBLAS set to one thread.
func (l *openBLAS) callSplit(workers int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	const unit = 16 // stripes are whole multiples of 16 rows or columns
	splitM := m >= n
	long := n
	if splitM {
		long = m
	}
	workers = min(workers, ceilDiv(long, unit))
	if workers <= 1 {
		l.call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	units := ceilDiv(long, unit)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := units*w/workers*unit, min(units*(w+1)/workers*unit, long)
		wg.Go(func() {
			if splitM {
				aOff := lo * lda
				if transA {
					aOff = lo
				}
				l.call(transA, transB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
				return
			}
			bOff := lo
			if transB {
				bOff = lo * ldb
			}
			l.call(transA, transB, m, hi-lo, k, alpha, a, lda, b[bOff:], ldb, beta, c[lo:], ldc)
		})
	}
	wg.Wait()
}

// threads returns OpenBLAS's thread count, 0 when the library cannot say.
func (l *openBLAS) threads() int {
	if l.getThreads == 0 {
		return 0
	}
	r, _, _ := purego.SyscallN(l.getThreads)
	return int(int32(r))
}

// setThreadCount sets OpenBLAS's thread count when the library allows it.
func (l *openBLAS) setThreadCount(n int) {
	if l.setThreads != 0 {
		purego.SyscallN(l.setThreads, uintptr(n))
	}
}
