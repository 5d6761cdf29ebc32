package events

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testRef = ArtifactRef{Bucket: "eft-artifacts", Name: "sha256-ab", SHA256: strings.Repeat("ab", 32), Size: 42}

// samplePayloads has one valid payload of every registered type.
func samplePayloads() []Payload {
	files := []FileRef{{Path: "adapter_model.safetensors", Artifact: testRef}}
	evalRef := testRef
	return []Payload{
		RunRequested{Config: ConfigSource{FileName: "cfg.yml", YAML: "base_model: x\n", Overrides: []string{"--lora-r", "8"}}, WorkDir: "/w", Host: "h", User: "u"},
		ConfigValidated{Resolved: "base_model: x\n", Warnings: []ConfigIssue{{File: "cfg.yml", Line: 3, Column: 1, Key: "wandb_project", Message: "ignored"}}},
		DatasetIngested{Train: testRef, Test: &evalRef, Format: "jsonl", Rows: 10, TestRows: 1, Rejected: 1,
			RejectedSamples: []RowIssue{{File: "a.jsonl", Line: 7, Reason: "missing field \"text\""}},
			Sources:         []DatasetSource{{Path: "a.jsonl", Type: "completion", Rows: 11, Rejected: 1}},
			Schema:          []SchemaField{{Name: "text", Type: "string"}}},
		DatasetTokenized{Train: testRef, Eval: &evalRef, Format: "eftbatch.v1", Samples: 10, EvalSamples: 2, Tokens: 1000, TrainedTokens: 600, Dropped: 3, Duplicates: 1,
			MicroBatches: 4, SequenceLen: 256, MicroBatchSize: 1, SamplePacking: true, PackingEfficiency: 0.99, CacheKey: "k", Tokenizer: files},
		TrainingStarted{Worker: "trainer@h", Device: "cpu", Method: "lora", TotalSteps: 100, Epochs: 1, ResumedFromStep: 20, Attempt: 2},
		MetricsLogged{Step: 3, Epoch: 0.25, Values: map[string]Metric{"loss": 2.5, "learning_rate": 2e-4, "grad_norm": Metric(math.NaN())}},
		CheckpointSaved{Step: 50, Epoch: 0.5, Name: "checkpoint-50", Kind: "adapter", Files: files},
		EvalCompleted{Step: 50, Loss: 1.5, Perplexity: Metric(math.Exp(1.5)), StartedAt: time.Unix(10, 0).UTC(), FinishedAt: time.Unix(20, 0).UTC(),
			Generations: []Generation{{Prompt: "hi", Output: "there"}}},
		TrainingCompleted{Steps: 100, Epochs: 1, FinalLoss: 1.2, Kind: "adapter", Files: files, RuntimeSeconds: 12.5},
		ModelMerged{Dir: "merged", Files: files},
		RunFailed{Stage: StageValidate, Error: "cfg.yml:3:1: datasets[0].type: unknown", Issues: []ConfigIssue{{File: "cfg.yml", Line: 3, Key: "datasets[0].type", Message: "unknown"}}},
		RunCancelled{Reason: "user", RequestedBy: "cli"},
		TrainJob{Config: "base_model: x\n", Train: testRef, Format: "eftbatch.v1", MicroBatches: 4, SequenceLen: 256, MicroBatchSize: 1},
	}
}

func TestEveryTypeRoundTrips(t *testing.T) {
	payloads := samplePayloads()
	if len(payloads) != len(registry) {
		t.Fatalf("samplePayloads has %d types, registry %d: add the new type to the test", len(payloads), len(registry))
	}
	runID := NewRunID()
	for _, p := range payloads {
		env, err := New(runID, "test", p)
		if err != nil {
			t.Fatalf("%s: New: %v", p.EventType(), err)
		}
		data, err := Encode(env)
		if err != nil {
			t.Fatalf("%s: Encode: %v", p.EventType(), err)
		}
		back, err := Decode(data)
		if err != nil {
			t.Fatalf("%s: Decode: %v", p.EventType(), err)
		}
		if back.ID != env.ID || back.Type != p.EventType() || back.RunID != runID || !back.Time.Equal(env.Time) {
			t.Fatalf("%s: envelope changed: %+v vs %+v", p.EventType(), back, env)
		}
		got, err := DecodePayload(back)
		if err != nil {
			t.Fatalf("%s: DecodePayload: %v", p.EventType(), err)
		}
		// NaN != NaN: compare through JSON, which writes NaN as "NaN".
		want, _ := json.Marshal(p)
		have, _ := json.Marshal(got)
		if string(want) != string(have) {
			t.Fatalf("%s: payload changed:\n want %s\n have %s", p.EventType(), want, have)
		}
		if reflect.TypeOf(got) != reflect.TypeOf(p) {
			t.Fatalf("%s: decoded as %T", p.EventType(), got)
		}
	}
}

