package stage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

// waitForFailure returns the first RunFailed of runID.
func waitForFailure(t *testing.T, b *bus.Bus, runID string) (events.Envelope, events.RunFailed) {
	t.Helper()
	got := make(chan events.Envelope, 1)
	sub, err := b.Subscribe(t.Context(), bus.Consumer{Name: "watch", Subjects: []string{events.Subject(runID, events.TypeRunFailed)},
		Handler: func(ctx context.Context, d bus.Delivery) error { got <- d.Envelope; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case env := <-got:
		p, err := events.PayloadAs[events.RunFailed](env)
		if err != nil {
			t.Fatal(err)
		}
		return env, p
	case <-time.After(10 * time.Second):
		t.Fatal("no RunFailed")
	}
	panic("unreachable")
}

func TestUnavailableStageFailsTheRunNamingTheStage(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	u := stage.NewUnavailable(b, "ingest", events.StageIngest, events.TypeConfigValidated)
	go u.Run(ctx)
	cause, err := b.PublishNew(ctx, "run-i", "validate", events.ConfigValidated{Resolved: "x: 1"})
	if err != nil {
		t.Fatal(err)
	}
	env, p := waitForFailure(t, b, "run-i")
	if p.Stage != "ingest" || p.Retryable || !strings.Contains(p.Error, "the ingest stage is not available yet") {
		t.Fatalf("RunFailed %+v", p)
	}
	if env.CausationID != cause.ID || env.Producer != "ingest" {
		t.Fatalf("envelope %+v", env)
	}
}

func TestUnavailableTrainerTakesTheJobAndFailsTheRun(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	go stage.NewUnavailable(b, "trainer", events.StageTrain, events.TypeTrainJob).Run(ctx)
	ref := events.ArtifactRef{Bucket: "b", Name: "n", SHA256: strings.Repeat("f", 64), Size: 1}
	if _, err := b.PublishNew(ctx, "run-t", "tokenizer", events.TrainJob{Config: "c", Train: ref, Format: "f", MicroBatches: 1, SequenceLen: 8, MicroBatchSize: 1}); err != nil {
		t.Fatal(err)
	}
	_, p := waitForFailure(t, b, "run-t")
	if p.Stage != events.StageTrain || !strings.Contains(p.Error, "the train stage is not available yet") {
		t.Fatalf("RunFailed %+v", p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, _ := b.JetStream().Stream(ctx, bus.JobsStream)
		info, err := s.Info(ctx)
		if err == nil && info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job was not acked")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeadLetteredMessagesFailTheirRun(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	go b.Consume(ctx, bus.Consumer{
		Name: "flaky-stage", Subjects: []string{events.TypeSubjects(events.TypeConfigValidated)},
		Retry:        bus.RetryPolicy{MaxRetries: 1, InitialInterval: time.Millisecond},
		Handler:      func(ctx context.Context, d bus.Delivery) error { return context.DeadlineExceeded },
		OnDeadLetter: stage.FailOnDeadLetter(b, "flaky-stage", events.StageIngest),
	})
	if _, err := b.PublishNew(ctx, "run-f", "validate", events.ConfigValidated{Resolved: "x: 1"}); err != nil {
		t.Fatal(err)
	}
	_, p := waitForFailure(t, b, "run-f")
	if p.Stage != events.StageIngest || !p.Retryable || p.Error != context.DeadlineExceeded.Error() {
		t.Fatalf("RunFailed %+v", p)
	}
}
