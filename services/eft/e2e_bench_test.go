package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/tracker"
)

// BenchmarkTinyExample runs examples/tiny/config.yml with eft train, as the
// README does, and splits its wall time by stage from the run's event
// times: validate, ingest, tokenize, the wait for a trainer, training
// (TrainingStarted to TrainingCompleted), the merge, and the last
// evaluation's tail after training. One run takes about a minute or more:
//
//	go test -run '^$' -bench TinyExample -benchtime 1x ./services/eft
func BenchmarkTinyExample(b *testing.B) {
	for range b.N {
		home := b.TempDir()
		cfg, _ := tinyConfig(b)
		start := time.Now()
		var out, stderr bytes.Buffer
		code := run([]string{"--home", home, "train", cfg}, strings.NewReader(""), &out, &stderr)
		wall := time.Since(start)
		if code != 0 {
			b.Fatalf("eft train: exit %d\n%s\n%s", code, out.String(), stderr.String())
		}
		m := runLine.FindStringSubmatch(out.String())
		if m == nil {
			b.Fatalf("no run id in\n%s", out.String())
		}
		var show bytes.Buffer
		if code := run([]string{"--home", home, "runs", "show", m[1], "--json"}, strings.NewReader(""), &show, &stderr); code != 0 {
			b.Fatalf("runs show: %s", stderr.String())
		}
		var d tracker.RunDetail
		if err := json.Unmarshal(show.Bytes(), &d); err != nil {
			b.Fatal(err)
		}
		at := map[string]time.Time{}
		var lastEval time.Time
		for _, e := range d.Events {
			if _, seen := at[e.Type]; !seen {
				at[e.Type] = e.Time
			}
			if e.Type == events.TypeEvalCompleted {
				lastEval = e.Time
			}
		}
		span := func(from, to string) float64 { return at[to].Sub(at[from]).Seconds() }
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(span(events.TypeRunRequested, events.TypeConfigValidated), "validate-s")
		b.ReportMetric(span(events.TypeConfigValidated, events.TypeDatasetIngested), "ingest-s")
		b.ReportMetric(span(events.TypeDatasetIngested, events.TypeDatasetTokenized), "tokenize-s")
		b.ReportMetric(span(events.TypeDatasetTokenized, events.TypeTrainingStarted), "queue-s")
		b.ReportMetric(span(events.TypeTrainingStarted, events.TypeTrainingCompleted), "train-s")
		b.ReportMetric(span(events.TypeTrainingCompleted, events.TypeModelMerged), "merge-s")
		b.ReportMetric(lastEval.Sub(at[events.TypeTrainingCompleted]).Seconds(), "last-eval-after-train-s")
	}
}
