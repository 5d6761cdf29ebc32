package optim

import "testing"

// BenchmarkAdamWStep reports parameters updated per second for a 16M-value
// parameter set (the size of a ~20M-parameter model's trainable weights).
func BenchmarkAdamWStep(b *testing.B) {
	const n = 16 << 20
	params := []*Param{}
	for i := range 16 {
		p := &Param{Name: string(rune('a' + i)), Data: make([]float32, n/16), Grad: make([]float32, n/16)}
		for j := range p.Grad {
			p.Grad[j] = float32(j%7) * 0.01
		}
		params = append(params, p)
	}
	o, _ := NewAdamW(0.9, 0.999, 1e-8, 0.01)
	b.ResetTimer()
	for b.Loop() {
		o.Step(params, 1e-3)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
}

func BenchmarkClipGradNorm(b *testing.B) {
	p := &Param{Name: "g", Data: make([]float32, 16<<20), Grad: make([]float32, 16<<20)}
	for i := range p.Grad {
		p.Grad[i] = 1
	}
	for b.Loop() {
		ClipGradNorm([]*Param{p}, 1e9)
	}
	b.ReportMetric(float64(len(p.Grad))*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mparams/s")
}
