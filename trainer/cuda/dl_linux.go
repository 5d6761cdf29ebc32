//go:build linux && (amd64 || arm64)

package cuda

import (
	"unsafe"

	"github.com/ebitengine/purego"
)

func dlopen(path string) (uintptr, error) {
	return purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
}

func dlsym(handle uintptr, name string) (uintptr, error) { return purego.Dlsym(handle, name) }

// call invokes a C function with integer and pointer arguments. Go pointers
// must appear as uintptr(unsafe.Pointer(p)) in the caller's argument list
// so they stay put while C uses them (this function and SyscallN are
// go:uintptrescapes).
//
//go:uintptrescapes
func call(fn uintptr, args ...uintptr) uintptr {
	r, _, _ := purego.SyscallN(fn, args...)
	return r
}

const supported = true

// cString reads a NUL-terminated C string at p (static library memory).
func cString(p uintptr) string {
	if p == 0 {
		return ""
	}
	base := *(*unsafe.Pointer)(unsafe.Pointer(&p))
	n := 0
	for *(*byte)(unsafe.Add(base, n)) != 0 {
		n++
	}
	return string(unsafe.Slice((*byte)(base), n))
}
