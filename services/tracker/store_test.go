package tracker

import (
	"math"
	"strings"
	"testing"

	"github.com/eftml/eft/events"
)

var artifact = events.ArtifactRef{Bucket: "b", Name: "n", SHA256: strings.Repeat("a", 64), Size: 3}

func mustEnv(t testing.TB, runID string, p events.Payload) events.Envelope {
	t.Helper()
	env, err := events.New(runID, "test", p)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func openTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreProjectsARunsLifecycle(t *testing.T) {
	s := openTestStore(t)
	run := "run-1"
	files := []events.FileRef{{Path: "adapter_model.safetensors", Artifact: artifact}}
	seq := uint64(0)
	apply := func(p events.Payload) events.Envelope {
		t.Helper()
		seq++
		env := mustEnv(t, run, p)
		env.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		if ok, err := s.Apply(env, seq); err != nil || !ok {
			t.Fatalf("apply %s: %v %v", env.Type, ok, err)
		}
		return env
	}
	req := apply(events.RunRequested{Config: events.ConfigSource{FileName: "cfg.yml", YAML: "x: 1"}})
	apply(events.ConfigValidated{Resolved: "x: 1"})
	apply(events.TrainingStarted{Worker: "w", Method: "lora", TotalSteps: 10})
	for step := int64(1); step <= 3; step++ {
		apply(events.MetricsLogged{Step: step, Epoch: float64(step) / 10, Values: map[string]events.Metric{"loss": events.Metric(4 - step), "learning_rate": 1e-4}})
	}
	apply(events.MetricsLogged{Step: 4, Values: map[string]events.Metric{"loss": events.Metric(math.NaN())}})
	apply(events.CheckpointSaved{Step: 3, Name: "checkpoint-3", Kind: "adapter", Files: files})
	apply(events.EvalCompleted{Step: 3, Loss: 1.5, Perplexity: 4.48})
	apply(events.RunFailed{Stage: events.StageTrain, Error: "out of memory", Retryable: true})
	// Nothing moves a failed run back: not even a late completion.
	apply(events.TrainingCompleted{Steps: 10, Kind: "adapter", Files: files})

	r, ok, err := s.Run(run)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if r.Status != StatusFailed || r.Failure == nil || r.Failure.Error != "out of memory" || r.Failure.Stage != "train" {
		t.Fatalf("status %q failure %+v", r.Status, r.Failure)
	}
	if r.ConfigFile != "cfg.yml" || !r.RequestedAt.Equal(req.Time) || r.TotalSteps != 10 || r.Step != 10 || r.Checkpoints != 1 {
		t.Fatalf("summary %+v", r)
	}
	if r.EvalLoss == nil || *r.EvalLoss != 1.5 || !math.IsNaN(float64(r.LastMetrics["loss"])) || r.LastMetrics["learning_rate"] != 1e-4 {
		t.Fatalf("metrics in summary: eval %v last %v", r.EvalLoss, r.LastMetrics)
	}
	if r.Events != 7 || r.MetricEvents != 4 || r.MetricPoints != 7 {
		t.Fatalf("counts: events %d metric events %d points %d", r.Events, r.MetricEvents, r.MetricPoints)
	}
	if r.TraceID != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("trace id %q", r.TraceID)
	}
	tl, err := s.Timeline(run, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range tl {
		types = append(types, e.Type)
	}
	want := "run.requested.v1 config.validated.v1 training.started.v1 checkpoint.saved.v1 eval.completed.v1 run.failed.v1 training.completed.v1"
	if strings.Join(types, " ") != want {
		t.Fatalf("timeline %v", types)
	}
	if tl[0].Seq != 1 || tl[3].Seq != 8 {
		t.Fatalf("timeline seqs %d %d", tl[0].Seq, tl[3].Seq)
	}
	if after, _ := s.Timeline(run, 8); len(after) != 3 || after[0].Seq != 9 {
		t.Fatalf("timeline after 8: %+v", after)
	}
	series, err := s.Series(run, "")
	if err != nil {
		t.Fatal(err)
	}
	loss := series["loss"]
	if len(loss) != 4 || len(series["learning_rate"]) != 3 || loss[0].Step != 1 || loss[0].Value != 3 || loss[2].Epoch != 0.3 || !math.IsNaN(float64(loss[3].Value)) {
		t.Fatalf("series %+v", series)
	}
	only, _ := s.Series(run, "learning_rate")
	if len(only) != 1 || len(only["learning_rate"]) != 3 {
		t.Fatalf("one series: %+v", only)
	}
}

func TestStoreAppliesEachEventOnce(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	env := mustEnv(t, "r", events.RunRequested{Config: events.ConfigSource{FileName: "c.yml"}})
	if ok, _ := s.Apply(env, 1); !ok {
		t.Fatal("first apply not new")
	}
	// Redelivered at the same position, and republished at a later one.
	if ok, _ := s.Apply(env, 1); ok {
		t.Fatal("same position applied twice")
	}
	if ok, _ := s.Apply(env, 2); ok {
		t.Fatal("same event id applied twice")
	}
	if s.Position() != 2 {
		t.Fatalf("position %d", s.Position())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Position() != 2 {
		t.Fatalf("position after reopen %d", s.Position())
	}
	r, _, _ := s.Run("r")
	if r.Events != 1 {
		t.Fatalf("events %d", r.Events)
	}
	if ok, _ := s.Apply(env, 3); ok {
		t.Fatal("applied again after reopen")
	}
}

func TestStoreKeepsUnknownAndBadEvents(t *testing.T) {
	s := openTestStore(t)
	unknown := mustEnv(t, "r", events.RunCancelled{})
	unknown.Type = "run.teleported.v1"
	unknown.Payload = []byte(`{"to":"mars"}`)
	bad := mustEnv(t, "r", events.MetricsLogged{Step: 1, Values: map[string]events.Metric{"loss": 1}})
	bad.Payload = []byte(`{"step":"one"}`)
	for i, env := range []events.Envelope{unknown, bad} {
		if _, err := s.Apply(env, uint64(i+1)); err != nil {
			t.Fatalf("%s: %v", env.Type, err)
		}
	}
	r, _, _ := s.Run("r")
	tl, _ := s.Timeline("r", 0)
	if r.Events != 2 || len(tl) != 2 || string(tl[0].Payload) != `{"to":"mars"}` || r.MetricPoints != 0 {
		t.Fatalf("run %+v timeline %+v", r, tl)
	}
}

func TestOpenStoreTwiceFails(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := OpenStore(dir); err == nil || !strings.Contains(err.Error(), "another tracker") {
		t.Fatalf("second open: %v", err)
	}
}
