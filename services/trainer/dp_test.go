package trainer

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

// accumConfig is loraConfig trained by world ranks accumulating accum
// micro-batches each: the global batch is accum·world micro-batches.
func accumConfig(t testing.TB, accum, world int) string {
	yaml := loraConfig(t, fmt.Sprintf("world_size: %d\n", world))
	return strings.Replace(yaml, "gradient_accumulation_steps: 2", fmt.Sprintf("gradient_accumulation_steps: %d", accum), 1)
}

// Tolerances of a data-parallel step against one trainer: the ranks' sums
// group the float32 additions differently (each rank sums its own
// micro-batches, then the ranks are added), nothing else differs.
const (
	dpLossTol     = 1e-5 // relative, per logged loss
	dpGradNormTol = 1e-4 // relative
)

// referenceRun trains yaml on one trainer in this process and returns its
// metrics by step and its checkpoint steps.
func referenceRun(t *testing.T, b *bus.Bus, yaml string, data runtest.Data) (map[int64][]events.MetricsLogged, []int64) {
	t.Helper()
	stop := startTrainer(t, b, Options{})
	defer stop()
	run := runtest.Submit(t, b, yaml, data)
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, runtest.Ends)
	if last := envs[len(envs)-1]; last.Type != events.TypeTrainingCompleted {
		t.Fatalf("reference run ended with %s: %s", last.Type, last.Payload)
	}
	var ckpts []int64
	for _, c := range runtest.Of[events.CheckpointSaved](t, envs) {
		ckpts = append(ckpts, c.Step)
	}
	return metricsByStep(t, envs), ckpts
}

// compareWithReference checks that a data-parallel run's envelopes hold
// every step of want once, with losses and gradient norms within the
// tolerances, and the same checkpoints once each.
func compareWithReference(t *testing.T, envs []events.Envelope, want map[int64][]events.MetricsLogged, wantCkpts []int64) {
	t.Helper()
	if last := envs[len(envs)-1]; last.Type != events.TypeTrainingCompleted {
		t.Fatalf("data-parallel run ended with %s: %s", last.Type, last.Payload)
	}
	if n := len(runtest.Of[events.TrainingCompleted](t, envs)); n != 1 {
		t.Fatalf("%d TrainingCompleted", n)
	}
	got := metricsByStep(t, envs)
	if len(got) != len(want) {
		t.Fatalf("%d steps logged, one trainer logged %d", len(got), len(want))
	}
	var worstLoss, worstNorm float64
	for step, ms := range got {
		if len(ms) != 1 {
			t.Fatalf("step %d is in the log of record %d times", step, len(ms))
		}
		w := want[step][0]
		gl, wl := float64(ms[0].Values["loss"]), float64(w.Values["loss"])
		gn, wn := float64(ms[0].Values["grad_norm"]), float64(w.Values["grad_norm"])
		worstLoss = max(worstLoss, math.Abs(gl-wl)/wl)
		worstNorm = max(worstNorm, math.Abs(gn-wn)/wn)
		if math.Abs(gl-wl) > dpLossTol*wl || math.Abs(gn-wn) > dpGradNormTol*wn {
			t.Errorf("step %d: loss %.7f grad_norm %.6f on 2 ranks; one trainer %.7f, %.6f", step, gl, gn, wl, wn)
		}
	}
	var ckpts []int64
	for _, c := range runtest.Of[events.CheckpointSaved](t, envs) {
		ckpts = append(ckpts, c.Step)
	}
	if !slices.Equal(ckpts, wantCkpts) {
		t.Fatalf("checkpoints at %v; one trainer saved %v", ckpts, wantCkpts)
	}
	t.Logf("%d steps: losses within %.2g, grad norms within %.2g (relative) of one trainer", len(got), worstLoss, worstNorm)
}

// jobsQueueDrains waits until the work queue is empty: every seat acked.
func jobsQueueDrains(t *testing.T, b *bus.Bus) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		s, err := b.JetStream().Stream(context.Background(), bus.JobsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs are still in the work queue", info.State.Msgs)
		}
	}
}

