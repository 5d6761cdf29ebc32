// Package merger is the merger service: on TrainingCompleted of a LoRA run
// whose config sets merge_lora: true, it merges the final adapter into the
// base weights (PEFT's merge_and_unload) and publishes ModelMerged with a
// Hugging Face model directory (safetensors, sharded with an index above a
// size threshold, config.json, generation_config.json, tokenizer files) that
// `eft train` copies to output_dir/merged. MergeDir is the same merge for
// `eft merge-lora`, on local directories.
package merger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/hfmodel"
	"github.com/eftml/eft/shared/pyjson"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/quant"
)

// Name is the service's name and durable consumer.
const Name = "merger"

// MergedDir is the folder under output_dir the merged model goes to, as
// Axolotl's merge writes it.
const MergedDir = "merged"

// Options configure the merger. The zero value merges on the CPU with
// scratch space under the system's temporary directory.
type Options struct {
	// ScratchDir holds the adapter and merged model while they are made
	// (default $TMPDIR/eft-merger).
	ScratchDir string
	// Resolver finds base models.
	Resolver runspec.Resolver
	// MaxShardSize splits the merged weights into shards above this many
	// bytes (0: 5 GB, as transformers).
	MaxShardSize int64
	// Bucket is the object store bucket the merged files go to.
	Bucket string
}

// Service is the merger service.
type Service struct {
	bus  *bus.Bus
	opts Options
}

// New returns the merger service over b.
func New(b *bus.Bus, opts Options) *Service {
	if opts.ScratchDir == "" {
		opts.ScratchDir = filepath.Join(os.TempDir(), "eft-merger")
	}
	if opts.Bucket == "" {
		opts.Bucket = artifacts.DefaultBucket
	}
	return &Service{bus: b, opts: opts}
}

// Run consumes TrainingCompleted until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.Consume(ctx, bus.Consumer{
		Name:         Name,
		Subjects:     []string{events.TypeSubjects(events.TypeTrainingCompleted)},
		Handler:      s.handle,
		AckWait:      30 * time.Minute, // a large model takes minutes to merge
		OnDeadLetter: stage.FailOnDeadLetter(s.bus, Name, events.StageMerge),
	})
}

func (s *Service) handle(ctx context.Context, d bus.Delivery) error {
	done, err := events.PayloadAs[events.TrainingCompleted](d.Envelope)
	if err != nil {
		return bus.Permanent(err)
	}
	runID := d.Envelope.RunID
	validated, ok, err := runspec.LastPayload[events.ConfigValidated](ctx, s.bus, runID)
	if err != nil {
		return err
	}
	if !ok {
		return bus.Permanent(fmt.Errorf("merger: run %s has no ConfigValidated", runID))
	}
	cfg, err := runspec.ParseConfig(validated.Resolved)
	if err != nil {
		return bus.Permanent(err)
	}
	if !cfg.MergeLora || done.Kind != "adapter" {
		return nil // nothing to merge
	}
	if ended, err := runspec.Ended(ctx, s.bus, runID, events.TypeRunFailed, events.TypeRunCancelled); err != nil || ended != "" {
		return err
	}
	scratch := filepath.Join(s.opts.ScratchDir, runID)
	defer os.RemoveAll(scratch)
	adapterDir := filepath.Join(scratch, "adapter")
	var adapterFiles []events.FileRef
	for _, f := range done.Files {
		if f.Path == peft.ConfigFile || f.Path == peft.WeightsFile {
			adapterFiles = append(adapterFiles, f)
		}
	}
	if len(adapterFiles) != 2 {
		return bus.Permanent(fmt.Errorf("merger: TrainingCompleted of run %s has no %s and %s at the top of its files", runID, peft.ConfigFile, peft.WeightsFile))
	}
	if err := fetchFiles(ctx, s.bus, adapterFiles, adapterDir); err != nil {
		return err
	}
	baseDir, err := s.opts.Resolver.BaseModelDir(ctx, cfg, validated.WorkDir)
	if err != nil {
		return bus.Permanent(err)
	}
	tokDir, err := s.opts.Resolver.TokenizerDir(ctx, cfg, validated.WorkDir, baseDir)
	if err != nil {
		return bus.Permanent(err)
	}
	outDir := filepath.Join(scratch, MergedDir)
	mo := MergeOptions{MaxShardSize: s.opts.MaxShardSize, Quantized: runspec.Quantization(cfg)}
	if _, err := MergeDir(baseDir, adapterDir, tokDir, outDir, mo); err != nil {
		return bus.Permanent(err)
	}
	store, err := artifacts.Open(ctx, s.bus.JetStream(), s.opts.Bucket, artifacts.Options{})
	if err != nil {
		return err
	}
	files, err := uploadDir(ctx, store, outDir)
	if err != nil {
		return err
	}
	_, err = s.bus.PublishCausedBy(ctx, d.Envelope, Name, events.ModelMerged{Files: files, Dir: MergedDir})
	return err
}

