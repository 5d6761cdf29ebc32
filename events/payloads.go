package events

import (
	"fmt"
	"time"
)

// Event and job types. The suffix is the schema version (see README.md).
const (
	TypeRunRequested      = "run.requested.v1"
	TypeConfigValidated   = "config.validated.v1"
	TypeDatasetIngested   = "dataset.ingested.v1"
	TypeDatasetTokenized  = "dataset.tokenized.v1"
	TypeTrainingStarted   = "training.started.v1"
	TypeMetricsLogged     = "metrics.logged.v1"
	TypeCheckpointSaved   = "checkpoint.saved.v1"
	TypeEvalCompleted     = "eval.completed.v1"
	TypeTrainingCompleted = "training.completed.v1"
	TypeModelMerged       = "model.merged.v1"
	TypeRunFailed         = "run.failed.v1"
	TypeRunCancelled      = "run.cancelled.v1"
	TypeTrainJob          = "train.job.v1"
)

// Stage names, as RunFailed.Stage and the tracker's run status use them.
const (
	StageValidate = "validate"
	StageIngest   = "ingest"
	StageTokenize = "tokenize"
	StageTrain    = "train"
	StageEvaluate = "evaluate"
	StageMerge    = "merge"
)

// MaxConfigBytes bounds the config text a RunRequested may carry: events stay
// small, and a config larger than this is not a config.
const MaxConfigBytes = 256 << 10

// ConfigSource is the config exactly as the user submitted it.
type ConfigSource struct {
	// FileName is the name the user gave (for messages like "cfg.yml:12:3").
	FileName string `json:"file_name"`
	// YAML is the file's text, unchanged.
	YAML string `json:"yaml"`
	// Overrides are the CLI overrides in order, like ["--learning-rate", "2e-4"].
	Overrides []string `json:"overrides,omitempty"`
}

// RunRequested starts a run. Published by `eft train` / `eft submit`;
// consumed by the validate stage and the tracker.
type RunRequested struct {
	Config ConfigSource `json:"config"`
	// WorkDir is the submitter's working directory: relative paths in the
	// config resolve against it when the services share its file system.
	WorkDir string `json:"work_dir,omitempty"`
	// Host and User say where the run was submitted from.
	Host string `json:"host,omitempty"`
	User string `json:"user,omitempty"`
}

func (RunRequested) EventType() string { return TypeRunRequested }

func (p RunRequested) Validate() error {
	if p.Config.FileName == "" {
		return fmt.Errorf("config.file_name is missing")
	}
	if len(p.Config.YAML) > MaxConfigBytes {
		return fmt.Errorf("config %s is %d bytes; at most %d fit in an event", p.Config.FileName, len(p.Config.YAML), MaxConfigBytes)
	}
	return nil
}

// ConfigIssue is one problem found in a config, located in its file.
type ConfigIssue struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Key     string `json:"key,omitempty"` // like "datasets[0].type"
	Message string `json:"message"`
}

// String is "file:line:col: key: message", leaving out what is unknown.
func (i ConfigIssue) String() string {
	s := ""
	if i.File != "" {
		s = i.File
		if i.Line > 0 {
			s += fmt.Sprintf(":%d", i.Line)
			if i.Column > 0 {
				s += fmt.Sprintf(":%d", i.Column)
			}
		}
		s += ": "
	}
	if i.Key != "" {
		s += i.Key + ": "
	}
	return s + i.Message
}

// ConfigValidated says the run's config parsed and passed validation.
// Published by the validate stage; consumed by ingest (the next stage) and the tracker.
type ConfigValidated struct {
	// Resolved is the config with every default filled in, as YAML: the one
	// every later stage reads, so that all of them see the same values.
	Resolved string `json:"resolved"`
	// Warnings are issues that do not stop the run (unknown keys, ignored keys).
	Warnings []ConfigIssue `json:"warnings,omitempty"`
	// WorkDir is RunRequested.WorkDir, passed on: relative paths in the
	// config (datasets, base_model, output_dir) resolve against it.
	WorkDir string `json:"work_dir,omitempty"`
}

