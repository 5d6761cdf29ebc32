package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/blas"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/cuda"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/train"
)

func init() { addCommand(newBenchCommand) }

// benchShapes are the model shapes eft bench knows, with random weights:
// no download, the figures depend only on the shape.
var benchShapes = map[string]model.Config{
	"llama-3.2-1b": llamaShape(128256, 2048, 8192, 16, 32, 8, 64, true,
		model.RopeParams{Type: "llama3", Theta: 500000, Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}, 131072),
	"llama-3-8b": llamaShape(128256, 4096, 14336, 32, 32, 8, 128, false, model.RopeParams{Theta: 500000}, 8192),
	// tiny runs in seconds on a CPU (tests, smoke checks).
	"tiny": llamaShape(512, 128, 256, 2, 4, 2, 32, false, model.RopeParams{Theta: 10000}, 2048),
}

func llamaShape(vocab, hidden, inter, layers, heads, kv, headDim int, tied bool, rope model.RopeParams, maxPos int) model.Config {
	return model.Config{Arch: "llama", Vocab: vocab, Hidden: hidden, Intermediate: inter, Layers: layers, Heads: heads,
		KVHeads: kv, HeadDim: headDim, NormEps: 1e-5, Act: backend.SiLU, TieEmbeddings: tied,
		LayerWindow: make([]int, layers), Rope: rope, MaxPositions: maxPos}
}

func shapeNames() string {
	return "llama-3.2-1b, llama-3-8b, tiny"
}

// benchOptions are eft bench's flags.
type benchOptions struct {
	Shape             string
	LoRARank          int
	Full, QLoRA       bool
	Batch, Seq        int
	GradCheckpointing bool
	Device            string
	Precision         string
	Steps, Warmup     int
	LossChunk         int
	JSON              bool
}

// benchResult is what eft bench reports (also as --json).
type benchResult struct {
	Shape             string  `json:"shape"`
	Device            string  `json:"device"`
	Precision         string  `json:"precision"`
	Mode              string  `json:"mode"` // "lora r=16" or "full"
	Params            int     `json:"params"`
	TrainableParams   int     `json:"trainable_params"`
	Batch             int     `json:"batch"`
	Seq               int     `json:"seq"`
	GradCheckpointing bool    `json:"gradient_checkpointing"`
	Steps             int     `json:"steps"`
	StepSeconds       float64 `json:"step_seconds"`     // mean of the timed steps
	MinStepSeconds    float64 `json:"min_step_seconds"` // fastest timed step
	TokensPerSecond   float64 `json:"tokens_per_second"`
	PeakMemoryBytes   int64   `json:"peak_memory_bytes"` // device: allocator's peak reserved; cpu: Go heap in use
	PeakMemoryNote    string  `json:"peak_memory_note"`
	ModelTFLOPsStep   float64 `json:"model_tflops_per_step"`
	AchievedTFLOPs    float64 `json:"achieved_tflops"`
	PeakTFLOPs        float64 `json:"peak_tflops"` // 0 when unknown
	PeakNote          string  `json:"peak_note"`
	MFU               float64 `json:"mfu"` // 0 when the peak is unknown
	FinalLoss         float64 `json:"final_loss"`
}

