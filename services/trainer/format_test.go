package trainer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/bus/bustest"
)

// A job whose batches are in a format this trainer does not read (here the
// name an older test helper used) fails the run naming both formats, before
// anything is trained.
func TestUnknownBatchFormatFailsTheRun(t *testing.T) {
	b, _ := bustest.New(t)
	startTrainer(t, b, Options{})
	yaml := loraConfig(t, "")
	resolved, cfg := runtest.Resolve(t, yaml)
	data := runtest.MakeData(t, b, cfg, 8, 0)
	runID := events.NewRunID()
	ctx := context.Background()
	if _, err := b.PublishNew(ctx, runID, "validate", events.ConfigValidated{Resolved: resolved}); err != nil {
		t.Fatal(err)
	}
	job := events.TrainJob{Config: resolved, Train: data.Train, Format: "eft-batches-v1",
		MicroBatches: int64(data.TrainN), SequenceLen: data.SequenceLen, MicroBatchSize: data.MicroBatchSize}
	if _, err := b.PublishNew(ctx, runID, "tokenizer", job); err != nil {
		t.Fatal(err)
	}
	envs := runtest.Follow(t, b, runID, time.Minute, runtest.Ends)
	failed := runtest.Of[events.RunFailed](t, envs)
	if len(failed) != 1 || failed[0].Stage != events.StageTrain ||
		!strings.Contains(failed[0].Error, `"eft-batches-v1"`) || !strings.Contains(failed[0].Error, `"`+batches.Format+`"`) {
		t.Fatalf("%s %+v, want one RunFailed at stage train naming both formats", runtest.Types(envs), failed)
	}
	if steps := runtest.Of[events.MetricsLogged](t, envs); len(steps) != 0 {
		t.Fatalf("%d steps logged for a job the trainer cannot read", len(steps))
	}
}