func (ConfigValidated) EventType() string { return TypeConfigValidated }

func (p ConfigValidated) Validate() error {
	if p.Resolved == "" {
		return fmt.Errorf("resolved config is empty")
	}
	return nil
}

// RowIssue is a dataset row that was rejected, and why.
type RowIssue struct {
	File   string `json:"file"`
	Line   int64  `json:"line,omitempty"`
	Reason string `json:"reason"`
}

// SchemaField is one column seen in a dataset.
type SchemaField struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// DatasetSource is what ingest made of one entry of the config's datasets list.
type DatasetSource struct {
	Path     string `json:"path"`
	Type     string `json:"type,omitempty"`
	Rows     int64  `json:"rows"`
	Rejected int64  `json:"rejected,omitempty"`
}

// DatasetIngested says the run's datasets were read, merged, split and stored
// as normalized rows. Published by ingest; consumed by the tokenizer and the tracker.
type DatasetIngested struct {
	// Train holds the normalized rows of datasets, merged in config order
	// (the validation split is made after tokenizing, as Axolotl makes it:
	// see DatasetTokenized); Test those of test_datasets. Format says how
	// they are encoded.
	Train  ArtifactRef  `json:"train"`
	Test   *ArtifactRef `json:"test,omitempty"`
	Format string       `json:"format"`

	Rows     int64 `json:"rows"`
	TestRows int64 `json:"test_rows,omitempty"`
	// Rejected counts rows that were bad and skipped; RejectedSamples lists the
	// first few with their file and line.
	Rejected        int64           `json:"rejected,omitempty"`
	RejectedSamples []RowIssue      `json:"rejected_samples,omitempty"`
	Sources         []DatasetSource `json:"sources,omitempty"`
	Schema          []SchemaField   `json:"schema,omitempty"`
	// CacheHit is true when an identical ingest was found and reused.
	CacheHit bool `json:"cache_hit,omitempty"`
}

func (DatasetIngested) EventType() string { return TypeDatasetIngested }

func (p DatasetIngested) Validate() error {
	if err := p.Train.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if p.Format == "" {
		return fmt.Errorf("format is missing")
	}
	if p.Rows < 0 || p.Rejected < 0 {
		return fmt.Errorf("negative row counts")
	}
	return validateOptionalRef("test", p.Test)
}

// DatasetTokenized says the rows were tokenized, masked and packed into
// micro-batches. Published by the tokenizer (with the TrainJob); consumed by
// the tracker and the evaluator.
type DatasetTokenized struct {
	// Train holds the packed training micro-batches; Eval the validation ones.
	Train  ArtifactRef  `json:"train"`
	Eval   *ArtifactRef `json:"eval,omitempty"`
	Format string       `json:"format"` // batch encoding and its version

	// Samples are the training samples; EvalSamples the evaluation ones
	// (the val_set_size split, else test_datasets).
	Samples          int64 `json:"samples"`
	EvalSamples      int64 `json:"eval_samples,omitempty"`
	Tokens           int64 `json:"tokens"`
	TrainedTokens    int64 `json:"trained_tokens"`
	MicroBatches     int64 `json:"micro_batches"`
	EvalMicroBatches int64 `json:"eval_micro_batches,omitempty"`
	SequenceLen      int   `json:"sequence_len"`
	MicroBatchSize   int   `json:"micro_batch_size"`
	SamplePacking    bool  `json:"sample_packing,omitempty"`
	// PackingEfficiency is real tokens / (rows × sequence_len), in [0, 1].
	PackingEfficiency float64 `json:"packing_efficiency,omitempty"`
	// Dropped counts samples left out by the length policy or for having
	// nothing to train on; Duplicates those dataset_exact_deduplication
	// removed; Truncated those cut to sequence_len.
	Dropped    int64 `json:"dropped,omitempty"`
	Duplicates int64 `json:"duplicates,omitempty"`
	Truncated  int64 `json:"truncated,omitempty"`
	// CacheKey is the hash of everything the result depends on; CacheHit says
	// the result was reused rather than computed.
	CacheKey string `json:"cache_key,omitempty"`
	CacheHit bool   `json:"cache_hit,omitempty"`
	// Tokenizer holds the tokenizer files the ids were made with, for remote trainers.
	Tokenizer []FileRef `json:"tokenizer,omitempty"`
}

