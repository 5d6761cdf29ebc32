package cuda

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
)

// TestDeviceAdamWMatchesHost: the device AdamW with clipping folded into
// its update equals optim.ClipGradNorm + optim.AdamW on the host, over
// tensors larger than one chunk, with a decay-exempt one, and its state
// round-trips through the host (resume).
func TestDeviceAdamWMatchesHost(t *testing.T) {
	for _, u := range backendsUnderTest(t, PrecisionFP32) {
		t.Run(u.name, func(t *testing.T) {
			b := u.b
			rng := rand.New(rand.NewPCG(3, 4))
			sizes := map[string]int{"model.layers.0.mlp.up_proj.weight": 2*adamChunk + 77, "model.norm.weight": 300, "lm_head.weight": 5000}
			var host []*optim.Param
			var dev []*model.Param
			for name, n := range sizes {
				w, g := randomVals(rng, n, 1), randomVals(rng, n, 1)
				host = append(host, &optim.Param{Name: name, Data: append([]float32(nil), w...), Grad: append([]float32(nil), g...), NoDecay: optim.DecayExempt(name)})
				p := &model.Param{Name: name, W: b.Alloc(n), G: b.Alloc(n)}
				b.Upload(p.W, w)
				b.Upload(p.G, g)
				dev = append(dev, p)
			}
			ho, _ := optim.NewAdamW(0.9, 0.95, 1e-8, 0.1)
			do, err := b.NewAdamW(0.9, 0.95, 1e-8, 0.1)
			if err != nil {
				t.Fatal(err)
			}
			const maxNorm = 10.0
			for step := 0; step < 3; step++ {
				gotNorm := do.GradNorm(dev)
				wantNorm := optim.ClipGradNorm(host, maxNorm)
				if math.Abs(gotNorm-wantNorm) > 1e-6*wantNorm {
					t.Fatalf("step %d: gradient norm %v, want %v", step, gotNorm, wantNorm)
				}
				scale := float32(1)
				if c := maxNorm / (gotNorm + 1e-6); c < 1 {
					scale = float32(c)
				}
				if err := do.StepDevice(dev, 1e-2, scale); err != nil {
					t.Fatal(err)
				}
				if err := ho.Step(host, 1e-2); err != nil {
					t.Fatal(err)
				}
				// The device kept unclipped gradients; give the host the
				// same ones for the next step.
				for i, p := range dev {
					b.Download(host[i].Grad, p.G)
				}
			}
			for i, p := range dev {
				near(t, "weights of "+p.Name, download(b, p.W), host[i].Data, 1e-6)
			}
			// Resume: state through the host into a fresh optimizer, one
			// more step each, same weights.
			again, _ := b.NewAdamW(0.9, 0.95, 1e-8, 0.1)
			if err := again.LoadState(do.State()); err != nil {
				t.Fatal(err)
			}
			if err := again.StepDevice(dev, 1e-2, 1); err != nil {
				t.Fatal(err)
			}
			ho.Step(host, 1e-2)
			for i, p := range dev {
				near(t, "weights after a resumed step of "+p.Name, download(b, p.W), host[i].Data, 1e-6)
			}
			st := again.State()
			for _, hp := range host {
				want := ho.State().Params[hp.Name]
				got := st.Params[hp.Name]
				if got == nil || got.Step != want.Step {
					t.Fatalf("%s: step %v, want %d", hp.Name, got, want.Step)
				}
				near(t, "exp_avg_sq of "+hp.Name, got.Buffers["exp_avg_sq"], want.Buffers["exp_avg_sq"], 1e-6)
			}
			bad := &model.Param{Name: "x", W: b.allocBF16(4), G: b.Alloc(4)}
			if err := again.StepDevice([]*model.Param{bad}, 1e-2, 1); err == nil {
				t.Fatal("a bf16 parameter was accepted")
			}
		})
	}
}
