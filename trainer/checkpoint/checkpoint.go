package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/schedule"
)

// File names inside a checkpoint directory.
const (
	StateFile     = "eft_trainer_state.json"
	OptimizerFile = "optimizer.safetensors"
	// Prefix of checkpoint directory names, as the Hugging Face Trainer names them.
	Prefix = "checkpoint-"
)

// FormatVersion is written into StateFile; a loader refuses newer versions.
const FormatVersion = 1

// Kinds of weights a checkpoint holds.
const (
	KindAdapter = "adapter"
	KindFull    = "full"
)

// State is everything besides weights and optimizer moments that exact resume
// needs.
type State struct {
	Version int     `json:"format_version"`
	Kind    string  `json:"kind"`        // adapter or full
	Step    int64   `json:"global_step"` // optimizer updates done
	Epoch   float64 `json:"epoch"`       // fractional, as the HF Trainer reports it
	// Schedule is the learning-rate schedule; LR(Step) is the next update's rate.
	Schedule *schedule.Schedule `json:"lr_schedule,omitempty"`
	// Optimizer identifies the optimizer and its settings; moments live in
	// OptimizerFile. Save fills Kind and Steps from the optimizer state; the
	// caller sets Hyper.
	Optimizer OptimizerInfo `json:"optimizer"`
	// RNG holds named random streams in their own binary encoding (for
	// math/rand/v2 sources, MarshalBinary), base64 in the JSON.
	RNG map[string][]byte `json:"rng,omitempty"`
	// Data says where the next batch comes from.
	Data DataPosition `json:"data"`
	// Extra is free-form state of the caller (loss scale, best metric...).
	Extra map[string]json.RawMessage `json:"extra,omitempty"`
}

// OptimizerInfo is the optimizer's kind, hyper-parameters and per-parameter
// step counts (torch keeps a step per parameter).
type OptimizerInfo struct {
	Kind  string             `json:"kind"`
	Hyper map[string]float64 `json:"hyper,omitempty"`
	Steps map[string]int64   `json:"steps"`
}

// DataPosition locates the training stream: the epoch being read, the
// sequence number of the next packed batch within it, the micro-step inside
// the current accumulation, the shuffle seed and counts so far.
type DataPosition struct {
	Epoch        int    `json:"epoch"`
	NextBatch    int64  `json:"next_batch"`
	MicroStep    int    `json:"micro_step"`
	Seed         uint64 `json:"seed"`
	SamplesSeen  int64  `json:"samples_seen"`
	TokensSeen   int64  `json:"tokens_seen"`
	DatasetHash  string `json:"dataset_hash,omitempty"`
	BatchesTotal int64  `json:"batches_per_epoch,omitempty"`
}

// Full is a full fine-tune's weights: tensors in state-dict order (the order
// transformers shards in) and the base model files to copy beside them.
type Full struct {
	Tensors []safetensors.NamedTensor
	// CopyFiles are paths of files copied into the checkpoint under their
	// base names (config.json, generation_config.json, tokenizer files).
	// config.json is required.
	CopyFiles []string
	// MaxShardSize is the shard threshold in bytes (0: 5 GB, as transformers).
	MaxShardSize int64
}

// Contents is what Save writes: exactly one of Adapter and Full.
type Contents struct {
	Adapter *peft.Adapter
	// AdapterDType is the adapter weights' dtype (default F32).
	AdapterDType safetensors.DType
	Full         *Full
	Optimizer    optim.State
	State        State
}

// Name is the directory name of the checkpoint at a step.
func Name(step int64) string { return Prefix + strconv.FormatInt(step, 10) }