func (DatasetTokenized) EventType() string { return TypeDatasetTokenized }

func (p DatasetTokenized) Validate() error {
	if err := p.Train.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if p.Format == "" {
		return fmt.Errorf("format is missing")
	}
	if p.SequenceLen <= 0 || p.MicroBatchSize <= 0 {
		return fmt.Errorf("sequence_len %d and micro_batch_size %d must be positive", p.SequenceLen, p.MicroBatchSize)
	}
	if p.PackingEfficiency < 0 || p.PackingEfficiency > 1 {
		return fmt.Errorf("packing_efficiency %g is outside [0, 1]", p.PackingEfficiency)
	}
	if err := validateOptionalRef("eval", p.Eval); err != nil {
		return err
	}
	return validateFiles("tokenizer", p.Tokenizer, false)
}

// TrainingStarted says a trainer took the run's job and began (or resumed) training.
// Published by the trainer; consumed by the tracker.
type TrainingStarted struct {
	Worker                    string `json:"worker"` // which trainer process
	Device                    string `json:"device,omitempty"`
	Method                    string `json:"method"` // "lora", "qlora" or "full"
	TotalSteps                int64  `json:"total_steps"`
	Epochs                    int    `json:"epochs,omitempty"`
	MicroBatchSize            int    `json:"micro_batch_size,omitempty"`
	GradientAccumulationSteps int    `json:"gradient_accumulation_steps,omitempty"`
	SequenceLen               int    `json:"sequence_len,omitempty"`
	WorldSize                 int    `json:"world_size,omitempty"`
	TrainableParams           int64  `json:"trainable_params,omitempty"`
	TotalParams               int64  `json:"total_params,omitempty"`
	// ResumedFromStep is the checkpoint step training continues from (0: a fresh start).
	ResumedFromStep int64 `json:"resumed_from_step,omitempty"`
	// Attempt counts how many times the job was started, 1 for the first.
	Attempt int `json:"attempt,omitempty"`
}

func (TrainingStarted) EventType() string { return TypeTrainingStarted }

func (p TrainingStarted) Validate() error {
	if p.Worker == "" {
		return fmt.Errorf("worker is missing")
	}
	if p.Method == "" {
		return fmt.Errorf("method is missing")
	}
	if p.TotalSteps < 0 || p.ResumedFromStep < 0 {
		return fmt.Errorf("negative step counts")
	}
	return nil
}

// MetricsLogged carries the values logged at one optimizer step, by name:
// "loss", "learning_rate", "grad_norm", "tokens_per_second", "elapsed_seconds",
// "memory_bytes", ... Published by the trainer every logging_steps; consumed by
// the tracker (metric series) and the CLI display.
type MetricsLogged struct {
	Step   int64             `json:"step"`
	Epoch  float64           `json:"epoch,omitempty"`
	Values map[string]Metric `json:"values"`
}

func (MetricsLogged) EventType() string { return TypeMetricsLogged }

func (p MetricsLogged) Validate() error {
	if p.Step < 0 {
		return fmt.Errorf("step %d is negative", p.Step)
	}
	if len(p.Values) == 0 {
		return fmt.Errorf("values is empty")
	}
	for name := range p.Values {
		if name == "" {
			return fmt.Errorf("values has an empty metric name")
		}
	}
	return nil
}

