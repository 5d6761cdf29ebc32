package runspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/pyjson"
)

// StateFile is the Hugging Face Trainer's state file: in every checkpoint
// folder, and at the top of output_dir after eft train.
const StateFile = "trainer_state.json"

// Kinds of log_history entries, in the order the Trainer writes them at
// one step: the training log, then the evaluation, then the run summary.
const (
	entryTrain = iota
	entryEval
	entrySummary
)

type entryKey struct {
	step int64
	kind int
}

// History is a run's trainer_state.json as the transformers Trainer writes
// it: its log_history has one entry per logging step (step, epoch, loss,
// learning_rate, grad_norm), one per evaluation (eval_loss, eval_perplexity,
// eval_runtime, ...) and the training summary (train_loss, train_runtime);
// the other fields describe the run. It is safe for concurrent use. It is built from events, so the
// trainer (for each checkpoint) and the CLI (for output_dir, with every
// evaluation) write the same thing.
type History struct {
	mu             sync.Mutex
	steps          Steps
	microBatchSize int
	entries        map[entryKey]map[string]any
}

// NewHistory starts an empty history for a run of cfg planned as s.
func NewHistory(cfg *config.Config, s Steps) *History {
	return &History{steps: s, microBatchSize: cfg.MicroBatchSize, entries: map[entryKey]map[string]any{}}
}

func finite(m events.Metric) any {
	f := float64(m)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return f // written as NaN / Infinity, as Python's json does
	}
	return f
}

// AddMetrics records a MetricsLogged (a step logged twice keeps the last).
func (h *History) AddMetrics(m events.MetricsLogged) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := map[string]any{"step": m.Step, "epoch": round4(m.Epoch)}
	for ours, theirs := range map[string]string{"loss": "loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"} {
		if v, ok := m.Values[ours]; ok {
			e[theirs] = finite(v)
		}
	}
	h.entries[entryKey{m.Step, entryTrain}] = e
}

// AddEval records an EvalCompleted.
func (h *History) AddEval(ev events.EvalCompleted) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := map[string]any{"step": ev.Step, "epoch": round4(ev.Epoch), "eval_loss": finite(ev.Loss), "eval_perplexity": finite(ev.Perplexity)}
	if !ev.StartedAt.IsZero() && ev.FinishedAt.After(ev.StartedAt) {
		secs := ev.FinishedAt.Sub(ev.StartedAt).Seconds()
		e["eval_runtime"] = round4(secs)
		if ev.Samples > 0 {
			e["eval_samples_per_second"] = round3(float64(ev.Samples) / secs)
		}
	}
	h.entries[entryKey{ev.Step, entryEval}] = e
}

// AddCompleted records the run's summary entry.
func (h *History) AddCompleted(c events.TrainingCompleted) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := map[string]any{"step": c.Steps, "epoch": round4(c.Epochs), "train_runtime": round4(c.RuntimeSeconds), "total_flos": 0.0}
	if loss, ok := h.meanLoss(); ok {
		e["train_loss"] = loss
	}
	if c.RuntimeSeconds > 0 {
		e["train_steps_per_second"] = round3(float64(c.Steps) / c.RuntimeSeconds)
	}
	h.entries[entryKey{c.Steps, entrySummary}] = e
}

func (h *History) meanLoss() (float64, bool) {
	var sum float64
	n := 0
	for k, e := range h.entries {
		if k.kind != entryTrain {
			continue
		}
		if v, ok := e["loss"].(float64); ok {
			sum += v
			n++
		}
	}
	return sum / float64(n), n > 0
}

// Len is the number of log entries.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.entries)
}

// EvalLoss returns the eval_loss recorded at step.
func (h *History) EvalLoss(step int64) (float64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.entries[entryKey{step, entryEval}]
	if !ok {
		return 0, false
	}
	v, ok := e["eval_loss"].(float64)
	return v, ok
}

// JSON writes trainer_state.json for the state after globalStep steps,
// with the entries up to that step, as the Trainer writes it
// (json.dumps(indent=2, sort_keys=True)).
func (h *History) JSON(globalStep int64) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := make([]entryKey, 0, len(h.entries))
	for k := range h.entries {
		if k.step <= globalStep {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].step != keys[j].step {
			return keys[i].step < keys[j].step
		}
		return keys[i].kind < keys[j].kind
	})
	log := make([]any, len(keys))
	for i, k := range keys {
		log[i] = h.entries[k]
	}
	s := h.steps
	evalSteps := s.EvalSteps
	if evalSteps == 0 {
		evalSteps = 500 // the Trainer's default, written even when it does not evaluate
	}
	saveSteps := s.SaveSteps
	if saveSteps == 0 {
		saveSteps = 500
	}
	state := map[string]any{
		"best_global_step":      nil,
		"best_metric":           nil,
		"best_model_checkpoint": nil,
		"epoch":                 round4(s.Epoch(int(globalStep))),
		"eval_steps":            evalSteps,
		"global_step":           globalStep,
		"is_hyper_param_search": false,
		"is_local_process_zero": true,
		"is_world_process_zero": true,
		"log_history":           log,
		"logging_steps":         s.LoggingSteps,
		"max_steps":             s.TotalSteps,
		"num_input_tokens_seen": 0,
		"num_train_epochs":      int(math.Ceil(float64(s.TotalSteps) / float64(s.StepsPerEpoch))),
		"save_steps":            saveSteps,
		"stateful_callbacks":    map[string]any{},
		"total_flos":            0.0,
		"train_batch_size":      h.microBatchSize,
		"trial_name":            nil,
		"trial_params":          nil,
	}
	// json.dumps(state, indent=2, sort_keys=True), as the Trainer writes it
	// (ensure_ascii: a log key or value beyond ASCII is escaped there too).
	out, err := pyjson.Marshal(state, pyjson.Options{Indent: "  "})
	if err != nil {
		panic(err) // only the types above are ever written
	}
	return out
}

// Load reads the log_history of a trainer_state.json written by
// JSON, so that a resumed run's checkpoints keep the entries before the
// checkpoint it resumed from.
func (h *History) Load(data []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var state struct {
		LogHistory []map[string]any `json:"log_history"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&state); err != nil {
		return fmt.Errorf("runspec: %s: %w", StateFile, err)
	}
	for i, e := range state.LogHistory {
		step, ok := e["step"].(float64)
		if !ok || step < 0 || step != math.Trunc(step) {
			return fmt.Errorf("runspec: %s: log_history[%d] has no whole step", StateFile, i)
		}
		e["step"] = int64(step)
		kind := entryTrain
		switch {
		case e["eval_loss"] != nil:
			kind = entryEval
		case e["train_runtime"] != nil:
			kind = entrySummary
		}
		h.entries[entryKey{int64(step), kind}] = e
	}
	return nil
}

func round4(f float64) float64 { return math.Round(f*1e4) / 1e4 }
func round3(f float64) float64 { return math.Round(f*1e3) / 1e3 }
