package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
)

// The object store's quota (the bucket's max bytes, as an operator sets it)
// is reached while a checkpoint is stored: the run fails at stage train
// with a reason that says the store is full, nothing is published for the
// checkpoint that did not fit, and the previous checkpoint's files are all
// still there, byte for byte.
func TestObjectStoreQuotaWhileCheckpointing(t *testing.T) {
	c := newCluster(t)
	c.serve("stages", "validate", "ingest", "tokenizer")
	c.serve("trainer", "trainer")
	run := c.submit(tinyRun{Steps: 200, SaveSteps: 50, Seed: 11})
	var first events.CheckpointSaved
	c.waitForEvent(run, 2*time.Minute, func(env events.Envelope) bool {
		if env.Type != events.TypeCheckpointSaved {
			return false
		}
		first, _ = events.PayloadAs[events.CheckpointSaved](env)
		return true
	})

	ctx := context.Background()
	stream, quota := bustest.CapStream(t, c.bus, "OBJ_"+artifacts.DefaultBucket, 4<<10) // what is stored, and 4 KiB
	quotaSet := time.Now()

	envs := c.follow(run, 2*time.Minute)
	last := envs[len(envs)-1]
	if last.Type != events.TypeRunFailed {
		t.Fatalf("the run ended with %s, not RunFailed: %s", last.Type, last.Payload)
	}
	f, _ := events.PayloadAs[events.RunFailed](last)
	if f.Stage != events.StageTrain || !strings.Contains(f.Error, "checkpoint-100") || !strings.Contains(f.Error, "full") {
		t.Fatalf("RunFailed %+v: want stage train, naming checkpoint-100 and a full store", f)
	}
	for _, s := range runtest.Of[events.CheckpointSaved](t, envs) {
		if s.Step > first.Step {
			t.Fatalf("CheckpointSaved for %s, which did not fit", s.Name)
		}
	}
	store := artifactstest.Open(t, c.bus.JetStream(), artifacts.DefaultBucket)
	if err := store.GetFiles(ctx, first.Files, t.TempDir()); err != nil {
		t.Fatalf("the previous checkpoint %s is damaged: %v", first.Name, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != quota {
		t.Fatalf("the bucket's quota was changed to %d by a service", info.Config.MaxBytes)
	}
	t.Logf("quota hit %s after it was set; %d files of %s verified; RunFailed: %s", last.Time.Sub(quotaSet).Round(time.Millisecond), len(first.Files), first.Name, f.Error)
}
