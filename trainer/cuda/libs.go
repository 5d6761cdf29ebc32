package cuda

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// libSpec names one CUDA library: what it is for messages, and the file
// names it goes by, newest first (a folder may hold several versions).
type libSpec struct {
	what    string
	prefix  string   // "libnvrtc.so": any libnvrtc.so.N[.M] in a folder matches
	sonames []string // bare names for the dynamic loader's own search, newest first
}

var (
	libDriver   = libSpec{what: "the CUDA driver (libcuda)", prefix: "libcuda.so", sonames: []string{"libcuda.so.1", "libcuda.so"}}
	libCublasLt = libSpec{what: "cuBLASLt (libcublasLt)", prefix: "libcublasLt.so", sonames: []string{"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"}}
	libNVRTC    = libSpec{what: "NVRTC (libnvrtc)", prefix: "libnvrtc.so", sonames: []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"}}
)

// envLibDir names folders searched before any other (a list, like PATH).
const envLibDir = "EFT_CUDA_LIB_DIR"

// searchDirs lists the folders to look in, in order: $EFT_CUDA_LIB_DIR,
// $LD_LIBRARY_PATH, the CUDA toolkits under /usr/local (newest first), the
// pip wheels' nvidia/*/lib folders of the usual Python installations, the
// folders ldconfig knows for these libraries, and the driver's usual homes.
// Toolkit "stubs" folders are left out: their libcuda only says no driver.
func searchDirs() []string {
	var dirs []string
	add := func(ds ...string) {
		for _, d := range ds {
			if d == "" || strings.Contains(d, "/stubs") || slices.Contains(dirs, d) {
				continue
			}
			dirs = append(dirs, d)
		}
	}
	add(filepath.SplitList(os.Getenv(envLibDir))...)
	add(filepath.SplitList(os.Getenv("LD_LIBRARY_PATH"))...)
	add("/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda/lib64")
	toolkits, _ := filepath.Glob("/usr/local/cuda-*")
	sortByVersionDesc(toolkits)
	for _, tk := range toolkits {
		add(filepath.Join(tk, "targets/x86_64-linux/lib"), filepath.Join(tk, "lib64"))
	}
	add(pipNvidiaDirs()...)
	add(ldconfigDirs()...)
	add("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/wsl/lib")
	return dirs
}

// pipNvidiaDirs are the lib folders of NVIDIA's pip wheels (nvidia-cublas,
// nvidia-cuda-nvrtc, ...: site-packages/nvidia/<name>/lib) in the active
// virtual environment, user and system Python installations and /opt venvs.
func pipNvidiaDirs() []string {
	var roots []string
	if venv := os.Getenv("VIRTUAL_ENV"); venv != "" {
		roots = append(roots, venv+"/lib/python3*/site-packages")
	}
	if home, err := os.UserHomeDir(); err == nil {
		roots = append(roots, home+"/.local/lib/python3*/site-packages")
	}
	roots = append(roots,
		"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3*/dist-packages", "/usr/lib/python3/dist-packages",
		"/opt/*/.venv/lib/python3*/site-packages", "/opt/*/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages")
	var out []string
	for _, r := range roots {
		found, _ := filepath.Glob(r + "/nvidia/*/lib")
		out = append(out, found...)
	}
	return out
}

// ldconfigDirs are the folders `ldconfig -p` lists for the CUDA libraries.
// A missing or slow ldconfig is no error: the loader still searches its cache
// for bare names last.
func ldconfigDirs() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ldconfig", "-p").Output()
	if err != nil {
		if out, err = exec.CommandContext(ctx, "/sbin/ldconfig", "-p").Output(); err != nil {
			return nil
		}
	}
	return parseLdconfig(out, []string{libDriver.prefix, libCublasLt.prefix, libNVRTC.prefix})
}

// parseLdconfig takes the folders of lines like
// "\tlibnvrtc.so.12 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvrtc.so.12"
// whose library name starts with one of prefixes.
func parseLdconfig(out []byte, prefixes []string) []string {
	var dirs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, " ")
		_, path, ok2 := strings.Cut(rest, "=> ")
		if !ok || !ok2 || !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		if d := filepath.Dir(strings.TrimSpace(path)); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// candidates lists the files to try for spec: in each folder, in order, the
// files named prefix or prefix.N[.M...] (newest version first; "-builtins"
// and other look-alikes excluded), then the bare sonames for the loader.
func (s libSpec) candidates(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		var found []string
		for _, e := range entries {
			n := e.Name()
			if n == s.prefix || (strings.HasPrefix(n, s.prefix+".") && versionSuffix(n[len(s.prefix)+1:]) != nil) {
				found = append(found, filepath.Join(d, n))
			}
		}
		sortByVersionDesc(found)
		out = append(out, found...)
	}
	return append(out, s.sonames...)
}

// versionSuffix parses "12.4.127" into its numbers; nil if it is not one.
func versionSuffix(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil
		}
		v = append(v, n)
	}
	return v
}

// sortByVersionDesc orders paths by the version numbers in their base names
// (libx.so.13 before libx.so.12.8 before libx.so; cuda-13.0 before cuda-12.8).
func sortByVersionDesc(paths []string) {
	version := func(p string) []int {
		var v []int
		for _, f := range strings.FieldsFunc(filepath.Base(p), func(r rune) bool { return r < '0' || r > '9' }) {
			n, _ := strconv.Atoi(f)
			v = append(v, n)
		}
		return v
	}
	slices.SortStableFunc(paths, func(a, b string) int { return slices.Compare(version(b), version(a)) })
}

// openLibrary opens the first candidate of spec that loads and has every
// symbol in need. The error names the library, every file tried and why it
// failed, and how to point eft at the right folder.
func openLibrary(spec libSpec, need []string) (handle uintptr, path string, err error) {
	var tried []string
	for _, c := range spec.candidates(searchDirs()) {
		h, err := dlopen(c)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (%v)", c, err))
			continue
		}
		missing := ""
		for _, sym := range need {
			if _, err := dlsym(h, sym); err != nil {
				missing = sym
				break
			}
		}
		if missing != "" {
			tried = append(tried, fmt.Sprintf("%s (no %s: too old?)", c, missing))
			continue
		}
		return h, c, nil
	}
	return 0, "", fmt.Errorf("cuda: cannot load %s; tried %s. Install it or set %s to the folder that holds %s.*",
		spec.what, strings.Join(tried, ", "), envLibDir, spec.prefix)
}
