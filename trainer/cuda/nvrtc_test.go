package cuda

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"
)

// TestKernelsCompileWithNVRTC compiles every kernel for the architectures
// the GPU machines have (A100: sm_80, H100/H200: sm_90) with whatever NVRTC
// this machine has: Debian's libnvrtc11.2 (NVRTC 11.8) here, CUDA 13's on
// the GPU machines. NVRTC needs no GPU. Without the library the test skips.
func TestKernelsCompileWithNVRTC(t *testing.T) {
	if !supported {
		t.Skip("purego cannot load libraries on this platform")
	}
	nv, err := loadNVRTC()
	if err != nil {
		t.Skipf("no NVRTC here (install libnvrtc11.2 from Debian non-free, or CUDA): %v", err)
	}
	src := kernelSource()
	if len(kernelNames(src)) < 20 {
		t.Fatalf("only %d kernels found in the source", len(kernelNames(src)))
	}
	for _, arch := range []string{"sm_80", "sm_90"} {
		start := time.Now()
		image, err := nv.compile(src, arch)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if !bytes.HasPrefix(image, []byte("\x7fELF")) {
			t.Fatalf("%s: NVRTC %s returned %d bytes that are not a cubin (ELF)", arch, nv.Version(), len(image))
		}
		for _, name := range kernelNames(src) {
			if !bytes.Contains(image, []byte(name)) {
				t.Errorf("%s: kernel %s missing from the cubin", arch, name)
			}
		}
		t.Logf("NVRTC %s (%s): %s cubin of %d bytes in %v", nv.Version(), nv.path, arch, len(image), time.Since(start).Round(time.Millisecond))
	}
}

func TestCompileErrorCarriesTheLog(t *testing.T) {
	if !supported {
		t.Skip("purego cannot load libraries on this platform")
	}
	nv, err := loadNVRTC()
	if err != nil {
		t.Skipf("no NVRTC here: %v", err)
	}
	_, err = nv.compile(`extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }`, "sm_80")
	if err == nil || !regexp.MustCompile(`undefined_name`).MatchString(err.Error()) {
		t.Fatalf("compile error %v does not quote NVRTC's log", err)
	}
}

func TestKernelCacheReusesTheCubin(t *testing.T) {
	if !supported {
		t.Skip("purego cannot load libraries on this platform")
	}
	nv, err := loadNVRTC()
	if err != nil {
		t.Skipf("no NVRTC here: %v", err)
	}
	dir := t.TempDir()
	src := `extern "C" __global__ void one(float* x) { x[threadIdx.x] = 1.0f; }`
	first, err := compileCached(nv, src, "sm_80", dir)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.sm_80.cubin"))
	if len(files) != 1 {
		t.Fatalf("cache holds %v, want one cubin", files)
	}
	// A planted file under the same key is what the next run gets: proof
	// that it reads the cache instead of compiling.
	if err := os.WriteFile(files[0], []byte("cached"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := compileCached(nv, src, "sm_80", dir)
	if err != nil || string(again) != "cached" {
		t.Fatalf("second compile did not come from the cache: %q, %v", again[:min(8, len(again))], err)
	}
	if kernelCacheKey(src, "sm_80", nv.Version()) == kernelCacheKey(src, "sm_90", nv.Version()) ||
		kernelCacheKey(src, "sm_80", "11.8") == kernelCacheKey(src, "sm_80", "13.0") ||
		kernelCacheKey(src, "sm_80", "11.8") == kernelCacheKey(src+" ", "sm_80", "11.8") {
		t.Fatal("cache key ignores the architecture, NVRTC version or source")
	}
	_ = first
}

// TestEveryLaunchedKernelExists checks that each kernel name the Go code
// launches is defined in the embedded sources (a typo would only show at
// run time on a GPU).
func TestEveryLaunchedKernelExists(t *testing.T) {
	names := kernelNames(kernelSource())
	files, _ := filepath.Glob("*.go")
	used := regexp.MustCompile(`kernel\("(\w+)"\)`)
	seen := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllSubmatch(data, -1) {
			seen++
			if !slices.Contains(names, string(m[1])) {
				t.Errorf("%s launches kernel %q, which no kernels/*.cu defines", f, m[1])
			}
		}
	}
	if seen < 20 {
		t.Fatalf("found only %d kernel launches in the Go sources", seen)
	}
}