func newBenchCommand(*globals) *cobra.Command {
	o := benchOptions{}
	cmd := &cobra.Command{
		Use:   "bench [--shape NAME] [--lora-r R | --full] [--batch B] [--seq S] [--device cpu|cuda]",
		Short: "Time training steps of a named model shape with random weights",
		Long: `Builds a model of a named shape (` + shapeNames() + `) with random weights,
attaches LoRA adapters to every linear layer (or trains everything with --full),
and times AdamW training steps on random tokens: tokens/s, step time, peak
memory and MFU (model FLOPs: 6N per token for a full fine-tune, 4N with LoRA,
plus causal attention; recomputation under --grad-checkpointing is not
counted). Nothing is downloaded.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := runBench(o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if o.JSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printBench(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Shape, "shape", "llama-3.2-1b", "model shape: "+shapeNames())
	f.IntVar(&o.LoRARank, "lora-r", 16, "LoRA rank on every linear layer")
	f.BoolVar(&o.Full, "full", false, "train every weight instead of LoRA adapters")
	f.BoolVar(&o.QLoRA, "qlora", false, "hold the base linear layers in NF4 with double quantization (QLoRA), LoRA on top")
	f.IntVar(&o.Batch, "batch", 4, "rows per micro-batch")
	f.IntVar(&o.Seq, "seq", 2048, "tokens per row")
	f.BoolVar(&o.GradCheckpointing, "grad-checkpointing", false, "keep only each layer's input and recompute the layer in the backward pass")
	f.StringVar(&o.Device, "device", "auto", "cpu, cuda, or auto (cuda when a GPU is usable)")
	f.StringVar(&o.Precision, "precision", "bf16", "cuda matrix products: bf16 (bf16 in, fp32 accumulate; frozen weights stored bf16) or fp32")
	f.IntVar(&o.Steps, "steps", 5, "timed optimizer steps")
	f.IntVar(&o.Warmup, "warmup", 2, "untimed steps first (kernel compilation, allocator warm-up)")
	f.IntVar(&o.LossChunk, "loss-chunk", 0, "tokens per loss-head chunk (0: the model's default on cpu, 1024 on cuda)")
	f.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	return cmd
}

func (o *benchOptions) validate() error {
	if _, ok := benchShapes[o.Shape]; !ok {
		return fmt.Errorf("bench: unknown --shape %q (%s)", o.Shape, shapeNames())
	}
	switch {
	case o.Batch <= 0 || o.Seq <= 1:
		return fmt.Errorf("bench: --batch %d and --seq %d must be positive (seq at least 2)", o.Batch, o.Seq)
	case !o.Full && o.LoRARank <= 0:
		return fmt.Errorf("bench: --lora-r %d must be positive (or use --full)", o.LoRARank)
	case o.QLoRA && o.Full:
		return fmt.Errorf("bench: --qlora trains LoRA adapters on a frozen 4-bit base; it cannot go with --full")
	case o.Steps <= 0 || o.Warmup < 0:
		return fmt.Errorf("bench: --steps %d must be positive and --warmup %d not negative", o.Steps, o.Warmup)
	case o.Device != "cpu" && o.Device != "cuda" && o.Device != "auto":
		return fmt.Errorf("bench: --device %q (cpu, cuda or auto)", o.Device)
	case o.Precision != "bf16" && o.Precision != "fp32":
		return fmt.Errorf("bench: --precision %q (bf16 or fp32)", o.Precision)
	}
	return nil
}

// benchBackend opens the device the options name; with auto, cuda when it
// is usable, else cpu (saying why on log).
func benchBackend(o *benchOptions, log io.Writer) (backend.Backend, *cuda.Backend, error) {
	if o.Device == "auto" {
		if err := cuda.Available(); err != nil {
			fmt.Fprintf(log, "bench: no usable GPU, running on the CPU (%v)\n", err)
			o.Device = "cpu"
		} else {
			o.Device = "cuda"
		}
	}
	if o.Device == "cpu" {
		return cpu.New(0), nil, nil
	}
	p := cuda.PrecisionBF16
	if o.Precision == "fp32" {
		p = cuda.PrecisionFP32
	}
	g, err := cuda.New(cuda.Options{Precision: p})
	if err != nil {
		return nil, nil, err
	}
	return g, g, nil
}

func runBench(o benchOptions, log io.Writer) (*benchResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	be, gpu, err := benchBackend(&o, log)
	if err != nil {
		return nil, err
	}
	if gpu != nil {
		defer gpu.Close()
	}
	cfg := benchShapes[o.Shape]
	var mo model.Options
	if o.QLoRA {
		q := quant.QLoRA()
		mo.Quantize4bit = &q
	}
	m, err := model.NewWith(cfg, be, fastRandomWeights(1, 0.02), mo)
	if err != nil {
		return nil, err
	}
	res := &benchResult{Shape: o.Shape, Device: be.Name(), Batch: o.Batch, Seq: o.Seq, GradCheckpointing: o.GradCheckpointing,
		Steps: o.Steps, Params: cfg.ParamCount(), Mode: "full", Precision: "fp32"}
	if o.Full {
		for _, p := range m.Params() {
			m.SetTrainable(p, true)
		}
	} else {
		res.Mode = fmt.Sprintf("lora r=%d", o.LoRARank)
		if o.QLoRA {
			res.Mode = fmt.Sprintf("qlora r=%d (nf4 base)", o.LoRARank)
		}
		targets := []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
		if err := lora.Attach(m, peft.NewConfig(o.LoRARank, float64(2*o.LoRARank), 0, targets), 1); err != nil {
			return nil, err
		}
	}
	for _, p := range m.TrainableParams() {
		res.TrainableParams += p.W.Len()
	}
	m.GradientCheckpointing = o.GradCheckpointing
	m.LossChunkTokens = o.LossChunk
	host, _ := optim.NewAdamW(0.9, 0.999, 1e-8, 0)
	var opt optim.Optimizer = host
	if gpu != nil {
		res.Device = be.Name() + " " + gpu.Device()
		res.Precision = gpu.Precision().String()
		if gpu.Precision() == cuda.PrecisionBF16 {
			gpu.StoreFrozenBF16(m)
		}
		if m.LossChunkTokens == 0 {
			m.LossChunkTokens = 1024
		}
		if opt, err = gpu.Optimizer(host); err != nil {
			return nil, err
		}
	}
	tr, err := train.New(m, opt, 1.0)
	if err != nil {
		return nil, err
	}
	batch := randomBatch(cfg.Vocab, o.Batch, o.Seq, 2)

	sync := func() {}
	if gpu != nil {
		sync = gpu.Synchronize
	}
	var ms runtime.MemStats
	for i := 0; i < o.Warmup; i++ {
		if _, err := tr.Step([]*model.Batch{batch}, 1e-4); err != nil {
			return nil, err
		}
		if i == 0 && gpu != nil {
			gpu.ResetPeakMemory()
		}
	}
	sync()
	if gpu != nil {
		gpu.Profile() // EFT_CUDA_PROFILE: count the timed steps only
	}
	var total time.Duration
	res.MinStepSeconds = math.Inf(1)
	var peakHeap uint64
	for i := 0; i < o.Steps; i++ {
		start := time.Now()
		r, err := tr.Step([]*model.Batch{batch}, 1e-4)
		if err != nil {
			return nil, err
		}
		sync()
		d := time.Since(start)
		total += d
		res.MinStepSeconds = min(res.MinStepSeconds, d.Seconds())
		res.FinalLoss = r.Loss
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
	}
	if gpu != nil {
		if prof := gpu.Profile(); prof != nil {
			cuda.WriteProfile(log, prof, o.Steps)
		}
	}
	tokens := o.Batch * o.Seq
	res.StepSeconds = total.Seconds() / float64(o.Steps)
	res.TokensPerSecond = float64(tokens) / res.StepSeconds
	if gpu != nil {
		mem := gpu.Memory()
		res.PeakMemoryBytes = int64(mem.PeakReserved)
		res.PeakMemoryNote = fmt.Sprintf("device memory held by eft's allocator at its peak (%.1f GiB handed out at peak), after the first step", float64(mem.PeakInUse)/(1<<30))
	} else {
		res.PeakMemoryBytes = int64(peakHeap)
		res.PeakMemoryNote = "Go heap in use at its peak over the timed steps"
	}
	res.ModelTFLOPsStep = modelFLOPs(cfg, o.Batch, o.Seq, o.Full, m) / 1e12
	res.AchievedTFLOPs = res.ModelTFLOPsStep / res.StepSeconds
	if gpu != nil {
		res.PeakTFLOPs, res.PeakNote = gpuPeakTFLOPs(gpu.Device())
	} else {
		pk := blas.MeasurePeak(300 * time.Millisecond)
		res.PeakTFLOPs = pk.GFLOPS / 1000
		res.PeakNote = "float32 GEMM peak measured now: " + pk.String()
	}
	if res.PeakTFLOPs > 0 {
		res.MFU = res.AchievedTFLOPs / res.PeakTFLOPs
	}
	return res, nil
}

// modelFLOPs counts one step's model FLOPs: 2 per weight per token forward,
// 4 backward for a trained weight (input and weight gradients), 2 for a
// frozen one (input gradient only); causal attention's two products,
// 2·(seq/2)·heads·head_dim each per token and layer forward, twice that
// backward. Recomputation (gradient checkpointing) is not model work.
func modelFLOPs(c model.Config, batch, seq int, full bool, m *model.Model) float64 {
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	perLayer := float64(c.Hidden*qd + 2*c.Hidden*kvd + qd*c.Hidden + 3*c.Hidden*c.Intermediate)
	matmul := float64(c.Layers)*perLayer + float64(c.Vocab*c.Hidden) // + the head
	tokens := float64(batch * seq)
	attn := float64(c.Layers) * 2 * float64(seq) * float64(qd) * 3 // fwd 2·seq·qd, bwd twice that
	if full {
		return tokens * (6*matmul + attn)
	}
	lora := 0.0
	for _, p := range m.LoRAParams() {
		lora += float64(p.W.Len())
	}
	return tokens * (4*matmul + 6*lora + attn)
}

// gpuPeakTFLOPs is the dense bf16 tensor-core peak of the named device, from
// NVIDIA's data sheets; 0 when the device is not in the table.
func gpuPeakTFLOPs(device string) (float64, string) {
	for _, g := range []struct {
		name  string
		tflop float64
	}{{"H100 PCIe", 756}, {"H100", 989}, {"H200", 989}, {"H800", 989}, {"A100", 312}, {"L40S", 362}, {"L4", 121}, {"A10G", 70}} {
		if strings.Contains(device, g.name) {
			return g.tflop, fmt.Sprintf("dense bf16 peak of the %s from NVIDIA's data sheet", g.name)
		}
	}
	return 0, "unknown device: no peak to compute MFU against"
}

// fastRandomWeights is model.NewRandom's initialisation (normal-like with
// the given std for matrices, 1 for norm weights, 0 for biases) drawn as a
// uniform of the same std from a counter-based hash on all cores, so an 8B
// model initialises in seconds.
func fastRandomWeights(seed uint64, std float64) model.WeightFunc {
	var tensorIndex uint64
	var mu sync.Mutex
	return func(name string, shape []int) ([]float32, error) {
		v, fixed := model.FixedInit(name, shape)
		if fixed {
			return v, nil
		}
		n := len(v)
		mu.Lock()
		tensorIndex++
		key := seed*0x9e3779b97f4a7c15 + tensorIndex<<40
		mu.Unlock()
		bound := float32(std * math.Sqrt(3))
		workers := runtime.GOMAXPROCS(0)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			lo, hi := w*n/workers, (w+1)*n/workers
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					u := cpu.DropoutUniform(key, uint64(i)) // [0, 1)
					v[i] = (2*u - 1) * bound
				}
			}()
		}
		wg.Wait()
		return v, nil
	}
}

// randomBatch is rows of random tokens whose targets are the next token.
func randomBatch(vocab, rows, cols int, seed uint64) *model.Batch {
	rng := rand.New(rand.NewPCG(seed, 7))
	labels := make([]int32, rows*cols)
	for i := range labels {
		labels[i] = int32(rng.IntN(vocab))
	}
	return &model.Batch{Rows: rows, Cols: cols, Tokens: labels, Targets: model.ShiftLabels(labels, nil, rows, cols)}
}

func printBench(w io.Writer, r *benchResult) {
	gc := ""
	if r.GradCheckpointing {
		gc = ", gradient checkpointing"
	}
	fmt.Fprintf(w, "shape %s (%s params), %s, %s trainable; batch %d × seq %d%s\n",
		r.Shape, count(r.Params), r.Mode, count(r.TrainableParams), r.Batch, r.Seq, gc)
	fmt.Fprintf(w, "device %s, precision %s\n", r.Device, r.Precision)
	fmt.Fprintf(w, "step time      %.3f s (fastest %.3f s, %d steps)\n", r.StepSeconds, r.MinStepSeconds, r.Steps)
	fmt.Fprintf(w, "tokens/s       %.0f\n", r.TokensPerSecond)
	fmt.Fprintf(w, "peak memory    %.2f GiB (%s)\n", float64(r.PeakMemoryBytes)/(1<<30), r.PeakMemoryNote)
	if r.MFU > 0 {
		fmt.Fprintf(w, "MFU            %.1f%% (%s of %s; %s)\n", 100*r.MFU, rate(r.AchievedTFLOPs), rate(r.PeakTFLOPs), r.PeakNote)
	} else {
		fmt.Fprintf(w, "achieved       %s (%s)\n", rate(r.AchievedTFLOPs), r.PeakNote)
	}
	fmt.Fprintf(w, "loss           %.4f\n", r.FinalLoss)
}

func count(n int) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	}
	return fmt.Sprint(n)
}

func rate(tflops float64) string {
	if tflops < 1 {
		return fmt.Sprintf("%.1f GFLOP/s", tflops*1000)
	}
	return fmt.Sprintf("%.1f TFLOP/s", tflops)
}