// Save writes a checkpoint directory at dir atomically; an existing dir is
// replaced only once the new one is complete.
func Save(dir string, c Contents) (err error) {
	if (c.Adapter == nil) == (c.Full == nil) {
		return errors.New("checkpoint: give exactly one of an adapter and full weights")
	}
	state := c.State
	state.Version = FormatVersion
	state.Kind = KindFull
	if c.Adapter != nil {
		state.Kind = KindAdapter
	}
	state.Optimizer.Kind = c.Optimizer.Kind
	state.Optimizer.Steps = map[string]int64{}
	var moments []safetensors.NamedTensor
	for _, name := range sortedKeys(c.Optimizer.Params) {
		ps := c.Optimizer.Params[name]
		state.Optimizer.Steps[name] = ps.Step
		for _, buf := range sortedKeys(ps.Buffers) {
			t, err := safetensors.ViewFloat32([]int{len(ps.Buffers[buf])}, ps.Buffers[buf])
			if err != nil {
				return fmt.Errorf("checkpoint: optimizer %s of %s: %v", buf, name, err)
			}
			moments = append(moments, safetensors.NamedTensor{Name: name + "." + buf, Tensor: t})
		}
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if c.Adapter != nil {
		dtype := c.AdapterDType
		if dtype == "" {
			dtype = safetensors.F32
		}
		if err := c.Adapter.Save(tmp, dtype); err != nil {
			return err
		}
	} else {
		if err := writeFull(tmp, c.Full); err != nil {
			return err
		}
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, OptimizerFile), moments, map[string]string{"optimizer": c.Optimizer.Kind}); err != nil {
		return err
	}
	stateJSON, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := safetensors.WriteAtomic(filepath.Join(tmp, StateFile), func(w io.Writer) error {
		_, err := w.Write(append(stateJSON, '\n'))
		return err
	}); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return replaceDir(tmp, dir)
}

func writeFull(dir string, f *Full) error {
	hasConfig := false
	for _, src := range f.CopyFiles {
		if filepath.Base(src) == "config.json" {
			hasConfig = true
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("checkpoint: copy base model file: %w", err)
		}
		if err := safetensors.WriteAtomic(filepath.Join(dir, filepath.Base(src)), func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		}); err != nil {
			return err
		}
	}
	if !hasConfig {
		return errors.New("checkpoint: a full checkpoint needs config.json among the files to copy")
	}
	_, err := safetensors.WriteModel(dir, "model", f.Tensors, map[string]string{"format": "pt"}, f.MaxShardSize)
	return err
}

// replaceDir renames the finished tmp directory to dir. An existing dir is
// first moved aside and removed only after the new one is in place.
func replaceDir(tmp, dir string) error {
	var old string
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("checkpoint: %w", err)
	}
	if d, err := os.Open(filepath.Dir(dir)); err == nil {
		d.Sync()
		d.Close()
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// Loaded is a checkpoint read back. Its weights are read from Dir with
// peft.Load (kind adapter) or hfmodel.Open (kind full): a checkpoint
// directory is itself a PEFT adapter or Hugging Face model directory.
type Loaded struct {
	Dir       string
	State     State
	Optimizer optim.State
}

// Load reads a checkpoint's trainer state and optimizer moments and checks
// that its weights files are present.
func Load(dir string) (*Loaded, error) {
	statePath := filepath.Join(dir, StateFile)
	raw, err := os.ReadFile(statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("checkpoint: %s is not an eft checkpoint (no %s)", dir, StateFile)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	l := &Loaded{Dir: dir}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l.State); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %v", statePath, err)
	}
	st := l.State
	switch {
	case st.Version < 1 || st.Version > FormatVersion:
		return nil, fmt.Errorf("checkpoint: %s: format_version %d is not one this build reads (1..%d)", statePath, st.Version, FormatVersion)
	case st.Step < 0:
		return nil, fmt.Errorf("checkpoint: %s: global_step %d is negative", statePath, st.Step)
	}
	var need []string
	switch st.Kind {
	case KindAdapter:
		need = []string{peft.ConfigFile, peft.WeightsFile}
	case KindFull:
		need = []string{"config.json"}
		if !exists(filepath.Join(dir, "model.safetensors")) && !exists(filepath.Join(dir, "model.safetensors.index.json")) {
			return nil, fmt.Errorf("checkpoint: %s holds no model.safetensors or model.safetensors.index.json", dir)
		}
	default:
		return nil, fmt.Errorf("checkpoint: %s: kind %q is neither %q nor %q", statePath, st.Kind, KindAdapter, KindFull)
	}
	for _, f := range need {
		if !exists(filepath.Join(dir, f)) {
			return nil, fmt.Errorf("checkpoint: %s is missing %s", dir, f)
		}
	}
	if l.Optimizer, err = loadOptimizer(filepath.Join(dir, OptimizerFile), st.Optimizer); err != nil {
		return nil, err
	}
	return l, nil
}