// CheckpointSaved says the trainer stored a checkpoint: weights (adapter or
// full) and trainer state, each file an artifact. Published by the trainer;
// consumed by the evaluator, the trainer that resumes the run, and the tracker.
type CheckpointSaved struct {
	Step  int64   `json:"step"`
	Epoch float64 `json:"epoch,omitempty"`
	// Name is the folder name in output_dir, like "checkpoint-100".
	Name  string    `json:"name"`
	Kind  string    `json:"kind"` // "adapter" or "full"
	Files []FileRef `json:"files"`
}

func (CheckpointSaved) EventType() string { return TypeCheckpointSaved }

func (p CheckpointSaved) Validate() error {
	if p.Step < 0 {
		return fmt.Errorf("step %d is negative", p.Step)
	}
	if p.Name == "" || p.Kind == "" {
		return fmt.Errorf("name and kind are required")
	}
	return validateFiles("files", p.Files, true)
}

// Generation is one sample generation made during evaluation.
type Generation struct {
	Prompt string `json:"prompt"`
	Output string `json:"output"`
}

// EvalCompleted carries the evaluation of one checkpoint on the validation split.
// Published by the evaluator; consumed by the tracker and the CLI display.
type EvalCompleted struct {
	Step        int64        `json:"step"`
	Epoch       float64      `json:"epoch,omitempty"`
	Checkpoint  string       `json:"checkpoint,omitempty"`
	Loss        Metric       `json:"loss"`
	Perplexity  Metric       `json:"perplexity"`
	Samples     int64        `json:"samples,omitempty"`
	Tokens      int64        `json:"tokens,omitempty"`
	StartedAt   time.Time    `json:"started_at,omitempty"`
	FinishedAt  time.Time    `json:"finished_at,omitempty"`
	Generations []Generation `json:"generations,omitempty"`
}

func (EvalCompleted) EventType() string { return TypeEvalCompleted }

func (p EvalCompleted) Validate() error {
	if p.Step < 0 {
		return fmt.Errorf("step %d is negative", p.Step)
	}
	if !p.StartedAt.IsZero() && !p.FinishedAt.IsZero() && p.FinishedAt.Before(p.StartedAt) {
		return fmt.Errorf("finished_at is before started_at")
	}
	return nil
}

// TrainingCompleted says training finished and names the final outputs.
// Published by the trainer; consumed by the merger, the CLI (copies outputs to
// output_dir) and the tracker.
type TrainingCompleted struct {
	Steps     int64   `json:"steps"`
	Epochs    float64 `json:"epochs,omitempty"`
	FinalLoss Metric  `json:"final_loss"`
	Kind      string  `json:"kind"` // "adapter" or "full"
	// Files are the final outputs, paths relative to output_dir.
	Files          []FileRef `json:"files"`
	RuntimeSeconds float64   `json:"runtime_seconds,omitempty"`
	TrainedTokens  int64     `json:"trained_tokens,omitempty"`
}

func (TrainingCompleted) EventType() string { return TypeTrainingCompleted }

func (p TrainingCompleted) Validate() error {
	if p.Kind == "" {
		return fmt.Errorf("kind is missing")
	}
	return validateFiles("files", p.Files, true)
}

// ModelMerged says a LoRA adapter was merged into its base model; Files is a
// Hugging Face model directory. Published by the merger; consumed by the CLI
// and the tracker.
type ModelMerged struct {
	Files []FileRef `json:"files"`
	// Dir is the folder under output_dir the files belong in, like "merged".
	Dir string `json:"dir"`
}

func (ModelMerged) EventType() string { return TypeModelMerged }

func (p ModelMerged) Validate() error {
	if p.Dir == "" {
		return fmt.Errorf("dir is missing")
	}
	return validateFiles("files", p.Files, true)
}

// RunFailed ends a run. Published by whichever stage failed; consumed by the
// tracker, the CLI, and every stage (to stop work on the run).
type RunFailed struct {
	// Stage is one of the Stage* constants: where it failed.
	Stage string `json:"stage"`
	Error string `json:"error"`
	// Retryable says a new attempt with the same inputs may succeed (a lost
	// worker, a full disk), as opposed to a bad config or data.
	Retryable bool `json:"retryable"`
	// Issues locate config problems (stage "validate") by file, line and key.
	Issues []ConfigIssue `json:"issues,omitempty"`
}

