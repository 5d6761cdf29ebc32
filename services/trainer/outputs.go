package trainer

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/checkpoint"
	"github.com/eftml/eft/trainer/lora"
)

// saveCheckpoint writes the state after d steps as a checkpoint folder
// (weights, optimizer moments, exact-resume state, the HF trainer_state.json),
// stores each file as an artifact and publishes CheckpointSaved.
func (r *run) saveCheckpoint(ctx context.Context, d int, elapsed float64) error {
	name := checkpoint.Name(int64(d))
	dir := filepath.Join(r.scratch, "checkpoints", name)
	defer os.RemoveAll(dir)
	epoch, inEpoch := r.steps.EpochOf(d)
	next, _ := r.steps.Group(inEpoch)
	c := checkpoint.Contents{
		Optimizer: r.opt.State(),
		State: checkpoint.State{
			Step: int64(d), Epoch: r.steps.Epoch(d), Schedule: r.sched,
			Optimizer: checkpoint.OptimizerInfo{Hyper: r.hyper},
			Data: checkpoint.DataPosition{
				Epoch: epoch, NextBatch: int64(next * r.worldSize()), Seed: uint64(r.cfg.Seed),
				TokensSeen: r.tokensSeen, BatchesTotal: int64(r.batches.Len()), DatasetHash: r.spec.Train.SHA256,
			},
			Extra: map[string]json.RawMessage{},
		},
	}
	for key, v := range map[string]any{
		extraLossSum: r.interval.lossSum, extraLossSteps: r.interval.steps, extraElapsed: elapsed, extraKept: r.kept,
	} {
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		c.State.Extra[key] = raw
	}
	if r.built.Adapter != nil {
		a, err := lora.Export(r.built.Model, r.built.Adapter)
		if err != nil {
			return err
		}
		c.Adapter = a
	} else {
		tensors, err := r.built.Model.StateDict(safetensors.F32)
		if err != nil {
			return err
		}
		c.Full = &checkpoint.Full{
			Tensors:      tensors,
			CopyFiles:    append(runspec.CopyModelFiles(r.built.BaseDir, runspec.ModelFiles...), runspec.CopyModelFiles(r.tokDir, runspec.TokenizerFiles...)...),
			MaxShardSize: r.svc.opts.MaxShardSize,
		}
	}
	if err := checkpoint.Save(dir, c); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, runspec.StateFile), r.history.JSON(int64(d)), 0o644); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	files, err := r.upload(ctx, dir)
	if err != nil {
		return fmt.Errorf("storing %s: %w", name, err)
	}
	saved := events.CheckpointSaved{Step: int64(d), Epoch: r.steps.Epoch(d), Name: name, Kind: runspec.Kind(r.cfg), Files: files}
	if err := r.publish(ctx, saved, name); err != nil {
		return err
	}
	if r.steps.SaveAt(d) {
		r.keep(savedCheckpoint{Name: name, Files: files})
	}
	return nil
}

// keep adds a checkpoint to the ones output_dir will hold, dropping the
// oldest beyond save_total_limit.
func (r *run) keep(c savedCheckpoint) {
	r.kept = append(r.kept, c)
	limit := r.cfg.SaveTotalLimit
	if limit <= 0 {
		limit = 4
	}
	if len(r.kept) > limit {
		r.kept = append([]savedCheckpoint(nil), r.kept[len(r.kept)-limit:]...)
	}
}

// upload stores every file under dir and returns them with their paths
// relative to dir.
func (r *run) upload(ctx context.Context, dir string) ([]events.FileRef, error) {
	var files []events.FileRef
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		ref, err := r.store.PutFile(ctx, p)
		if err != nil {
			return err
		}
		files = append(files, events.FileRef{Path: filepath.ToSlash(rel), Artifact: ref})
		return nil
	})
	return files, err
}

// complete writes the final outputs in output_dir's layout — the adapter
// (or full model) and tokenizer files at the top, the kept checkpoint-N
// folders, trainer_state.json — and publishes TrainingCompleted.
func (r *run) complete(ctx context.Context, elapsed float64) error {
	total := r.steps.TotalSteps
	dir := filepath.Join(r.scratch, "final")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m := r.built.Model
	if r.built.Adapter != nil {
		a, err := lora.Export(m, r.built.Adapter)
		if err != nil {
			return err
		}
		if err := a.Save(dir, safetensors.F32); err != nil {
			return err
		}
	} else {
		// The base's dtype, as the HF Trainer saves a model loaded in bf16
		// (checkpoints keep float32 for an exact resume).
		dtype, err := runspec.WeightsDType(r.built.BaseDir)
		if err != nil {
			return err
		}
		tensors, err := m.StateDict(dtype)
		if err != nil {
			return err
		}
		if _, err := safetensors.WriteModel(dir, "model", tensors, map[string]string{"format": "pt"}, r.svc.opts.MaxShardSize); err != nil {
			return err
		}
		if err := copyFiles(dir, runspec.CopyModelFiles(r.built.BaseDir, runspec.ModelFiles...)); err != nil {
			return err
		}
	}
	if len(r.spec.Tokenizer) == 0 {
		if err := copyFiles(dir, runspec.CopyModelFiles(r.tokDir, runspec.TokenizerFiles...)); err != nil {
			return err
		}
	}
	done := events.TrainingCompleted{
		Steps: int64(total), Epochs: r.steps.Epoch(total), FinalLoss: events.Metric(r.lastLoss),
		Kind: runspec.Kind(r.cfg), RuntimeSeconds: elapsed, TrainedTokens: r.tokensSeen,
	}
	r.history.AddCompleted(done)
	if err := os.WriteFile(filepath.Join(dir, runspec.StateFile), r.history.JSON(int64(total)), 0o644); err != nil {
		return fmt.Errorf("trainer: %w", err)
	}
	files, err := r.upload(ctx, dir)
	if err != nil {
		return err
	}
	files = append(files, r.spec.Tokenizer...)
	for _, c := range r.kept {
		for _, f := range c.Files {
			files = append(files, events.FileRef{Path: path.Join(c.Name, f.Path), Artifact: f.Artifact})
		}
	}
	done.Files = files
	if r.watch.stopped() {
		return errStopped
	}
	return r.publish(ctx, done, "")
}

func copyFiles(dir string, paths []string) error {
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), data, 0o644); err != nil {
			return fmt.Errorf("trainer: %w", err)
		}
	}
	return nil
}
