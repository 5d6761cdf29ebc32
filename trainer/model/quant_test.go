package model_test

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/quant"
)

// roundTripped loads dir in float32 with every decoder linear weight
// replaced by its NF4 round trip (quantized, then dequantized): the model a
// 4-bit load must compute exactly.
func roundTripped(t *testing.T, dir string, o quant.Options) *model.Model {
	t.Helper()
	m := loadOrSkip(t, dir)
	for i := range m.Layers {
		for _, lin := range m.Layers[i].Linears() {
			q, err := quant.Quantize(lin.W.W.F32, lin.Out, lin.In, o)
			if err != nil {
				t.Fatal(err)
			}
			q.Dequantize(lin.W.W.F32)
		}
	}
	return m
}

// TestQuantizedModelIsItsDequantizedWeights: a model loaded in 4 bits gives
// the logits, loss and gradients (LoRA on every linear with non-zero B, and
// the embeddings through modules_to_save, so input gradients flow through
// every quantized layer) of the same model run in float32 with the
// dequantized weights, on every fixture architecture; phi3's fused weights
// are quantized whole, as bitsandbytes quantizes the checkpoint's tensors.
func TestQuantizedModelIsItsDequantizedWeights(t *testing.T) {
	for _, name := range []string{"llama", "qwen2", "qwen3", "mistral", "phi3"} {
		t.Run(name, func(t *testing.T) {
			dir := testfixtures.Path(t, "hf", name)
			o := quant.QLoRA()
			q, err := model.LoadWith(dir, cpu.New(0), model.Options{Quantize4bit: &o})
			if err != nil {
				t.Fatal(err)
			}
			ref := roundTripped(t, dir, o)

			var quantized, f32Bytes, qBytes int
			for _, p := range q.Params() {
				isLinear := strings.Contains(p.Name, "_proj.weight")
				if p.Quantized() != isLinear {
					t.Errorf("%s: quantized %v", p.Name, p.Quantized())
				}
				if p.Quantized() {
					quantized++
					qBytes += p.Quant.Bytes()
					f32Bytes += 4 * p.W.Len()
				}
			}
			perLayer := len(q.Layers[0].Linears()) // 7, or phi3's 4 with qkv_proj and gate_up_proj fused
			if want := perLayer * len(q.Layers); quantized != want {
				t.Errorf("%d quantized weights, want %d (%d per layer)", quantized, want, perLayer)
			}
			t.Logf("decoder linears: %d bytes in float32, %d in NF4 (%.3f bytes a weight)", f32Bytes, qBytes, 4*float64(qBytes)/float64(f32Bytes))

			b := fixtureBatch(q.Config.Vocab)
			lq, err := q.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			lr, err := ref.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := maxAbsDiff(lq, lr); d > 1e-5 {
				t.Errorf("logits differ from the dequantized model's by %.3g (tolerance 1e-5)", d)
			}

			cfg := peft.NewConfig(4, 8, 0, nil)
			cfg.TargetRegex = peft.AllLinear
			cfg.InitLoraWeights = false // B non-zero: the adapter changes the output
			cfg.ModulesToSave = []string{"embed_tokens"}
			for _, m := range []*model.Model{q, ref} {
				if err := lora.Attach(m, cfg, 7); err != nil {
					t.Fatal(err)
				}
				m.ZeroGrads()
			}
			sq, nq, err := q.ForwardBackward(b, 1)
			if err != nil {
				t.Fatal(err)
			}
			sr, nr, err := ref.ForwardBackward(b, 1)
			if err != nil {
				t.Fatal(err)
			}
			if nq != nr || math.Abs(sq-sr)/float64(nr) > 1e-5 {
				t.Errorf("loss %.7f over %d tokens, dequantized model %.7f over %d", sq/float64(nq), nq, sr/float64(nr), nr)
			}
			gq, gr := q.TrainableParams(), ref.TrainableParams()
			if len(gq) != len(gr) || len(gq) != 2*perLayer*len(q.Layers)+1 {
				t.Fatalf("%d and %d trainable tensors", len(gq), len(gr))
			}
			for i := range gq {
				scale := maxAbs(gr[i].G.F32)
				if d, _ := maxAbsDiff(gq[i].G.F32, gr[i].G.F32); d > 1e-5*scale || scale == 0 {
					t.Errorf("gradient of %s differs by %.3g (largest %.3g)", gq[i].Name, d, scale)
				}
			}
		})
	}
}

