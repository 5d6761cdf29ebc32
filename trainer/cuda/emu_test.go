package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// emuGPU runs the backend on the CUDA emulator in testdata/emu: the kernel
// sources compiled as host C++ by the system's g++ into a shared library,
// device memory in host memory, cuBLASLt replaced by a plain column-major
// loop with cuBLAS's semantics. What it cannot test: the real driver,
// cuBLASLt, NVRTC's code generation and GPU timing.
type emuGPU struct {
	launchFn, lookup, lastError, mallocFn, freeFn uintptr
	memcpyFn, memset32Fn, gemmFn                  uintptr
	events                                        uintptr
	gemmArgs                                      *[19]int64
}

var emuLock sync.Mutex // the emulator's state is global to the library

// emuLibrary builds (once per source, cached in the temp folder) the
// emulator library for src and returns its path.
func emuLibrary(src string) (string, error) {
	gxx, err := exec.LookPath("g++")
	if err != nil {
		return "", fmt.Errorf("no g++ to build the CUDA emulator: %v", err)
	}
	header, err := os.ReadFile(filepath.Join("testdata", "emu", "emu.h"))
	if err != nil {
		return "", err
	}
	var reg strings.Builder
	reg.WriteString("\nextern \"C\" void* emu_lookup(const char* name) {\n")
	for _, n := range kernelNames(src) {
		fmt.Fprintf(&reg, "    if (!strcmp(name, %q)) return (void*)&emu_thunk<%s>;\n", n, n)
	}
	reg.WriteString("    return 0;\n}\n")
	unit := string(header) + "\n" + src + reg.String()
	sum := sha256.Sum256([]byte(unit))
	dir := filepath.Join(os.TempDir(), "eft-cuda-emu")
	lib := filepath.Join(dir, hex.EncodeToString(sum[:12])+".so")
	if _, err := os.Stat(lib); err == nil {
		return lib, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cpp := lib + fmt.Sprintf(".%d.cpp", os.Getpid())
	if err := os.WriteFile(cpp, []byte(unit), 0o644); err != nil {
		return "", err
	}
	defer os.Remove(cpp)
	tmp := lib + fmt.Sprintf(".%d.tmp", os.Getpid())
	out, err := exec.Command(gxx, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wno-unused-function", "-o", tmp, cpp).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("g++ could not build the kernels for the emulator: %v\n%s", err, out)
	}
	return lib, os.Rename(tmp, lib)
}

func (e *emuGPU) info() deviceInfo {
	return deviceInfo{Name: "CUDA emulator", Major: 9, Minor: 0, SMs: 2, TotalMemory: 1 << 30, Driver: "emu"}
}

func (e *emuGPU) malloc(bytes int) (uintptr, error) {
	p := call(e.mallocFn, uintptr(bytes))
	if p == 0 {
		return 0, fmt.Errorf("emulator: out of memory for %d bytes", bytes)
	}
	return p, nil
}
func (e *emuGPU) free(p uintptr) error                  { call(e.freeFn, p); return nil }
func (e *emuGPU) mallocHost(bytes int) (uintptr, error) { return e.malloc(bytes) }
func (e *emuGPU) freeHost(p uintptr) error              { return e.free(p) }
func (e *emuGPU) htod(dst, src uintptr, bytes int) error {
	call(e.memcpyFn, dst, src, uintptr(bytes))
	return nil
}
func (e *emuGPU) htodPageable(dst uintptr, src unsafe.Pointer, bytes int) error {
	call(e.memcpyFn, dst, uintptr(src), uintptr(bytes))
	return nil
}
func (e *emuGPU) dtoh(dst unsafe.Pointer, src uintptr, bytes int) error {
	call(e.memcpyFn, uintptr(dst), src, uintptr(bytes))
	return nil
}
func (e *emuGPU) dtod(dst, src uintptr, bytes int) error {
	call(e.memcpyFn, dst, src, uintptr(bytes))
	return nil
}
func (e *emuGPU) memset32(dst uintptr, v uint32, n int) error {
	call(e.memset32Fn, dst, uintptr(v), uintptr(n))
	return nil
}

func (e *emuGPU) loadKernels(src string, names []string) (map[string]uintptr, error) {
	lib, err := emuLibrary(src)
	if err != nil {
		return nil, err
	}
	h, err := dlopen(lib)
	if err != nil {
		return nil, err
	}
	for name, p := range map[string]*uintptr{"emu_launch": &e.launchFn, "emu_lookup": &e.lookup, "emu_last_error": &e.lastError,
		"emu_malloc": &e.mallocFn, "emu_free": &e.freeFn, "emu_memcpy": &e.memcpyFn, "emu_memset32": &e.memset32Fn, "emu_gemm": &e.gemmFn} {
		if *p, err = dlsym(h, name); err != nil {
			return nil, err
		}
	}
	fns := map[string]uintptr{}
	for _, n := range names {
		cname := append([]byte(n), 0)
		fn := call(e.lookup, uintptr(unsafe.Pointer(&cname[0])))
		if fn == 0 {
			return nil, fmt.Errorf("emulator: no kernel %s", n)
		}
		fns[n] = fn
	}
	return fns, nil
}

func (e *emuGPU) launch(fn uintptr, grid, block [3]uint32, shmem int, params unsafe.Pointer) error {
	if shmem != 0 {
		return fmt.Errorf("emulator: dynamic shared memory is not emulated")
	}
	emuLock.Lock()
	defer emuLock.Unlock()
	if call(e.launchFn, fn, uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]), uintptr(block[0]), uintptr(block[1]), uintptr(block[2]), uintptr(params)) != 0 {
		return fmt.Errorf("emulator: %s", cString(call(e.lastError)))
	}
	return nil
}

