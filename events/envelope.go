package events

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/oklog/ulid/v2"
)

// Envelope is what travels on the bus: who said what about which run, when,
// under which trace, with the payload as raw JSON so that a consumer that does
// not know a type can still store and forward it unchanged.
type Envelope struct {
	// ID is a ULID: unique, and sortable by creation time. It is also the
	// Nats-Msg-Id, so a publish repeated within the stream's duplicate window is
	// stored once.
	ID string `json:"id"`
	// Type names the payload and its schema version, like "run.requested.v1".
	Type string `json:"type"`
	// RunID is the run the event belongs to; it is a token of the subject.
	RunID string `json:"run_id"`
	// Time is when the fact happened, in UTC.
	Time time.Time `json:"time"`
	// Producer names the service that published the event ("tracker", "ingest@host-3").
	Producer string `json:"producer"`
	// CausationID is the id of the event this one reacts to, when there is one.
	CausationID string `json:"causation_id,omitempty"`
	// TraceParent and TraceState are the W3C trace context the event was
	// published under (https://www.w3.org/TR/trace-context/).
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	// Payload is the typed payload as JSON; Decode turns it into a Payload.
	Payload json.RawMessage `json:"payload"`
}

// Payload is implemented by every event and job payload of this package.
type Payload interface {
	// EventType is the versioned type name, like "run.requested.v1".
	EventType() string
	// Validate reports the first required field that is missing or wrong.
	Validate() error
}

// New wraps payload into a fresh envelope for runID, stamped now with a new id.
func New(runID, producer string, payload Payload) (Envelope, error) {
	return build(NewID(), runID, producer, "", time.Now(), payload)
}

// NewCausedBy wraps payload into an envelope that reacts to cause: same run,
// CausationID set, and an id derived from the cause's id and the payload type,
// so that a handler that sees cause twice publishes the same event id twice and
// the bus stores it once. discriminator separates several events of the same
// type caused by one event (use "" when there is only one).
func NewCausedBy(cause Envelope, producer string, payload Payload, discriminator string) (Envelope, error) {
	id, err := DeriveID(cause.ID, payload.EventType(), discriminator)
	if err != nil {
		return Envelope{}, err
	}
	return build(id, cause.RunID, producer, cause.ID, time.Now(), payload)
}

func build(id, runID, producer, causation string, at time.Time, payload Payload) (Envelope, error) {
	if payload == nil {
		return Envelope{}, fmt.Errorf("events: nil payload")
	}
	if err := payload.Validate(); err != nil {
		return Envelope{}, fmt.Errorf("events: %s: %w", payload.EventType(), err)
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return Envelope{}, fmt.Errorf("events: encoding %s payload: %w", payload.EventType(), err)
	}
	env := Envelope{
		ID:          id,
		Type:        payload.EventType(),
		RunID:       runID,
		Time:        at.UTC(),
		Producer:    producer,
		CausationID: causation,
		Payload:     raw,
	}
	if err := env.Validate(); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// NewID returns a new ULID string. Ids made by one process are strictly
// increasing.
func NewID() string { return ulid.Make().String() }

// NewRunID returns a new run id (a ULID, so runs sort by creation time).
func NewRunID() string { return NewID() }

// DeriveID returns a ULID that keeps the timestamp of causeID and whose random
// part is a hash of causeID, eventType and discriminator: the same inputs give
// the same id on every machine.
func DeriveID(causeID, eventType, discriminator string) (string, error) {
	cause, err := ulid.ParseStrict(causeID)
	if err != nil {
		return "", fmt.Errorf("events: cause id %q: %w", causeID, err)
	}
	sum := sha256.Sum256([]byte(causeID + "\x00" + eventType + "\x00" + discriminator))
	var id ulid.ULID
	if err := id.SetTime(cause.Time()); err != nil {
		return "", err
	}
	if err := id.SetEntropy(sum[:10]); err != nil {
		return "", err
	}
	return id.String(), nil
}

var (
	typePattern  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.v[1-9][0-9]*$`)
	tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// ValidRunID reports whether id can be a run id: 1 to 64 letters, digits,
// '-' or '_', so that it is a single NATS subject token.
func ValidRunID(id string) bool { return tokenPattern.MatchString(id) }

// Validate checks the envelope's own fields (not the payload's).
func (e Envelope) Validate() error {
	if _, err := ulid.ParseStrict(e.ID); err != nil {
		return fmt.Errorf("events: envelope id %q is not a ULID: %w", e.ID, err)
	}
	if !typePattern.MatchString(e.Type) {
		return fmt.Errorf("events: envelope %s: type %q is not like \"run.requested.v1\"", e.ID, e.Type)
	}
	if !ValidRunID(e.RunID) {
		return fmt.Errorf("events: envelope %s: run_id %q must be 1-64 letters, digits, '-' or '_'", e.ID, e.RunID)
	}
	if e.Time.IsZero() {
		return fmt.Errorf("events: envelope %s: time is missing", e.ID)
	}
	if e.Producer == "" {
		return fmt.Errorf("events: envelope %s: producer is missing", e.ID)
	}
	if e.CausationID != "" {
		if _, err := ulid.ParseStrict(e.CausationID); err != nil {
			return fmt.Errorf("events: envelope %s: causation_id %q is not a ULID", e.ID, e.CausationID)
		}
	}
	if len(e.Payload) == 0 || e.Payload[0] != '{' {
		return fmt.Errorf("events: envelope %s: payload must be a JSON object", e.ID)
	}
	return nil
}

// Subject is the subject this envelope is published on.
func (e Envelope) Subject() string {
	if e.Type == TypeTrainJob {
		var job struct {
			Pool string `json:"pool"`
		}
		_ = json.Unmarshal(e.Payload, &job) // a payload that does not decode fails Validate
		return PoolJobSubject(job.Pool, e.RunID)
	}
	return Subject(e.RunID, e.Type)
}
