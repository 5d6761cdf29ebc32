package model

import (
	"math"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/cpu"
)

func defaultInvFreq(theta float64, dim int) []float64 {
	inv := make([]float64, dim/2)
	for i := range inv {
		inv[i] = math.Pow(theta, -float64(2*i)/float64(dim))
	}
	return inv
}

func closeRel(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Abs(b) }

func TestRopeDefaultAndLinear(t *testing.T) {
	p := RopeParams{Type: "default", Theta: 10000}
	inv, attn := p.InvFreq(64, 2048, 0)
	want := defaultInvFreq(10000, 64)
	if attn != 1 || len(inv) != 32 {
		t.Fatalf("attention factor %v, %d frequencies", attn, len(inv))
	}
	for i := range want {
		if !closeRel(inv[i], want[i]) {
			t.Fatalf("default inv_freq[%d] = %v, want %v", i, inv[i], want[i])
		}
	}
	p = RopeParams{Type: "linear", Theta: 10000, Factor: 4}
	lin, _ := p.InvFreq(64, 2048, 0)
	for i := range want {
		if !closeRel(lin[i], want[i]/4) {
			t.Fatalf("linear inv_freq[%d] = %v, want %v", i, lin[i], want[i]/4)
		}
	}
	p = RopeParams{Theta: 10000, PartialRotary: 0.5}
	if part, _ := p.InvFreq(64, 2048, 0); len(part) != 16 || !closeRel(part[1], math.Pow(10000, -2.0/32)) {
		t.Fatalf("partial rotary: %d frequencies, [1] = %v", len(part), part[1])
	}
}

func TestRopeDynamicNTK(t *testing.T) {
	p := RopeParams{Type: "dynamic", Theta: 10000, Factor: 2}
	short, _ := p.InvFreq(64, 2048, 1000)
	want := defaultInvFreq(10000, 64)
	for i := range want {
		if !closeRel(short[i], want[i]) {
			t.Fatalf("within max positions inv_freq[%d] = %v, want the default %v", i, short[i], want[i])
		}
	}
	long, _ := p.InvFreq(64, 2048, 4096)
	base := 10000 * math.Pow(2*4096.0/2048-1, 64.0/62)
	for i, w := range defaultInvFreq(base, 64) {
		if !closeRel(long[i], w) {
			t.Fatalf("at twice max positions inv_freq[%d] = %v, want %v (base %v)", i, long[i], w, base)
		}
	}
}

