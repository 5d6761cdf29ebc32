package events

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the codec: it must never panic, and
// whatever it accepts must survive Encode → Decode unchanged. The seed corpus
// is in testdata/fuzz/FuzzDecode plus one valid envelope of every type.
func FuzzDecode(f *testing.F) {
	for _, p := range samplePayloads() {
		env, err := New("run-1", "fuzz", p)
		if err != nil {
			f.Fatal(err)
		}
		data, err := Encode(env)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Decode(data)
		if err != nil {
			return
		}
		_, _ = DecodePayload(env) // must not panic; errors are fine
		again, err := Encode(env)
		if err != nil {
			t.Fatalf("decoded envelope does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v\n%s", err, again)
		}
		if back.ID != env.ID || back.Type != env.Type || back.RunID != env.RunID || !back.Time.Equal(env.Time) ||
			back.Producer != env.Producer || back.TraceParent != env.TraceParent || !bytes.Equal(back.Payload, env.Payload) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, back)
		}
		if !json.Valid(back.Payload) {
			t.Fatalf("payload is not JSON: %s", back.Payload)
		}
	})
}
