package merger

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
)

// Merging an adapter whose modules_to_save names lm_head or embed_tokens of
// a tied base (qwen2): by default PEFT's copies part the two weights, so
// the merged model holds both and its config.json says
// tie_word_embeddings false (transformers' save_pretrained would keep true
// and a loader would tie them again); with ensure_weight_tying it stays
// tied, one tensor and the base's config.json. Either way its logits are
// the adapter's on the base.
func TestMergeTiedModulesToSave(t *testing.T) {
	base := testfixtures.Path(t, "hf", "qwen2")
	baseConfig, err := os.ReadFile(filepath.Join(base, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		saved  []string
		ensure bool
	}{
		{"lm_head", []string{"lm_head"}, false},
		{"embed_tokens", []string{"embed_tokens"}, false},
		{"both", []string{"embed_tokens", "lm_head"}, false},
		{"ensure_weight_tying", []string{"embed_tokens", "lm_head"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := model.Load(base, cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			embedBefore := make([]float32, m.Embed.W.Len())
			m.Backend.Download(embedBefore, m.Embed.W)
			cfg := peft.NewConfig(4, 8, 0, []string{"q_proj", "v_proj"})
			cfg.InitLoraWeights = false // B non-zero: the adapter changes the output
			cfg.ModulesToSave, cfg.EnsureWeightTying = c.saved, c.ensure
			if err := lora.Attach(m, cfg, 5); err != nil {
				t.Fatal(err)
			}
			// Stand-in for training: move each trainable copy its own way.
			rng := rand.New(rand.NewPCG(1, 2))
			for _, p := range []*model.Param{m.Embed, m.LMHead} {
				if !p.Trainable() {
					continue
				}
				for i := range p.W.F32 {
					p.W.F32[i] += float32(rng.NormFloat64() * 0.05)
				}
			}
			adapterDir, a := exportAdapter(t, m, cfg)
			out, cfgOut := mergeWithDefaults(t, base, adapterDir)
			weights, err := safetensors.OpenModel(out, "model")
			if err != nil {
				t.Fatal(err)
			}
			defer weights.Close()
			hasHead := slices.Contains(weights.Names(), "lm_head.weight")
			merged, err := model.Load(out, cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			if c.ensure {
				if !bytes.Equal(cfgOut, baseConfig) || hasHead || !merged.HeadTied() {
					t.Errorf("tied merge: config.json changed %v, lm_head.weight saved %v, loads tied %v", !bytes.Equal(cfgOut, baseConfig), hasHead, merged.HeadTied())
				}
			} else {
				var got, want map[string]any
				if err := json.Unmarshal(cfgOut, &got); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(baseConfig, &want); err != nil {
					t.Fatal(err)
				}
				want["tie_word_embeddings"] = false
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(want)
				if !bytes.Equal(gotJSON, wantJSON) || !bytes.HasSuffix(cfgOut, []byte("\n}\n")) || !bytes.Contains(cfgOut, []byte("\n  \"tie_word_embeddings\": false,\n")) {
					t.Errorf("config.json\n%s\nwant the base's with tie_word_embeddings false", cfgOut)
				}
				if !hasHead || merged.HeadTied() {
					t.Fatalf("untied merge: lm_head.weight saved %v, loads tied %v", hasHead, merged.HeadTied())
				}
				head, _ := weights.Float32s("lm_head.weight")
				embed, _ := weights.Float32s("model.embed_tokens.weight")
				wantHead, wantEmbed := embedBefore, embedBefore
				if s := a.Saved["lm_head.weight"]; s != nil {
					wantHead = s.Data
				}
				if s := a.Saved["model.embed_tokens.weight"]; s != nil {
					wantEmbed = s.Data
				}
				if !slices.Equal(head, wantHead) || !slices.Equal(embed, wantEmbed) {
					t.Errorf("merged lm_head equals the adapter's (or base's) %v, embed_tokens %v", slices.Equal(head, wantHead), slices.Equal(embed, wantEmbed))
				}
			}
			want := adapterOnBase(t, base, adapterDir)
			got := loadLogits(t, merged)
			if d := maxAbsDiff(want, got); d > 1e-4 {
				t.Errorf("merged logits differ from adapter-on-base logits by %g", d)
			}
			if d := maxAbsDiff(mergedLogits(t, base), got); d < 1e-3 {
				t.Errorf("the merged model computes what the base does (diff %g)", d)
			}
		})
	}
}

// A base whose config.json ties the head but whose checkpoint holds an
// lm_head.weight that differs from the embeddings (what transformers saves
// after PEFT parted them) loads untied, so the merged model keeps both
// weights and its config.json must say tie_word_embeddings false, or a
// loader that honours the flag ties them again and loses the head.
func TestMergeTiedConfigWithItsOwnHead(t *testing.T) {
	fixture := testfixtures.Path(t, "hf", "qwen2")
	m, err := model.Load(fixture, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	m.UntieHead()
	m.LMHead.W.F32[7] += 0.5
	baseHead := slices.Clone(m.LMHead.W.F32)
	baseEmbed := slices.Clone(m.Embed.W.F32)
	sd, err := m.StateDict(safetensors.F32)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	if err := safetensors.WriteFile(filepath.Join(base, "model.safetensors"), sd, nil); err != nil {
		t.Fatal(err)
	}
	tiedConfig, err := os.ReadFile(filepath.Join(fixture, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "config.json"), tiedConfig, 0o644); err != nil {
		t.Fatal(err)
	}

	// An adapter that leaves lm_head and embed_tokens alone.
	m, err = model.Load(base, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := peft.NewConfig(4, 8, 0, []string{"q_proj", "v_proj"})
	if err := lora.Attach(m, cfg, 5); err != nil {
		t.Fatal(err)
	}
	adapterDir, _ := exportAdapter(t, m, cfg)
	out, cfgOut := mergeWithDefaults(t, base, adapterDir)
	var merged struct {
		TieWordEmbeddings *bool `json:"tie_word_embeddings"`
	}
	if err := json.Unmarshal(cfgOut, &merged); err != nil {
		t.Fatal(err)
	}
	if merged.TieWordEmbeddings == nil || *merged.TieWordEmbeddings {
		t.Errorf("merged config.json\n%s\nwant tie_word_embeddings false", cfgOut)
	}
	weights, err := safetensors.OpenModel(out, "model")
	if err != nil {
		t.Fatal(err)
	}
	defer weights.Close()
	head, err := weights.Float32s("lm_head.weight")
	if err != nil {
		t.Fatal(err)
	}
	embed, err := weights.Float32s("model.embed_tokens.weight")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(head, baseHead) || !slices.Equal(embed, baseEmbed) {
		t.Errorf("merged lm_head is the base's %v, embed_tokens is the base's %v", slices.Equal(head, baseHead), slices.Equal(embed, baseEmbed))
	}
}

// mergeWithDefaults merges the adapter into base in a new folder and
// returns the folder and its config.json.
func mergeWithDefaults(t *testing.T, base, adapterDir string) (string, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "merged")
	if _, err := MergeDir(base, adapterDir, "", out, MergeOptions{}); err != nil {
		t.Fatal(err)
	}
	config, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return out, config
}
