package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"
)

// nvrtc holds NVRTC's entry points. NVRTC needs no GPU: the kernel sources
// can be compiled (and checked) on any machine that has the library.
type nvrtc struct {
	path         string
	major, minor int

	version, createProgram, compileProgram, destroyProgram uintptr
	getLogSize, getLog, getCubinSize, getCubin, errString  uintptr
}

func loadNVRTC() (*nvrtc, error) {
	h, path, err := openLibrary(libNVRTC, []string{"nvrtcCompileProgram", "nvrtcGetCUBIN"})
	if err != nil {
		return nil, err
	}
	n := &nvrtc{path: path}
	for name, p := range map[string]*uintptr{
		"nvrtcVersion": &n.version, "nvrtcCreateProgram": &n.createProgram, "nvrtcCompileProgram": &n.compileProgram,
		"nvrtcDestroyProgram": &n.destroyProgram, "nvrtcGetProgramLogSize": &n.getLogSize, "nvrtcGetProgramLog": &n.getLog,
		"nvrtcGetCUBINSize": &n.getCubinSize, "nvrtcGetCUBIN": &n.getCubin, "nvrtcGetErrorString": &n.errString,
	} {
		if *p, err = dlsym(h, name); err != nil {
			return nil, fmt.Errorf("cuda: %s has no %s", path, name)
		}
	}
	var major, minor int32
	call(n.version, uintptr(unsafe.Pointer(&major)), uintptr(unsafe.Pointer(&minor)))
	n.major, n.minor = int(major), int(minor)
	return n, nil
}

// Version is "major.minor".
func (n *nvrtc) Version() string { return fmt.Sprintf("%d.%d", n.major, n.minor) }

func (n *nvrtc) check(what string, r uintptr) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("cuda: %s: %s (%d)", what, cString(call(n.errString, r)), r)
}

// nvrtcOptions are the compile options for arch ("sm_90"): real machine code
// for that architecture, C++17, and fused multiply-add (NVRTC's default).
func nvrtcOptions(arch string) []string {
	return []string{"--gpu-architecture=" + arch, "--std=c++17"}
}

// compile builds src for arch and returns the cubin; a compile error carries
// NVRTC's log.
func (n *nvrtc) compile(src, arch string) ([]byte, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	cstr := func(s string) uintptr {
		b := append([]byte(s), 0)
		pin.Pin(&b[0])
		return uintptr(unsafe.Pointer(&b[0]))
	}
	var prog uintptr
	if err := n.check("nvrtcCreateProgram", call(n.createProgram, uintptr(unsafe.Pointer(&prog)), cstr(src), cstr("eft_kernels.cu"), 0, 0, 0)); err != nil {
		return nil, err
	}
	defer call(n.destroyProgram, uintptr(unsafe.Pointer(&prog)))
	opts := nvrtcOptions(arch)
	ptrs := make([]uintptr, len(opts))
	for i, o := range opts {
		ptrs[i] = cstr(o)
	}
	pin.Pin(&ptrs[0])
	compileErr := n.check("nvrtcCompileProgram", call(n.compileProgram, prog, uintptr(len(ptrs)), uintptr(unsafe.Pointer(&ptrs[0]))))
	var logSize uintptr
	call(n.getLogSize, prog, uintptr(unsafe.Pointer(&logSize)))
	log := ""
	if logSize > 1 {
		buf := make([]byte, logSize)
		call(n.getLog, prog, uintptr(unsafe.Pointer(&buf[0])))
		log = strings.TrimRight(string(buf), "\x00\n")
	}
	if compileErr != nil {
		return nil, fmt.Errorf("%w for %s with NVRTC %s (%s):\n%s", compileErr, arch, n.Version(), n.path, log)
	}
	var size uintptr
	if err := n.check("nvrtcGetCUBINSize", call(n.getCubinSize, prog, uintptr(unsafe.Pointer(&size)))); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, fmt.Errorf("cuda: NVRTC %s produced no cubin for %s", n.Version(), arch)
	}
	image := make([]byte, size)
	if err := n.check("nvrtcGetCUBIN", call(n.getCubin, prog, uintptr(unsafe.Pointer(&image[0])))); err != nil {
		return nil, err
	}
	return image, nil
}

// DefaultKernelCache is where compiled kernels are kept between runs:
// $EFT_CUDA_KERNEL_CACHE, else the user cache folder's eft/cuda-kernels.
func DefaultKernelCache() string {
	if d := os.Getenv("EFT_CUDA_KERNEL_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "eft", "cuda-kernels")
	}
	return ""
}

// kernelCacheKey names a cubin by everything that changes it: the source,
// the architecture, the compile options and NVRTC's version.
func kernelCacheKey(src, arch, nvrtcVersion string) string {
	h := sha256.New()
	for _, part := range append([]string{src, arch, nvrtcVersion}, nvrtcOptions(arch)...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// compileCached returns the cubin of src for arch from dir when an earlier
// run left it there, else compiles it and leaves it for the next run. A
// cache that cannot be written only costs the next run a compile.
func compileCached(n *nvrtc, src, arch, dir string) ([]byte, error) {
	var file string
	if dir != "" {
		file = filepath.Join(dir, kernelCacheKey(src, arch, n.Version())+"."+arch+".cubin")
		if image, err := os.ReadFile(file); err == nil && len(image) > 0 {
			return image, nil
		}
	}
	image, err := n.compile(src, arch)
	if err != nil || file == "" {
		return image, err
	}
	// A temporary file of its own, renamed into place: two backends of one
	// process (data-parallel ranks) may compile and write at once.
	if os.MkdirAll(dir, 0o755) == nil {
		if f, err := os.CreateTemp(dir, filepath.Base(file)+".*.tmp"); err == nil {
			_, werr := f.Write(image)
			if cerr := f.Close(); werr == nil && cerr == nil {
				os.Rename(f.Name(), file)
			} else {
				os.Remove(f.Name())
			}
		}
	}
	return image, nil
}
