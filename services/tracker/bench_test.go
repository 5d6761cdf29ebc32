package tracker

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

// metricValues is what a trainer logs per step (issue 6's list).
func metricValues(step int64) map[string]events.Metric {
	return map[string]events.Metric{
		"loss": events.Metric(2 / float64(step+1)), "learning_rate": 2e-4, "grad_norm": 0.7,
		"tokens_per_second": 5321, "elapsed_seconds": events.Metric(step), "memory_bytes": 1 << 30,
		"epoch": 0.5, "trained_tokens": events.Metric(step * 4096),
	}
}

// BenchmarkStoreApplyMetrics: the projection alone (pebble, NoSync batches
// with the position), 8 metric points per MetricsLogged event.
func BenchmarkStoreApplyMetrics(b *testing.B) {
	s := openTestStore(b)
	envs := make([]events.Envelope, 4096)
	for i := range envs {
		envs[i] = mustEnv(b, "bench", events.MetricsLogged{Step: int64(i), Values: metricValues(int64(i))})
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	points := 0
	for i := 0; i < b.N; i++ {
		env := envs[i%len(envs)]
		env.ID = events.NewID()
		if _, err := s.Apply(env, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
		points += 8
	}
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(points)/(cpuTime()-cpu0).Seconds(), "points/cpu-s")
}

// cpuTime is the CPU time this process used so far. On a shared machine
// (other jobs in the run queue) wall-clock rates understate what the code
// does; points per CPU-second is the figure that does not depend on them.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTrackerIngestOverBus: MetricsLogged events already in EFT_EVENTS,
// consumed by the tracker service over the embedded server until it has
// applied them all.
func BenchmarkTrackerIngestOverBus(b *testing.B) {
	srv := bustest.Server(b)
	bb := bustest.Connect(b, srv, bus.Options{})
	ctx := context.Background()
	const perEvent = 8
	n := max(b.N, 1)
	for i := range n {
		env := mustEnv(b, fmt.Sprintf("run-%d", i%4), events.MetricsLogged{Step: int64(i), Values: metricValues(int64(i))})
		if err := bb.Publish(ctx, env); err != nil {
			b.Fatal(err)
		}
	}
	last, _ := bb.LastSequence(ctx, bus.EventsStream)
	store := openTestStore(b)
	svc := New(bb, store)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	go svc.Run(runCtx)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := svc.WaitFor(waitCtx, last); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(n*perEvent)/elapsed.Seconds(), "points/s")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(n*perEvent)/(cpuTime()-cpu0).Seconds(), "points/cpu-s")
}
