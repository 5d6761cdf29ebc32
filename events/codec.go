package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// MaxEnvelopeBytes is the largest encoded envelope Decode accepts: events carry
// references, not data, and NATS's default message limit is 1 MiB.
const MaxEnvelopeBytes = 1 << 20

// ErrUnknownType is returned (wrapped) by DecodePayload for a type this build
// does not know: a newer producer's event. Consumers skip or store such events;
// they never fail on them.
var ErrUnknownType = errors.New("unknown event type")

var registry = map[string]reflect.Type{}

func register(p Payload) { registry[p.EventType()] = reflect.TypeOf(p) }

func init() {
	for _, p := range []Payload{
		RunRequested{}, ConfigValidated{}, DatasetIngested{}, DatasetTokenized{},
		TrainingStarted{}, MetricsLogged{}, CheckpointSaved{}, EvalCompleted{},
		TrainingCompleted{}, ModelMerged{}, RunFailed{}, RunCancelled{}, TrainJob{},
	} {
		register(p)
	}
}

// Types lists every type this build knows.
func Types() []string {
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	return out
}

// Encode returns the envelope's JSON after checking it.
func Encode(e Envelope) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if !json.Valid(e.Payload) {
		return nil, fmt.Errorf("events: envelope %s: payload is not valid JSON", e.ID)
	}
	// No HTML escaping: the bytes of the payload travel exactly as produced.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("events: encoding envelope %s: %w", e.ID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Decode parses an envelope and checks its fields; the payload stays raw (use
// DecodePayload or PayloadAs). Errors say what is wrong and where: the codec
// never guesses. Unknown envelope fields are ignored, so that the envelope can
// grow optional fields the way payloads do.
func Decode(data []byte) (Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return Envelope{}, fmt.Errorf("events: envelope of %d bytes is over the %d-byte limit", len(data), MaxEnvelopeBytes)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Envelope{}, fmt.Errorf("events: envelope is not a JSON object")
	}
	var e Envelope
	if err := json.Unmarshal(trimmed, &e); err != nil {
		return Envelope{}, fmt.Errorf("events: decoding envelope: %w", describeJSONError(trimmed, err))
	}
	if err := e.Validate(); err != nil {
		return Envelope{}, err
	}
	// Keep the payload compact and owned, whatever whitespace came in.
	var compact bytes.Buffer
	if err := json.Compact(&compact, e.Payload); err != nil {
		return Envelope{}, fmt.Errorf("events: envelope %s: payload: %w", e.ID, err)
	}
	e.Payload = compact.Bytes()
	return e, nil
}

// DecodePayload returns the envelope's typed payload (a value such as
// RunFailed, not a pointer) after checking it with its Validate.
func DecodePayload(e Envelope) (Payload, error) {
	t, ok := registry[e.Type]
	if !ok {
		return nil, fmt.Errorf("events: envelope %s: %w %q", e.ID, ErrUnknownType, e.Type)
	}
	ptr := reflect.New(t)
	if err := json.Unmarshal(e.Payload, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("events: %s %s payload: %w", e.Type, e.ID, describeJSONError(e.Payload, err))
	}
	p := ptr.Elem().Interface().(Payload)
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("events: %s %s payload: %w", e.Type, e.ID, err)
	}
	return p, nil
}

// PayloadAs decodes the envelope's payload as T, failing when the envelope is
// of another type.
func PayloadAs[T Payload](e Envelope) (T, error) {
	var zero T
	if e.Type != zero.EventType() {
		return zero, fmt.Errorf("events: envelope %s is %s, not %s", e.ID, e.Type, zero.EventType())
	}
	p, err := DecodePayload(e)
	if err != nil {
		return zero, err
	}
	return p.(T), nil
}

// describeJSONError adds the byte offset and the field to encoding/json's errors.
func describeJSONError(data []byte, err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("invalid JSON at byte %d: %w", syntax.Offset, err)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Errorf("field %s: want %s, got JSON %s at byte %d", field, typeErr.Type, typeErr.Value, typeErr.Offset)
	}
	return err
}
