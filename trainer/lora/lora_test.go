package lora_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
)

func loadLlama(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Load(testfixtures.Path(t, "hf", "llama"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func withRegex(re string) *peft.Config {
	c := peft.NewConfig(2, 4, 0, nil)
	c.TargetRegex = re
	return c
}

func withSaved(c *peft.Config, modules ...string) *peft.Config {
	c.ModulesToSave = modules
	return c
}

func TestAttachTargets(t *testing.T) {
	cases := []struct {
		name    string
		cfg     *peft.Config
		adapted int // linears with an adapter (2 layers × 7 linears in the fixture)
		saved   []string
	}{
		{"by name", peft.NewConfig(2, 4, 0, []string{"q_proj", "v_proj"}), 4, nil},
		{"all linear", withRegex(peft.AllLinear), 14, nil},
		{"regex", withRegex(`.*layers\.1\.mlp\.(gate|up)_proj`), 2, nil},
		{"full path", peft.NewConfig(2, 4, 0, []string{"model.layers.0.self_attn.o_proj"}), 1, nil},
		{"modules to save", withSaved(peft.NewConfig(2, 4, 0, []string{"k_proj"}), "lm_head", "embed_tokens"), 2,
			[]string{"model.embed_tokens.weight", "lm_head.weight"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := loadLlama(t)
			if err := lora.Attach(m, tc.cfg, 1); err != nil {
				t.Fatal(err)
			}
			if got := len(m.LoRAParams()) / 2; got != tc.adapted {
				t.Fatalf("%d adapted linears, want %d", got, tc.adapted)
			}
			var trainable []string
			for _, p := range m.Params() {
				if p.Trainable() {
					trainable = append(trainable, p.Name)
				}
			}
			if strings.Join(trainable, ",") != strings.Join(tc.saved, ",") {
				t.Fatalf("trainable base weights %v, want %v", trainable, tc.saved)
			}
			for _, p := range m.LoRAParams() {
				if !p.Trainable() || !strings.HasPrefix(p.Name, "base_model.model.model.layers.") {
					t.Fatalf("adapter weight %s (trainable %v)", p.Name, p.Trainable())
				}
			}
		})
	}
}

func TestAttachRejectsUnknownTargets(t *testing.T) {
	cases := []struct {
		cfg  *peft.Config
		want string
	}{
		{peft.NewConfig(4, 8, 0, []string{"q_proj", "qkv_proj"}), "qkv_proj not found"},
		{peft.NewConfig(4, 8, 0, []string{"lm_head"}), "modules_to_save"},
		{withRegex(`.*\.attn\..*`), "not found"},
		{withRegex(`(`), "regex"},
		{peft.NewConfig(0, 8, 0, []string{"q_proj"}), "rank"},
		{peft.NewConfig(4, 8, 1.5, []string{"q_proj"}), "lora_dropout"},
		{withSaved(withRegex(peft.AllLinear), "score"), `"score" names no module`},
	}
	for _, tc := range cases {
		err := lora.Attach(loadLlama(t), tc.cfg, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

// PEFT's default init: B is zero, so a fresh adapter leaves the model's
// output unchanged; A is uniform within ±1/sqrt(in).
func TestFreshAdapterIsIdentity(t *testing.T) {
	m := loadLlama(t)
	b := &model.Batch{Rows: 1, Cols: 5, Tokens: []int32{1, 5, 9, 200, 7}}
	before, err := m.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := lora.Attach(m, withRegex(peft.AllLinear), 1); err != nil {
		t.Fatal(err)
	}
	after, err := m.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("logit %d changed from %v to %v", i, before[i], after[i])
		}
	}
	for _, p := range m.LoRAParams() {
		if strings.Contains(p.Name, "lora_A") {
			bound := 1 / math.Sqrt(float64(p.W.Cols()))
			nonzero := false
			for _, v := range p.W.F32 {
				if float64(v) > bound || float64(v) < -bound {
					t.Fatalf("%s value %v outside ±%v", p.Name, v, bound)
				}
				nonzero = nonzero || v != 0
			}
			if !nonzero {
				t.Fatalf("%s is all zero", p.Name)
			}
		}
	}
}

// saveAdapter exports m's adapter and saves it as PEFT's files (f32) in a
// new folder, which it returns.
func saveAdapter(t *testing.T, m *model.Model, cfg *peft.Config) string {
	t.Helper()
	a, err := lora.Export(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := a.Save(dir, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Loading a PEFT adapter and exporting it again gives PEFT's files back,
// byte for byte.
func TestLoadExportRoundTrip(t *testing.T) {
	m := loadLlama(t)
	dir := testfixtures.Path(t, "hf", "llama-lora")
	cfg, err := lora.Load(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	out := saveAdapter(t, m, cfg)
	for _, name := range []string{"adapter_model.safetensors", "adapter_config.json"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: exported file differs from PEFT's (%d vs %d bytes)", name, len(got), len(want))
		}
	}
}

// An adapter trained for another model size names the right modules but
// has the wrong shapes: the error says which module and both shapes.
func TestLoadRejectsAdapterOfAnotherSize(t *testing.T) {
	c := loadLlama(t).Config
	c.Hidden, c.Intermediate = 32, 96
	m, err := model.NewRandom(c, cpu.New(0), 1, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lora.Load(m, testfixtures.Path(t, "hf", "llama-lora"))
	if err == nil || !strings.Contains(err.Error(), "LoRA weights of model.layers.") {
		t.Fatalf("error %v, want one naming the mismatched module", err)
	}
	if _, err := lora.Load(loadLlama(t), t.TempDir()); err == nil {
		t.Fatal("loading an empty directory as an adapter did not fail")
	}
}
