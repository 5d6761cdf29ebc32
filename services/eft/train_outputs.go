package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/config"
)

// trainOutputs follows what `eft train` waits for before it calls a run
// done: training completed, the merge (with merge_lora), and the
// evaluation of every checkpoint at an eval step — the evaluator works
// beside the trainer, so its last results may come after
// TrainingCompleted. It also builds the run's trainer_state.json (the HF
// Trainer's log history, evaluations included) for output_dir.
type trainOutputs struct {
	cfg       *config.Config
	merge     bool
	steps     *runspec.Steps
	history   *runspec.History
	hasEval   bool
	pending   map[int64]bool // checkpoints at eval steps not evaluated yet
	completed *events.TrainingCompleted
	merged    bool
}

func newTrainOutputs(cfg *config.Config) *trainOutputs {
	return &trainOutputs{cfg: cfg, merge: cfg != nil && cfg.MergeLora && cfg.Adapter != "", pending: map[int64]bool{}}
}

// observe takes in one event of the run.
func (o *trainOutputs) observe(env events.Envelope) {
	if o.cfg == nil {
		return
	}
	switch env.Type {
	case events.TypeDatasetTokenized:
		if p, err := events.PayloadAs[events.DatasetTokenized](env); err == nil {
			if s, err := runspec.NewSteps(o.cfg, int(p.MicroBatches)); err == nil {
				o.steps, o.history, o.hasEval = &s, runspec.NewHistory(o.cfg, s), p.Eval != nil
			}
		}
	case events.TypeMetricsLogged:
		if p, err := events.PayloadAs[events.MetricsLogged](env); err == nil && o.history != nil {
			o.history.AddMetrics(p)
		}
	case events.TypeCheckpointSaved:
		if p, err := events.PayloadAs[events.CheckpointSaved](env); err == nil && o.steps != nil && o.hasEval && o.steps.EvalAt(int(p.Step)) {
			o.pending[p.Step] = true
		}
	case events.TypeEvalCompleted:
		if p, err := events.PayloadAs[events.EvalCompleted](env); err == nil {
			delete(o.pending, p.Step)
			if o.history != nil {
				o.history.AddEval(p)
			}
		}
	case events.TypeTrainingCompleted:
		if p, err := events.PayloadAs[events.TrainingCompleted](env); err == nil {
			o.completed = &p
			if o.history != nil {
				o.history.AddCompleted(p)
			}
		}
	case events.TypeModelMerged:
		o.merged = true
	}
}

// done reports whether nothing more is to come for a successful run.
func (o *trainOutputs) done() bool {
	return o.completed != nil && (!o.merge || o.merged) && len(o.pending) == 0
}

// writeState writes trainer_state.json into outputDir.
func (o *trainOutputs) writeState(outputDir string) error {
	if o.history == nil || o.completed == nil || outputDir == "" {
		return nil
	}
	path := filepath.Join(outputDir, runspec.StateFile)
	if err := os.WriteFile(path, o.history.JSON(o.completed.Steps), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// eta is "  eta 1m05s" from the run's pace so far (elapsed_seconds over the
// steps done), or "" when it cannot tell.
func eta(m events.MetricsLogged, total int64) string {
	elapsed, ok := m.Values["elapsed_seconds"]
	if !ok || total <= 0 || m.Step <= 0 || m.Step > total {
		return ""
	}
	left := time.Duration(float64(elapsed) / float64(m.Step) * float64(total-m.Step) * float64(time.Second))
	return "  eta " + left.Round(time.Second).String()
}
