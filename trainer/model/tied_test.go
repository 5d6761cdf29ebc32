package model_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
)

// A checkpoint whose config.json ties the head but which holds its own
// lm_head.weight (what transformers saves after PEFT merged an adapter that
// trained a copy of the head) loads untied when the two weights differ, as
// transformers 5 loads it, and tied when they are equal; UntieHead parts a
// loaded tied model the same way.
func TestTiedConfigWithItsOwnHead(t *testing.T) {
	base := testfixtures.Path(t, "hf", "qwen2")
	cfgJSON, err := os.ReadFile(filepath.Join(base, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, differ := range []bool{true, false} {
		m, err := model.Load(base, cpu.New(0))
		if err != nil {
			t.Fatal(err)
		}
		m.UntieHead()
		if m.HeadTied() || m.Config.TieEmbeddings || m.LMHead.Name != "lm_head.weight" || m.LMHead.Trainable() || !slices.Equal(m.LMHead.W.F32, m.Embed.W.F32) {
			t.Fatalf("UntieHead: tied %v, config %v, head %q trainable %v, equal to the embeddings %v",
				m.HeadTied(), m.Config.TieEmbeddings, m.LMHead.Name, m.LMHead.Trainable(), slices.Equal(m.LMHead.W.F32, m.Embed.W.F32))
		}
		if differ {
			m.LMHead.W.F32[7] += 0.5
		}
		sd, err := m.StateDict(safetensors.F32)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), sd, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.json"), cfgJSON, 0o644); err != nil {
			t.Fatal(err)
		}
		back, err := model.Load(dir, cpu.New(0))
		if err != nil {
			t.Fatal(err)
		}
		if back.HeadTied() == differ {
			t.Errorf("head and embeddings differ %v: loaded tied %v", differ, back.HeadTied())
		}
		if !slices.Equal(back.LMHead.W.F32, m.LMHead.W.F32) || !slices.Equal(back.Embed.W.F32, m.Embed.W.F32) {
			t.Errorf("differ %v: loaded weights are not the saved ones", differ)
		}
	}
}