func (e *emuGPU) gemm(g *gemmOp) error {
	b2i := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	if g.k <= 0 || g.lda < 1 || g.ldb < 1 || g.ldc < g.m {
		return fmt.Errorf("emulator: gemm with k=%d lda=%d ldb=%d ldc=%d m=%d", g.k, g.lda, g.ldb, g.ldc, g.m)
	}
	batch := max(g.batch, 1)
	*e.gemmArgs = [19]int64{b2i(g.transA), b2i(g.transB), int64(g.m), int64(g.n), int64(g.k), int64(g.a), int64(g.b), int64(g.c),
		int64(g.lda), int64(g.ldb), int64(g.ldc), int64(batch), int64(g.strideA), int64(g.strideB), int64(g.strideC),
		b2i(g.ab == elemBF16), b2i(g.ct == elemBF16), int64(math.Float32bits(g.alpha)), int64(math.Float32bits(g.beta))}
	call(e.gemmFn, uintptr(unsafe.Pointer(&e.gemmArgs[0])))
	return nil
}

func (e *emuGPU) sync() error { return nil }
func (e *emuGPU) newEvent() (uintptr, error) {
	e.events++
	return e.events, nil
}
func (e *emuGPU) record(uintptr) error                      { return nil }
func (e *emuGPU) waitEvent(uintptr) error                   { return nil }
func (e *emuGPU) elapsed(uintptr, uintptr) (float32, error) { return 0, nil }
func (e *emuGPU) memInfo() (int, int, error)                { return 1 << 30, 1 << 30, nil }

// newEmulated opens a backend on the emulator, skipping the test when it
// cannot be built here.
func newEmulated(t testing.TB, p Precision) *Backend {
	t.Helper()
	if !supported {
		t.Skip("purego cannot load libraries on this platform")
	}
	b, err := open(Options{Precision: p}, func() (gpu, error) { return &emuGPU{gemmArgs: new([19]int64)}, nil })
	if err != nil {
		if strings.Contains(err.Error(), "no g++") {
			t.Skipf("CUDA emulator: %v", err)
		}
		t.Fatalf("CUDA emulator: %v", err)
	}
	b.name = "cuda-emulator"
	t.Cleanup(b.Close)
	return b
}