func TestMetricCarriesNaNAndInf(t *testing.T) {
	in := MetricsLogged{Step: 1, Values: map[string]Metric{"nan": Metric(math.NaN()), "pinf": Metric(math.Inf(1)), "ninf": Metric(math.Inf(-1)), "x": 0.125}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"step":1,"values":{"nan":"NaN","ninf":"-Inf","pinf":"+Inf","x":0.125}}`; string(data) != want {
		t.Fatalf("got %s, want %s", data, want)
	}
	var out MetricsLogged
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(out.Values["nan"])) || !math.IsInf(float64(out.Values["pinf"]), 1) || !math.IsInf(float64(out.Values["ninf"]), -1) || out.Values["x"] != 0.125 {
		t.Fatalf("decoded %v", out.Values)
	}
	if err := json.Unmarshal([]byte(`{"step":1,"values":{"x":"lots"}}`), &out); err == nil || !strings.Contains(err.Error(), `"lots"`) {
		t.Fatalf("bad metric string: err = %v", err)
	}
}

func TestDecodeErrorsNameTheProblem(t *testing.T) {
	good, err := New("run-1", "test", RunFailed{Stage: StageIngest, Error: "boom"})
	if err != nil {
		t.Fatal(err)
	}
	encode := func(mut func(m map[string]any)) []byte {
		data, _ := json.Marshal(good)
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		mut(m)
		out, _ := json.Marshal(m)
		return out
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a JSON object"},
		{"array", []byte(`[1]`), "not a JSON object"},
		{"truncated", []byte(`{"id":"01`), "invalid JSON"},
		{"bad id", encode(func(m map[string]any) { m["id"] = "nope" }), `id "nope" is not a ULID`},
		{"bad type", encode(func(m map[string]any) { m["type"] = "RunFailed" }), `type "RunFailed"`},
		{"unversioned type", encode(func(m map[string]any) { m["type"] = "run.failed" }), `type "run.failed"`},
		{"run id with dot", encode(func(m map[string]any) { m["run_id"] = "a.b" }), `run_id "a.b"`},
		{"no time", encode(func(m map[string]any) { delete(m, "time") }), "time is missing"},
		{"time wrong type", encode(func(m map[string]any) { m["time"] = 5 }), "Time.UnmarshalJSON"},
		{"no producer", encode(func(m map[string]any) { delete(m, "producer") }), "producer is missing"},
		{"payload not object", encode(func(m map[string]any) { m["payload"] = []int{1} }), "payload must be a JSON object"},
		{"no payload", encode(func(m map[string]any) { delete(m, "payload") }), "payload must be a JSON object"},
		{"too big", append([]byte(`{"x":"`), make([]byte, MaxEnvelopeBytes)...), "over the"},
	}
	for _, c := range cases {
		_, err := Decode(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
	}

	// Payload-level errors come from DecodePayload, naming the field.
	bad := good
	bad.Payload = json.RawMessage(`{"stage":7,"error":"x"}`)
	if _, err := DecodePayload(bad); err == nil || !strings.Contains(err.Error(), "field stage") {
		t.Errorf("wrong field type: err = %v", err)
	}
	bad.Payload = json.RawMessage(`{"error":"x"}`)
	if _, err := DecodePayload(bad); err == nil || !strings.Contains(err.Error(), "stage is missing") {
		t.Errorf("missing field: err = %v", err)
	}
	bad.Type = "run.exploded.v1"
	if _, err := DecodePayload(bad); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: err = %v", err)
	}
	if _, err := PayloadAs[RunCancelled](good); err == nil || !strings.Contains(err.Error(), "not run.cancelled.v1") {
		t.Errorf("PayloadAs wrong type: err = %v", err)
	}
}

// A newer producer may add optional fields: older consumers decode the event
// and ignore them (the schema-evolution rule in README.md).
func TestUnknownFieldsAreIgnored(t *testing.T) {
	env, _ := New("r", "test", RunFailed{Stage: "train", Error: "oom"})
	env.Payload = json.RawMessage(`{"stage":"train","error":"oom","retryable":true,"gpu":"H100"}`)
	data, _ := json.Marshal(env)
	data = []byte(strings.Replace(string(data), `{"id"`, `{"schema":"x","id"`, 1))
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PayloadAs[RunFailed](back)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stage != "train" || !p.Retryable {
		t.Fatalf("decoded %+v", p)
	}
}

