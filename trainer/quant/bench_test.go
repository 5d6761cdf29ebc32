package quant

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkQuantize is the load-time cost of 4-bit quantization on one
// 4096×4096 weight (Llama-3-8B's attention projections), in weights/s.
func BenchmarkQuantize(b *testing.B) {
	vals := normals(rand.New(rand.NewPCG(1, 1)), 4096*4096, 0.02)
	for _, o := range []struct {
		name string
		o    Options
	}{{"nf4", Options{}}, {"nf4-double", QLoRA()}, {"fp4", Options{Type: FP4}}} {
		b.Run(o.name, func(b *testing.B) {
			for range b.N {
				if _, err := Quantize(vals, 4096, 4096, o.o); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(vals))*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mweights/s")
		})
	}
}

// BenchmarkDequantizeRows is the per-product cost of the CPU's 4-bit
// matmul: one 1 MiB tile (64 rows of 4096) dequantized on one core.
func BenchmarkDequantizeRows(b *testing.B) {
	vals := normals(rand.New(rand.NewPCG(1, 1)), 4096*4096, 0.02)
	for _, o := range []struct {
		name string
		o    Options
	}{{"nf4", Options{}}, {"nf4-double", QLoRA()}} {
		m, err := Quantize(vals, 4096, 4096, o.o)
		if err != nil {
			b.Fatal(err)
		}
		tile := make([]float32, 64*4096)
		b.Run(o.name, func(b *testing.B) {
			for i := range b.N {
				r0 := (i * 64) % 4096
				m.DequantizeRows(tile, r0, r0+64)
			}
			b.ReportMetric(float64(len(tile))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gweights/s")
		})
	}
}