// fixtureBatch is two rows of 12 tokens with next-token targets.
func fixtureBatch(vocab int) *model.Batch {
	r := rand.New(rand.NewPCG(4, 4))
	b := &model.Batch{Rows: 2, Cols: 12, Tokens: make([]int32, 24)}
	for i := range b.Tokens {
		b.Tokens[i] = int32(r.IntN(vocab))
	}
	b.Targets = model.ShiftLabels(b.Tokens, nil, 2, 12)
	return b
}

// TestQuantizedStateDictIsDequantized: saving a 4-bit model writes the
// dequantized weights under their usual names.
func TestQuantizedStateDictIsDequantized(t *testing.T) {
	dir := testfixtures.Path(t, "hf", "llama")
	o := quant.Options{}
	q, err := model.LoadWith(dir, cpu.New(0), model.Options{Quantize4bit: &o})
	if err != nil {
		t.Fatal(err)
	}
	ref := roundTripped(t, dir, o)
	sq, err := q.StateDict(safetensors.F32)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := ref.StateDict(safetensors.F32)
	if err != nil {
		t.Fatal(err)
	}
	if len(sq) != len(sr) {
		t.Fatalf("%d tensors, want %d", len(sq), len(sr))
	}
	for i := range sq {
		a, err := sq[i].Tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		b, err := sr[i].Tensor.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := maxAbsDiff(a, b); sq[i].Name != sr[i].Name || d != 0 {
			t.Errorf("%s differs from %s", sq[i].Name, sr[i].Name)
		}
	}
}

// plainBackend is the CPU backend without its 4-bit product.
type plainBackend struct{ backend.Backend }

func (plainBackend) Name() string { return "plain" }

func TestLoadIn4bitRejects(t *testing.T) {
	dir := testfixtures.Path(t, "hf", "llama")
	bad := quant.Options{BlockSize: 48}
	if _, err := model.LoadWith(dir, cpu.New(0), model.Options{Quantize4bit: &bad}); err == nil || !strings.Contains(err.Error(), "load_in_4bit: quant: block size 48") {
		t.Errorf("block size 48: %v", err)
	}
	o := quant.QLoRA()
	if _, err := model.LoadWith(dir, plainBackend{cpu.New(0)}, model.Options{Quantize4bit: &o}); err == nil || !strings.Contains(err.Error(), "the plain backend cannot multiply by 4-bit weights") {
		t.Errorf("a backend without MatMulQuant: %v", err)
	}
	m, err := model.LoadWith(dir, cpu.New(0), model.Options{Quantize4bit: &o})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "model.layers.0.self_attn.q_proj.weight is held 4-bit quantized") {
			t.Errorf("training a quantized weight: %v", r)
		}
	}()
	m.SetTrainable(m.Layers[0].QKV[0].W, true)
	t.Error("no panic")
}

// TestQuantizedModelHoldsNoFloatCopy: after a 4-bit load the heap holds
// the codes and scales of the linear weights, not their float32 values.
func TestQuantizedModelHoldsNoFloatCopy(t *testing.T) {
	c := model.Config{
		Arch: "llama", Vocab: 256, Hidden: 256, Intermediate: 768, Layers: 4, Heads: 4, KVHeads: 2, HeadDim: 64,
		NormEps: 1e-5, Act: backend.SiLU, LayerWindow: make([]int, 4), MaxPositions: 64,
		Rope: model.RopeParams{Type: "default", Theta: 10000},
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	o := quant.QLoRA()
	before := heap()
	q, err := model.NewWith(c, cpu.New(0), model.RandomWeights(1, 0.02), model.Options{Quantize4bit: &o})
	if err != nil {
		t.Fatal(err)
	}
	held := int64(heap()) - int64(before)
	var quantBytes, floatBytes int64
	for _, p := range q.Params() {
		if p.Quantized() {
			quantBytes += int64(p.Quant.Bytes())
		} else {
			floatBytes += 4 * int64(p.W.Len())
		}
	}
	linearFloats := 4 * int64(4*(256*256*2+256*128*2+3*256*768))
	t.Logf("heap %d bytes: %d of 4-bit linears (%d as float32), %d of float32 embeddings, head and norms", held, quantBytes, linearFloats, floatBytes)
	if held > quantBytes+floatBytes+1<<20 {
		t.Errorf("the 4-bit model holds %d bytes of heap; its weights need %d: a float copy stayed", held, quantBytes+floatBytes)
	}
	runtime.KeepAlive(q)
}