// buffersOf lists the moment buffers each optimizer kind keeps.
var buffersOf = map[string][]string{"adamw": {"exp_avg", "exp_avg_sq"}, "sgd": {"momentum_buffer"}}

func loadOptimizer(path string, info OptimizerInfo) (optim.State, error) {
	st := optim.State{Kind: info.Kind, Params: map[string]*optim.ParamState{}}
	known, ok := buffersOf[info.Kind]
	if !ok {
		return st, fmt.Errorf("checkpoint: %s: optimizer kind %q is unknown", path, info.Kind)
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return st, fmt.Errorf("checkpoint: optimizer state: %w", err)
	}
	defer f.Close()
	for name, step := range info.Steps {
		st.Params[name] = &optim.ParamState{Step: step, Buffers: map[string][]float32{}}
	}
	for _, key := range f.Names() {
		i := strings.LastIndex(key, ".")
		if i < 0 {
			return st, fmt.Errorf("checkpoint: %s: tensor %q is not <parameter>.<buffer>", path, key)
		}
		name, buf := key[:i], key[i+1:]
		ps := st.Params[name]
		if ps == nil {
			return st, fmt.Errorf("checkpoint: %s: tensor %q belongs to no parameter of %s", path, key, StateFile)
		}
		if !slices.Contains(known, buf) {
			return st, fmt.Errorf("checkpoint: %s: %q is not a %s buffer", path, key, info.Kind)
		}
		v, err := f.Float32s(key)
		if err != nil {
			return st, err
		}
		ps.Buffers[buf] = v
	}
	for name, ps := range st.Params {
		if info.Kind == "adamw" && ps.Step > 0 && len(ps.Buffers) != 2 {
			return st, fmt.Errorf("checkpoint: %s: AdamW moments of %q are missing", path, name)
		}
	}
	return st, nil
}

// Latest returns the checkpoint directory with the highest step under
// outputDir ("" when there is none). Temporary and incomplete directories
// are ignored.
func Latest(outputDir string) (string, error) {
	list, err := List(outputDir)
	if err != nil || len(list) == 0 {
		return "", err
	}
	return list[len(list)-1], nil
}

// List returns the complete checkpoint directories under outputDir, oldest
// (lowest step) first.
func List(outputDir string) ([]string, error) {
	entries, err := os.ReadDir(outputDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	type ck struct {
		step int64
		dir  string
	}
	var found []ck
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), Prefix)
		if !ok || !e.IsDir() {
			continue
		}
		step, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			continue
		}
		dir := filepath.Join(outputDir, e.Name())
		if !exists(filepath.Join(dir, StateFile)) {
			continue
		}
		found = append(found, ck{step, dir})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].step < found[j].step })
	out := make([]string, len(found))
	for i, c := range found {
		out[i] = c.dir
	}
	return out, nil
}

// Rotate deletes the oldest checkpoints so that at most keep remain
// (save_total_limit), never deleting the directories named in protect (for
// example the best checkpoint). keep <= 0 deletes nothing.
func Rotate(outputDir string, keep int, protect ...string) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	list, err := List(outputDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, dir := range list {
		if len(list)-len(removed) <= keep {
			break
		}
		if slices.Contains(protect, dir) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return removed, fmt.Errorf("checkpoint: %w", err)
		}
		removed = append(removed, dir)
	}
	return removed, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
