package safetensors

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// writeBenchFile writes 16 tensors of 1M values (64 MiB as F32, 32 MiB as
// BF16) and returns its path.
func writeBenchFile(b *testing.B, dtype DType) (string, int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	values := make([]float32, 1<<20)
	for i := range values {
		values[i] = float32(rng.NormFloat64())
	}
	var tensors []NamedTensor
	var size int64
	for i := range 16 {
		tt, err := FromFloat32(dtype, []int{1024, 1024}, values)
		if err != nil {
			b.Fatal(err)
		}
		tensors = append(tensors, NamedTensor{fmt.Sprintf("layers.%d.weight", i), tt})
		size += int64(len(tt.Data))
	}
	path := filepath.Join(b.TempDir(), "bench.safetensors")
	if err := WriteFile(path, tensors, nil); err != nil {
		b.Fatal(err)
	}
	return path, size
}

// BenchmarkLoad opens a file (mmap) and converts every tensor to float32;
// throughput is in bytes of the file's tensor data per second.
func BenchmarkLoad(b *testing.B) {
	for _, dtype := range []DType{F32, BF16, F16} {
		b.Run(string(dtype), func(b *testing.B) {
			path, size := writeBenchFile(b, dtype)
			dst := make([]float32, 1<<20)
			b.SetBytes(size)
			b.ResetTimer()
			for b.Loop() {
				f, err := Open(path)
				if err != nil {
					b.Fatal(err)
				}
				for _, n := range f.Names() {
					tt, _ := f.Tensor(n)
					if err := DecodeFloat32(tt.DType, tt.Data, dst); err != nil {
						b.Fatal(err)
					}
				}
				f.Close()
			}
		})
	}
	b.Run("F32-view", func(b *testing.B) {
		path, size := writeBenchFile(b, F32)
		b.SetBytes(size)
		var sum float32
		for b.Loop() {
			f, err := Open(path)
			if err != nil {
				b.Fatal(err)
			}
			for _, n := range f.Names() {
				tt, _ := f.Tensor(n)
				v, _ := tt.Float32View()
				for i := 0; i < len(v); i += 1024 { // touch every page
					sum += v[i]
				}
			}
			f.Close()
		}
		_ = sum
	})
}

// BenchmarkWrite encodes and atomically writes 64 MiB of F32 tensors.
func BenchmarkWrite(b *testing.B) {
	values := make([]float32, 1<<20)
	var tensors []NamedTensor
	for i := range 16 {
		tt, _ := ViewFloat32([]int{1024, 1024}, values)
		tensors = append(tensors, NamedTensor{fmt.Sprintf("w%d", i), tt})
	}
	path := filepath.Join(b.TempDir(), "w.safetensors")
	b.SetBytes(16 << 22)
	for b.Loop() {
		if err := WriteFile(path, tensors, nil); err != nil {
			b.Fatal(err)
		}
	}
}