// MergeOptions configure MergeDir.
type MergeOptions struct {
	// MaxShardSize splits the weights into shards above this many bytes
	// (0: 5 GB).
	MaxShardSize int64
	// Backend merges (default: the CPU).
	Backend backend.Backend
	// Quantized is the 4-bit format the adapter was trained over (QLoRA),
	// nil for none. Each adapted base weight then goes through the same
	// quantization round trip before the adapter is folded in, as Axolotl's
	// merge-lora does for a qlora config: the merged model is the weights
	// the adapter learned against, not the original ones. Weights without
	// an adapter are written as the base holds them.
	Quantized *quant.Options
}

// MergeDir merges the PEFT adapter in adapterDir into the base model in
// baseDir and writes a Hugging Face model directory at outDir: the merged
// weights in the base weights' dtype (sharded with an index above
// MaxShardSize), the base's config.json and generation_config.json, and the
// tokenizer files of tokenizerDir ("" for none). It returns the file names
// written.
func MergeDir(baseDir, adapterDir, tokenizerDir, outDir string, o MergeOptions) ([]string, error) {
	be := o.Backend
	if be == nil {
		be = cpu.New(0)
	}
	dtype, err := runspec.WeightsDType(baseDir)
	if err != nil {
		return nil, err
	}
	baseConfig, err := hfmodel.LoadConfig(filepath.Join(baseDir, "config.json"))
	if err != nil {
		return nil, err
	}
	m, err := model.Load(baseDir, be)
	if err != nil {
		return nil, err
	}
	if _, err := lora.Load(m, adapterDir); err != nil {
		return nil, err
	}
	// The merged model saves both weights whenever its head is untied, so
	// its config.json must not say tied. That happens to a base whose config
	// ties them when modules_to_save names lm_head or embed_tokens (PEFT's
	// copies part them), or when its checkpoint already holds an lm_head
	// that differs from the embeddings (model.Load keeps both).
	untied := baseConfig.TieWordEmbeddings && !m.HeadTied()
	if o.Quantized != nil {
		if err := roundTripAdapted(m, *o.Quantized); err != nil {
			return nil, err
		}
	}
	lora.Merge(m)
	tensors, err := m.StateDict(dtype)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("merger: %w", err)
	}
	written, err := safetensors.WriteModel(outDir, "model", tensors, map[string]string{"format": "pt"}, o.MaxShardSize)
	if err != nil {
		return nil, err
	}
	copies := runspec.CopyModelFiles(baseDir, runspec.ModelFiles...)
	if tokenizerDir != "" {
		copies = append(copies, runspec.CopyModelFiles(tokenizerDir, runspec.TokenizerFiles...)...)
	}
	for _, src := range copies {
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("merger: %w", err)
		}
		name := filepath.Base(src)
		if name == "config.json" && untied {
			if data, err = untieConfig(data); err != nil {
				return nil, fmt.Errorf("merger: %s: %w", src, err)
			}
		}
		if err := os.WriteFile(filepath.Join(outDir, name), data, 0o644); err != nil {
			return nil, fmt.Errorf("merger: %w", err)
		}
		written = append(written, name)
	}
	return written, nil
}

// untieConfig returns config.json with tie_word_embeddings false, written
// as transformers writes a config (json.dumps(indent=2, sort_keys=True) and
// a newline). PEFT's merge_and_unload of an adapter that trained a copy of a
// tied lm_head or embed_tokens gives a model whose two weights differ, and
// transformers' save_pretrained writes both but keeps tie_word_embeddings
// true, so that loaders which honour it tie them again and lose one
// (huggingface/peft#2777, huggingface/transformers#45127). eft writes the
// flag that matches the weights.
func untieConfig(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	cfg["tie_word_embeddings"] = false
	out, err := pyjson.Marshal(cfg, pyjson.Options{Indent: "  "})
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// roundTripAdapted replaces every adapted linear weight of m by its 4-bit
// quantization, dequantized.
func roundTripAdapted(m *model.Model, o quant.Options) error {
	for i := range m.Layers {
		for _, lin := range m.Layers[i].Linears() {
			if lin.LoRA == nil {
				continue
			}
			vals := make([]float32, lin.W.W.Len())
			m.Backend.Download(vals, lin.W.W)
			q, err := quant.Quantize(vals, lin.Out, lin.In, o)
			if err != nil {
				return fmt.Errorf("merger: quantizing %s: %w", lin.W.Name, err)
			}
			q.Dequantize(vals)
			m.Backend.Upload(lin.W.W, vals)
		}
	}
	return nil
}

func fetchFiles(ctx context.Context, b *bus.Bus, files []events.FileRef, dir string) error {
	for _, f := range files {
		st, err := artifacts.Open(ctx, b.JetStream(), f.Artifact.Bucket, artifacts.Options{})
		if err != nil {
			return err
		}
		if err := st.GetFiles(ctx, []events.FileRef{f}, dir); err != nil {
			return err
		}
	}
	return nil
}

func uploadDir(ctx context.Context, store *artifacts.Store, dir string) ([]events.FileRef, error) {
	var files []events.FileRef
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		ref, err := store.PutFile(ctx, p)
		if err != nil {
			return err
		}
		files = append(files, events.FileRef{Path: path.Clean(filepath.ToSlash(rel)), Artifact: ref})
		return nil
	})
	return files, err
}
