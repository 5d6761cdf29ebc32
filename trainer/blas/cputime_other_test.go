//go:build !unix

package blas

// processCPUSeconds is not measured here; benchmarks then omit GFLOP/cpu-s.
func processCPUSeconds() float64 { return 0 }