func (RunFailed) EventType() string { return TypeRunFailed }

func (p RunFailed) Validate() error {
	if p.Stage == "" {
		return fmt.Errorf("stage is missing")
	}
	if p.Error == "" {
		return fmt.Errorf("error is missing")
	}
	return nil
}

// RunCancelled asks every stage to stop the run and records that it was
// stopped. Published by `eft cancel` (or a service that gives up on the run);
// consumed by the trainer (stops at the next step), the other stages, and the tracker.
type RunCancelled struct {
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requested_by,omitempty"`
}

func (RunCancelled) EventType() string { return TypeRunCancelled }

func (RunCancelled) Validate() error { return nil }

// TrainJob is the work-queue message that asks a trainer to train a run. It
// travels in an Envelope like every event, on JobSubject(run id) in the jobs
// stream, and is acked only when the run's training ended. Published by the
// tokenizer stage; consumed by exactly one trainer at a time.
type TrainJob struct {
	// Config is the resolved config (ConfigValidated.Resolved).
	Config string `json:"config"`
	// Train and Eval are the packed micro-batches (DatasetTokenized.Train/Eval).
	Train  ArtifactRef  `json:"train"`
	Eval   *ArtifactRef `json:"eval,omitempty"`
	Format string       `json:"format"`
	// MicroBatches, SequenceLen and MicroBatchSize describe Train.
	MicroBatches   int64 `json:"micro_batches"`
	SequenceLen    int   `json:"sequence_len"`
	MicroBatchSize int   `json:"micro_batch_size"`
	// Tokenizer and BaseModel are the files a trainer without the submitter's
	// file system needs; empty when the trainers share it.
	Tokenizer []FileRef `json:"tokenizer,omitempty"`
	BaseModel []FileRef `json:"base_model,omitempty"`
	// WorkDir is RunRequested.WorkDir, for relative paths in Config.
	WorkDir string `json:"work_dir,omitempty"`
	// Pool is the config's trainer_pool: only trainers serving that pool take
	// the job (it is queued on PoolJobSubject). Empty: any default trainer.
	Pool string `json:"pool,omitempty"`
	// Seat tells a data-parallel run's (world_size N) jobs apart: 0 is the
	// job the tokenizer queued; the trainer that takes it queues seats
	// 1..N-1, so that N trainers join the run. Ranks are claimed at the
	// rendezvous (shared/rendezvous), not given by the seat.
	Seat int `json:"seat,omitempty"`
}

func (TrainJob) EventType() string { return TypeTrainJob }

func (p TrainJob) Validate() error {
	if p.Config == "" {
		return fmt.Errorf("config is empty")
	}
	if err := p.Train.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if p.Format == "" {
		return fmt.Errorf("format is missing")
	}
	if p.MicroBatches <= 0 || p.SequenceLen <= 0 || p.MicroBatchSize <= 0 {
		return fmt.Errorf("micro_batches, sequence_len and micro_batch_size must be positive")
	}
	if p.Seat < 0 {
		return fmt.Errorf("seat %d is negative", p.Seat)
	}
	if err := validateOptionalRef("eval", p.Eval); err != nil {
		return err
	}
	if err := validateFiles("tokenizer", p.Tokenizer, false); err != nil {
		return err
	}
	if p.Pool != "" && !ValidRunID(p.Pool) {
		return fmt.Errorf("pool %q must be letters, digits, '-' or '_'", p.Pool)
	}
	return validateFiles("base_model", p.BaseModel, false)
}

// Terminal reports whether an event of eventType ends its run: nothing about
// the run happens after it.
func Terminal(eventType string) bool {
	switch eventType {
	case TypeRunFailed, TypeRunCancelled:
		return true
	}
	return false
}