// Two trainer processes with world_size 2 and gradient_accumulation_steps
// g train the run as one trainer with gradient_accumulation_steps 2g: the
// same micro-batches in each optimizer step, normalised by the world's
// token count, the same dropout masks. With g = 1 the float32 additions
// happen in the same order as on one trainer (rank 0's micro-batch, then
// rank 1's), so the losses are the same bits; with g = 2 each rank first
// sums its own two, and per-step losses and gradient norms agree to float32
// reduction order (dpLossTol, dpGradNormTol). Rank 0 alone publishes: one
// TrainingStarted naming both workers, each step once, each checkpoint
// once; every seat leaves the queue.
func TestDataParallelMatchesOneTrainer(t *testing.T) {
	b, srv := bustest.New(t)
	_, cfg := runtest.Resolve(t, accumConfig(t, 2, 1))
	data := runtest.MakeData(t, b, cfg, 48, 0)
	type reference struct {
		metrics map[int64][]events.MetricsLogged
		ckpts   []int64
	}
	refs := map[int]reference{}
	for _, g := range []int{1, 2} { // before the trainer processes start: they would take these jobs
		m, c := referenceRun(t, b, accumConfig(t, 2*g, 1), data)
		refs[g] = reference{m, c}
	}
	startChild(t, srv.URL(), envChildPace+"=0s")
	startChild(t, srv.URL(), envChildPace+"=0s")
	for _, g := range []int{1, 2} {
		t.Run(fmt.Sprintf("accumulating %d per rank", g), func(t *testing.T) {
			start := time.Now()
			run := runtest.Submit(t, b, accumConfig(t, g, 2), data)
			envs := runtest.Follow(t, b, run.ID, 2*time.Minute, runtest.Ends)
			took := time.Since(start)
			compareWithReference(t, envs, refs[g].metrics, refs[g].ckpts)
			started := runtest.Of[events.TrainingStarted](t, envs)
			if len(started) != 1 || started[0].WorldSize != 2 || started[0].GradientAccumulationSteps != g || strings.Count(started[0].Worker, ",") != 1 {
				t.Fatalf("TrainingStarted %+v, want one from rank 0 naming both workers", started)
			}
			if ws := strings.Split(started[0].Worker, ","); ws[0] == ws[1] {
				t.Fatalf("both ranks are %s", ws[0])
			}
			jobsQueueDrains(t, b)
			t.Logf("2 ranks, %d steps in %s (batches and model loaded, rendezvous included)", len(refs[g].metrics), took.Round(time.Millisecond))
		})
	}
}

// A rank SIGKILLed mid-run: its peer's step ends (its claim runs out), the
// peer gives its job back, the dead rank's job returns after AckWait to a
// new trainer process, the world meets again and resumes from the last
// checkpoint; the run completes with every step once and the losses of one
// uninterrupted trainer.
func TestDataParallelLostRankResumesFromTheCheckpoint(t *testing.T) {
	b, srv := bustest.New(t)
	_, cfg := runtest.Resolve(t, accumConfig(t, 2, 1))
	data := runtest.MakeData(t, b, cfg, 48, 0)
	want, wantCkpts := referenceRun(t, b, accumConfig(t, 2, 1), data)

	first := startChild(t, srv.URL(), envChildPace+"=150ms")
	startChild(t, srv.URL(), envChildPace+"=150ms")
	run := runtest.Submit(t, b, accumConfig(t, 1, 2), data)
	runtest.Follow(t, b, run.ID, time.Minute, func(env events.Envelope) bool {
		if env.Type == events.TypeMetricsLogged {
			m, _ := events.PayloadAs[events.MetricsLogged](env)
			return m.Step == 6 // two steps past checkpoint-4
		}
		return events.Terminal(env.Type) || env.Type == events.TypeTrainingCompleted
	})
	killed := time.Now()
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	startChild(t, srv.URL(), envChildPace+"=0s")
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, runtest.Ends)
	compareWithReference(t, envs, want, wantCkpts)
	started := runtest.Of[events.TrainingStarted](t, envs)
	if len(started) != 2 || started[1].ResumedFromStep != 4 || started[1].WorldSize != 2 {
		t.Fatalf("TrainingStarted %+v, want a second world resuming from step 4", started)
	}
	var resumedAt time.Time
	for _, e := range envs {
		if e.Type == events.TypeTrainingStarted {
			resumedAt = e.Time
		}
	}
	jobsQueueDrains(t, b)
	t.Logf("the world met again %s after the kill (ack wait %s, rank lease %s, retry delay 5s)", resumedAt.Sub(killed).Round(time.Millisecond), childAckWait, childRankLease)
}
