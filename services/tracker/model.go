package tracker

import (
	"encoding/json"
	"time"

	"github.com/eftml/eft/events"
)

// Run statuses, in the order a successful run moves through them.
const (
	StatusRequested = "requested"
	StatusValidated = "validated"
	StatusIngested  = "ingested"
	StatusTokenized = "tokenized"
	StatusTraining  = "training"
	StatusCompleted = "completed"
	StatusMerged    = "merged"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

var statusRank = map[string]int{
	StatusRequested: 1, StatusValidated: 2, StatusIngested: 3, StatusTokenized: 4,
	StatusTraining: 5, StatusCompleted: 6, StatusMerged: 7,
}

// statusOf is the status an event of type t moves a run to ("" for none).
func statusOf(t string) string {
	switch t {
	case events.TypeRunRequested:
		return StatusRequested
	case events.TypeConfigValidated:
		return StatusValidated
	case events.TypeDatasetIngested:
		return StatusIngested
	case events.TypeDatasetTokenized:
		return StatusTokenized
	case events.TypeTrainingStarted, events.TypeMetricsLogged, events.TypeCheckpointSaved, events.TypeEvalCompleted:
		return StatusTraining
	case events.TypeTrainingCompleted:
		return StatusCompleted
	case events.TypeModelMerged:
		return StatusMerged
	case events.TypeRunFailed:
		return StatusFailed
	case events.TypeRunCancelled:
		return StatusCancelled
	}
	return ""
}

// Run is one run's summary, as GET /api/runs lists it.
type Run struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// ConfigFile is the config's file name as submitted.
	ConfigFile  string    `json:"config_file,omitempty"`
	RequestedAt time.Time `json:"requested_at,omitzero"`
	// UpdatedAt is the time of the run's latest event.
	UpdatedAt time.Time `json:"updated_at"`
	// Failure is set once the run failed.
	Failure *events.RunFailed `json:"failure,omitempty"`
	// CancelReason is set once the run was cancelled.
	CancelReason string `json:"cancel_reason,omitempty"`
	// Step and TotalSteps follow training; LastMetrics are the latest value of each metric.
	Step        int64                    `json:"step,omitempty"`
	TotalSteps  int64                    `json:"total_steps,omitempty"`
	LastMetrics map[string]events.Metric `json:"last_metrics,omitempty"`
	EvalLoss    *events.Metric           `json:"eval_loss,omitempty"`
	Checkpoints int                      `json:"checkpoints,omitempty"`
	// Events counts the run's events other than metrics; MetricEvents the
	// MetricsLogged events and MetricPoints the values they carried.
	Events       int   `json:"events"`
	MetricEvents int   `json:"metric_events,omitempty"`
	MetricPoints int64 `json:"metric_points,omitempty"`
	// TraceID is the trace of the run's first event.
	TraceID string `json:"trace_id,omitempty"`
}

// Terminal reports whether the run has ended, well or badly, as far as the
// tracker can tell (a run that will merge is not done at StatusCompleted;
// the CLI knows from the config).
func (r *Run) Terminal() bool {
	switch r.Status {
	case StatusFailed, StatusCancelled, StatusMerged:
		return true
	}
	return false
}

// Event is one entry of a run's timeline: an event other than MetricsLogged,
// with its position in the stream.
type Event struct {
	Seq         uint64          `json:"seq"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Time        time.Time       `json:"time"`
	Producer    string          `json:"producer"`
	CausationID string          `json:"causation_id,omitempty"`
	TraceParent string          `json:"traceparent,omitempty"`
	Payload     json.RawMessage `json:"payload"`
}

// Point is one value of a metric series.
type Point struct {
	Step  int64         `json:"step"`
	Epoch float64       `json:"epoch,omitempty"`
	Value events.Metric `json:"value"`
	Time  time.Time     `json:"time"`
}

// traceID pulls the trace id out of a W3C traceparent ("00-<trace>-<span>-<flags>").
func traceID(traceparent string) string {
	if len(traceparent) >= 35 && traceparent[2] == '-' {
		return traceparent[3:35]
	}
	return ""
}
