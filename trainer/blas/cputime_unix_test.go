//go:build unix

package blas

import "syscall"

// processCPUSeconds is the CPU time this process has used, user and system,
// all threads (OpenBLAS's included).
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) * 1e-9
}
