package cuda

import (
	"embed"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

//go:embed kernels/*.cuh kernels/*.cu
var kernelFiles embed.FS

// kernelSource is every kernel in one translation unit: the shared header
// first, then the .cu files in name order. One NVRTC program means one
// compile and one module per device.
func kernelSource() string {
	entries, err := kernelFiles.ReadDir("kernels")
	if err != nil {
		panic(err) // embedded at build time: cannot fail
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Slice(names, func(i, j int) bool {
		hi, hj := strings.HasSuffix(names[i], ".cuh"), strings.HasSuffix(names[j], ".cuh")
		if hi != hj {
			return hi
		}
		return names[i] < names[j]
	})
	var b strings.Builder
	for _, n := range names {
		data, _ := kernelFiles.ReadFile("kernels/" + n)
		fmt.Fprintf(&b, "// ---- %s ----\n%s\n", n, data)
	}
	return b.String()
}

var kernelDecl = regexp.MustCompile(`extern "C" __global__ void (\w+)\(`)

// kernelNames lists the kernels src defines, in order.
func kernelNames(src string) []string {
	var out []string
	for _, m := range kernelDecl.FindAllStringSubmatch(src, -1) {
		out = append(out, m[1])
	}
	return out
}