func TestNewRejectsInvalidPayloads(t *testing.T) {
	cases := []Payload{
		RunFailed{Stage: "train"},
		RunRequested{Config: ConfigSource{FileName: "big.yml", YAML: strings.Repeat("x", MaxConfigBytes+1)}},
		MetricsLogged{Step: 1},
		CheckpointSaved{Step: 1, Name: "c", Kind: "adapter"},
		DatasetIngested{Train: ArtifactRef{Bucket: "b", Name: "n", SHA256: "XYZ"}, Format: "jsonl"},
		DatasetTokenized{Train: testRef, Format: "f", SequenceLen: 8, MicroBatchSize: 1, PackingEfficiency: 1.5},
		TrainJob{Config: "c", Train: testRef, Format: "f"},
	}
	for _, p := range cases {
		if _, err := New("r", "test", p); err == nil {
			t.Errorf("%s %+v: New accepted it", p.EventType(), p)
		}
	}
	if _, err := New("bad run", "test", RunCancelled{}); err == nil {
		t.Errorf("run id with a space accepted")
	}
}

func TestCausedEventsHaveStableIDs(t *testing.T) {
	cause, _ := New("run-7", "cli", RunRequested{Config: ConfigSource{FileName: "c.yml"}})
	a, err := NewCausedBy(cause, "validate", RunFailed{Stage: StageValidate, Error: "x"}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewCausedBy(cause, "validate", RunFailed{Stage: StageValidate, Error: "x"}, "")
	c, _ := NewCausedBy(cause, "validate", ConfigValidated{Resolved: "x"}, "")
	d, _ := NewCausedBy(cause, "validate", RunFailed{Stage: StageValidate, Error: "x"}, "second")
	if a.ID != b.ID {
		t.Fatalf("same cause and type gave %s and %s", a.ID, b.ID)
	}
	if a.ID == c.ID || a.ID == d.ID {
		t.Fatalf("different type or discriminator gave the same id %s", a.ID)
	}
	if a.RunID != "run-7" || a.CausationID != cause.ID {
		t.Fatalf("caused event: %+v", a)
	}
	if a.ID[:10] != cause.ID[:10] {
		t.Fatalf("derived id %s does not keep the cause's time %s", a.ID, cause.ID)
	}
	if _, err := DeriveID("nope", "x.v1", ""); err == nil {
		t.Fatal("DeriveID accepted a bad cause id")
	}
}

func TestIDsIncrease(t *testing.T) {
	prev := NewID()
	for range 1000 {
		next := NewID()
		if next <= prev {
			t.Fatalf("%s after %s", next, prev)
		}
		prev = next
	}
}

func TestSubjects(t *testing.T) {
	env, _ := New("01J9ZRUN", "test", MetricsLogged{Step: 1, Values: map[string]Metric{"loss": 1}})
	if got, want := env.Subject(), "eft.run.01J9ZRUN.metrics.logged.v1"; got != want {
		t.Fatalf("Subject = %q, want %q", got, want)
	}
	run, typ, err := ParseSubject(env.Subject())
	if err != nil || run != "01J9ZRUN" || typ != TypeMetricsLogged {
		t.Fatalf("ParseSubject = %q %q %v", run, typ, err)
	}
	job, _ := New("01J9ZRUN", "test", TrainJob{Config: "c", Train: testRef, Format: "f", MicroBatches: 1, SequenceLen: 8, MicroBatchSize: 1})
	if got := job.Subject(); got != "eft.jobs.train.01J9ZRUN" {
		t.Fatalf("job subject %q", got)
	}
	for _, bad := range []string{"eft.jobs.train.x", "eft.run.x", "eft.run.a b.run.failed.v1", "eft.run.x.RUN.v1"} {
		if _, _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) accepted", bad)
		}
	}
	if RunSubjects("r") != "eft.run.r.>" || TypeSubjects(TypeRunFailed) != "eft.run.*.run.failed.v1" {
		t.Fatal("filters")
	}
}

func TestConfigIssueString(t *testing.T) {
	cases := map[string]ConfigIssue{
		"cfg.yml:12:3: datasets[0].type: unknown type": {File: "cfg.yml", Line: 12, Column: 3, Key: "datasets[0].type", Message: "unknown type"},
		"cfg.yml:4: lr: bad":                           {File: "cfg.yml", Line: 4, Key: "lr", Message: "bad"},
		"boom":                                         {Message: "boom"},
	}
	for want, issue := range cases {
		if got := issue.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
