package model

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

// A fused 4-bit weight's parts dequantize to exactly the rows of the whole
// matrix's quantization (what bitsandbytes makes of the checkpoint's fused
// tensor): parts starting on a double-quantization group share its codes
// and 8-bit scales, others get their blocks' scales as float32; with
// single-level scales every part shares them.
func TestSplitQuantizedPartsAreRowsOfTheWhole(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name       string
		split      []int
		cols       int
		o          quant.Options
		wantShared bool // parts after the first share the 8-bit scales
	}{
		{"qkv, groups aligned", []int{256, 64, 64}, 256, quant.QLoRA(), true},
		{"qkv of the phi3 fixture", []int{64, 64, 64}, 64, quant.QLoRA(), false},
		{"gate_up, single-level scales", []int{160, 160}, 64, quant.Options{}, false},
		{"fp4, blocks of 128", []int{512, 512}, 128, quant.Options{Type: quant.FP4, BlockSize: 128, DoubleQuant: true}, true},
	}
	for _, c := range cases {
		rows := 0
		for _, n := range c.split {
			rows += n
		}
		vals := make([]float32, rows*c.cols)
		for i := range vals {
			vals[i] = float32(r.NormFloat64())
		}
		q, err := quant.Quantize(vals, rows, c.cols, c.o)
		if err != nil {
			t.Fatal(err)
		}
		whole := make([]float32, len(vals))
		q.Dequantize(whole)
		lin := &Linear{Module: "m.qkv_proj", In: c.cols, Out: rows, Split: c.split,
			W: &Param{W: tensor.OnDevice(tensor.F32, nil, rows, c.cols), Quant: q}}
		if err := lin.splitQuantized(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for p := range c.split {
			r0, r1 := lin.partRows(p)
			part := lin.quantPart(p)
			got := make([]float32, (r1-r0)*c.cols)
			part.Dequantize(got)
			if !slices.Equal(got, whole[r0*c.cols:r1*c.cols]) {
				t.Errorf("%s: part %d (rows %d..%d) dequantizes differently from the whole", c.name, p, r0, r1)
			}
			if shared := part.Absmax == nil; p > 0 && c.o.DoubleQuant && shared != c.wantShared {
				t.Errorf("%s: part %d shares the 8-bit scales: %v, want %v", c.name, p, shared, c.wantShared)
			}
		}
	}
	// A part that starts inside a quantization block cannot be cut out.
	vals := make([]float32, 3*40)
	q, err := quant.Quantize(vals, 3, 40, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lin := &Linear{Module: "m.qkv_proj", In: 40, Out: 3, Split: []int{1, 1, 1}, W: &Param{Quant: q}}
	if err := lin.splitQuantized(); err == nil || !strings.Contains(err.Error(), "m.qkv_proj") || !strings.Contains(err.Error(), "64-element quantization block") {
		t.Errorf("unaligned part: %v", err)
	}
}
