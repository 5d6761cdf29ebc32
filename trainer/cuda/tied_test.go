package cuda

import (
	"path/filepath"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/internal/paritytest"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/tensor"
)

// modules_to_save on a tied model (trainer/lora's tieOrUntie) on CUDA: the
// untied lm_head or embed_tokens copy gets the CPU's gradient (through the
// loss head's product or the embedding scatter-add) and trains with the
// device's AdamW while the other weight stays frozen, in bf16 under
// StoreFrozenBF16; with ensure_weight_tying the one weight takes both
// gradients. Gradients within the fixtures' tolerances of the CPU's, loss
// curves as lossCurveMatchesCPU's.
func TestTiedModulesToSaveMatchesCPU(t *testing.T) {
	cases := []struct {
		name   string
		saved  []string
		ensure bool
	}{
		{"lm_head", []string{"lm_head"}, false},
		{"embed_tokens", []string{"embed_tokens"}, false},
		{"both ensure_weight_tying", []string{"embed_tokens", "lm_head"}, true},
	}
	dir := filepath.Join(testfixtures.ParityDir(t), "qwen2")
	ref := paritytest.OpenReference(t, dir)
	batch := ref.Batch()
	n := 0
	for _, tg := range batch.Targets {
		if tg >= 0 {
			n++
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			adapter := func() *peft.Config {
				cfg := peft.NewConfig(8, 16, 0.1, []string{"q_proj", "v_proj"})
				cfg.ModulesToSave, cfg.EnsureWeightTying = append([]string(nil), c.saved...), c.ensure
				return cfg
			}
			// The copies' gradients, from one forward and backward pass
			// (dropout 0.1 draws the same masks from the batch's seed).
			grads := func(t *testing.T, m *model.Model) [][]float32 {
				if err := lora.Attach(m, adapter(), 42); err != nil {
					t.Fatal(err)
				}
				if g, ok := m.Backend.(*Backend); ok && g.Precision() == PrecisionBF16 {
					g.StoreFrozenBF16(m)
				}
				if _, _, err := m.ForwardBackward(batch, 1/float32(n)); err != nil {
					t.Fatal(err)
				}
				var out [][]float32
				copies := []*model.Param{m.Embed}
				if !m.HeadTied() {
					copies = append(copies, m.LMHead)
				}
				for _, p := range copies {
					if p.Trainable() {
						g := make([]float32, p.G.Len())
						m.Backend.Download(g, p.G)
						out = append(out, g)
					}
				}
				return out
			}
			host, err := model.Load(dir, cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			want := grads(t, host)
			for _, p := range []Precision{PrecisionFP32, PrecisionBF16} {
				for _, u := range backendsUnderTest(t, p) {
					m, err := model.Load(dir, u.b)
					if err != nil {
						t.Fatal(err)
					}
					got := grads(t, m)
					if len(got) != len(want) {
						t.Fatalf("%s %s: %d trainable copies, %d on the CPU", p, u.name, len(got), len(want))
					}
					for i := range want {
						d := paritytest.Compare(t, p.String()+" "+u.name+" gradient", got[i], want[i], fixtureTols[p].grad, true)
						t.Logf("%s %s: gradient %d within %.2g of max of the CPU's", p, u.name, i, d)
					}
				}
			}

			lossCurveMatchesCPU(t, "qwen2", adapter, model.Options{}, func(t *testing.T, p Precision, host, dev *model.Model) {
				if dev.HeadTied() != c.ensure {
					t.Fatalf("head tied %v on the device", dev.HeadTied())
				}
				for _, pair := range [][2]*model.Param{{host.Embed, dev.Embed}, {host.LMHead, dev.LMHead}} {
					h, d := pair[0], pair[1]
					switch {
					case d.Trainable() != h.Trainable():
						t.Errorf("%s trains %v on the device, %v on the CPU", d.Name, d.Trainable(), h.Trainable())
					case d.Trainable() && d.W.DType != tensor.F32:
						t.Errorf("trained %s is %v on the device", d.Name, d.W.DType)
					case !d.Trainable() && p == PrecisionBF16 && d.W.DType != tensor.BF16:
						t.Errorf("frozen %s is %v after StoreFrozenBF16", d.Name, d.W.DType)
					}
				}
			})
		})
	}
}