// Llama 3.1's scaling (theta 5e5, head_dim 128, factor 8, low/high 1/4,
// original 8192): wavelengths under 2048 keep their frequency (i <= 28),
// those over 8192 are divided by 8 (i >= 35), those in between blend.
func TestRopeLlama3(t *testing.T) {
	p := RopeParams{Type: "llama3", Theta: 500000, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	inv, attn := p.InvFreq(128, 131072, 0)
	def := defaultInvFreq(500000, 128)
	if attn != 1 {
		t.Fatalf("attention factor %v", attn)
	}
	for i := 0; i <= 28; i++ {
		if !closeRel(inv[i], def[i]) {
			t.Fatalf("high-frequency inv_freq[%d] = %v, want unchanged %v", i, inv[i], def[i])
		}
	}
	for i := 35; i < 64; i++ {
		if !closeRel(inv[i], def[i]/8) {
			t.Fatalf("low-frequency inv_freq[%d] = %v, want %v", i, inv[i], def[i]/8)
		}
	}
	for i := 29; i <= 34; i++ {
		if !(inv[i] < def[i] && inv[i] > def[i]/8) {
			t.Fatalf("medium inv_freq[%d] = %v not between %v and %v", i, inv[i], def[i]/8, def[i])
		}
	}
	// i = 32: wavelength 2π·5e5^(1/2); smooth = (8192/wavelength − 1)/3.
	wl := 2 * math.Pi / def[32]
	s := (8192/wl - 1) / 3
	if want := (1-s)*def[32]/8 + s*def[32]; !closeRel(inv[32], want) {
		t.Fatalf("inv_freq[32] = %v, want %v", inv[32], want)
	}
}

// YaRN (theta 1e4, head_dim 64, factor 4, original 2048): the correction
// range is [8, 21]; below it frequencies extrapolate (unchanged), above it
// they interpolate (divided by the factor); cos and sin grow by
// 0.1·ln(4)+1.
func TestRopeYarn(t *testing.T) {
	p := RopeParams{Type: "yarn", Theta: 10000, Factor: 4, OriginalMaxPositions: 2048}
	inv, attn := p.InvFreq(64, 8192, 0)
	if want := 0.1*math.Log(4) + 1; !closeRel(attn, want) {
		t.Fatalf("attention factor %v, want %v", attn, want)
	}
	def := defaultInvFreq(10000, 64)
	for i := 0; i <= 8; i++ {
		if !closeRel(inv[i], def[i]) {
			t.Fatalf("inv_freq[%d] = %v, want extrapolated %v", i, inv[i], def[i])
		}
	}
	for i := 21; i < 32; i++ {
		if !closeRel(inv[i], def[i]/4) {
			t.Fatalf("inv_freq[%d] = %v, want interpolated %v", i, inv[i], def[i]/4)
		}
	}
	ramp := (14.0 - 8) / (21 - 8)
	if want := def[14]/4*ramp + def[14]*(1-ramp); !closeRel(inv[14], want) {
		t.Fatalf("inv_freq[14] = %v, want %v", inv[14], want)
	}
	// Explicit attention_factor wins; mscale/mscale_all_dim give a ratio.
	p.AttentionFactor = 0.7
	if _, a := p.InvFreq(64, 8192, 0); a != 0.7 {
		t.Fatalf("explicit attention factor became %v", a)
	}
	p.AttentionFactor, p.Mscale, p.MscaleAllDim = 0, 1, 0.5
	if _, a := p.InvFreq(64, 8192, 0); !closeRel(a, (0.1*math.Log(4)+1)/(0.05*math.Log(4)+1)) {
		t.Fatalf("mscale ratio %v", a)
	}
}

func TestRopeTableScalesByAttentionFactor(t *testing.T) {
	inv := []float64{1, 0.01}
	cos, sin := make([]float32, 3*2), make([]float32, 3*2)
	ropeTable(inv, 1.5, 3, cos, sin)
	for p := range 3 {
		for i, f := range inv {
			if got, want := float64(cos[p*2+i]), 1.5*math.Cos(float64(p)*f); math.Abs(got-want) > 1e-6 {
				t.Fatalf("cos[%d,%d] = %v, want %v", p, i, got, want)
			}
			if got, want := float64(sin[p*2+i]), 1.5*math.Sin(float64(p)*f); math.Abs(got-want) > 1e-6 {
				t.Fatalf("sin[%d,%d] = %v, want %v", p, i, got, want)
			}
		}
	}
}

// LongRoPE as Phi-3.5-mini sets it (head_dim 96, original 4096, max
// 131072, no factor): inv_freq[i] = 1/(ext[i]·1e4^(2i/96)) with the short
// factors up to 4096 positions and the long ones beyond; cos and sin grow
// by sqrt(1 + ln 32/ln 4096) either way.
func TestRopeLongrope(t *testing.T) {
	short, long := make([]float64, 48), make([]float64, 48)
	for i := range short {
		short[i], long[i] = 1+float64(i)/100, 1+float64(i)
	}
	p := RopeParams{Type: "longrope", Theta: 10000, OriginalMaxPositions: 4096, ShortFactor: short, LongFactor: long}
	if err := p.validate(96); err != nil {
		t.Fatal(err)
	}
	def := defaultInvFreq(10000, 96)
	for _, c := range []struct {
		seqLen int
		ext    []float64
	}{{0, short}, {4096, short}, {4097, long}, {100000, long}} {
		inv, attn := p.InvFreq(96, 131072, c.seqLen)
		if want := math.Sqrt(1 + math.Log(32)/math.Log(4096)); !closeRel(attn, want) || !closeRel(attn, 1.1902380714238083) {
			t.Fatalf("attention factor %v, want %v", attn, want)
		}
		for i := range inv {
			if !closeRel(inv[i], def[i]/c.ext[i]) {
				t.Fatalf("seqLen %d: inv_freq[%d] = %v, want %v", c.seqLen, i, inv[i], def[i]/c.ext[i])
			}
		}
	}
	// An explicit factor or attention_factor wins over the lengths; a
	// factor of at most 1 leaves cos and sin as they are.
	p.Factor = 4
	if _, a := p.InvFreq(96, 131072, 0); !closeRel(a, math.Sqrt(1+math.Log(4)/math.Log(4096))) {
		t.Errorf("factor 4: attention factor %v", a)
	}
	p.AttentionFactor = 1.5
	if _, a := p.InvFreq(96, 131072, 0); a != 1.5 {
		t.Errorf("attention_factor 1.5 became %v", a)
	}
	p.Factor, p.AttentionFactor = 0, 0
	if _, a := p.InvFreq(96, 4096, 0); a != 1 {
		t.Errorf("max = original: attention factor %v", a)
	}
	// Partial rotary: factors for the rotated half only.
	p.PartialRotary = 0.5
	if err := p.validate(96); err == nil || !strings.Contains(err.Error(), "needs 24 short and long factors") {
		t.Errorf("48 factors for 24 frequencies: %v", err)
	}
}

// The rope table follows the batch: short factors while every sequence
// fits the original maximum, long ones once one does not, short again
// after (transformers' longrope_frequency_update).
func TestRopeCacheSwitchesLongrope(t *testing.T) {
	short, long := []float64{1, 1, 1, 1}, []float64{2, 4, 8, 16}
	c := Config{Arch: "phi3", HeadDim: 8, MaxPositions: 64,
		Rope: RopeParams{Type: "longrope", Theta: 10000, OriginalMaxPositions: 16, ShortFactor: short, LongFactor: long}}
	m := &Model{Config: c, Backend: cpu.New(1)}
	freqAt := func(i int) float64 { // the angle of position 1 (row 1 of 4 frequencies) is the frequency
		return math.Atan2(float64(m.rope.table.Sin.F32[4+i]), float64(m.rope.table.Cos.F32[4+i]))
	}
	def := defaultInvFreq(10000, 8)
	for _, step := range []struct {
		need int
		ext  []float64
	}{{10, short}, {16, short}, {17, long}, {40, long}, {12, short}} {
		m.rope.ensure(m, step.need)
		for i := range 4 {
			if got, want := freqAt(i), def[i]/step.ext[i]; math.Abs(got-want) > 1e-6 {
				t.Fatalf("need %d: frequency %d is %v, want %v", step.need, i, got, want)
			}
		}
	}
}

func TestRopeValidation(t *testing.T) {
	for _, p := range []RopeParams{
		{Type: "longrope", Theta: 1e4},
		{Type: "linear", Theta: 1e4},
		{Type: "llama3", Theta: 1e4, Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1},
		{Theta: 0},
	} {
		if err := p.validate(64); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}
