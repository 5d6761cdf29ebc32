//go:build !(linux && (amd64 || arm64))

package cuda

import "errors"

var errUnsupported = errors.New("cuda: loading CUDA libraries without cgo is supported on linux/amd64 and linux/arm64 only")

func dlopen(string) (uintptr, error)         { return 0, errUnsupported }
func dlsym(uintptr, string) (uintptr, error) { return 0, errUnsupported }
func call(uintptr, ...uintptr) uintptr       { panic(errUnsupported) }
func cString(uintptr) string                 { return "" }

const supported = false
