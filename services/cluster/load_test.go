package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/shared/bus"
)

// loadRuns and loadSteps size the load test: 20 concurrent runs of 40 steps.
const (
	loadRuns  = 20
	loadSteps = 40
)

// Twenty runs submitted at once go through three trainer processes: all
// complete, the tracker's projection agrees with the log of record for
// every run, and the test reports throughput and the latency of every
// event from its creation to a consumer on another connection (p50, p99).
func TestLoadTwentyRunsThroughThreeTrainers(t *testing.T) {
	slow(t)
	c := newCluster(t)
	stages := c.serve("stages", "tracker", "validate", "ingest", "tokenizer", "--http", "127.0.0.1:0")
	for i := range 3 {
		c.serve(fmt.Sprintf("trainer%d", i), "trainer")
	}

	// Every event of every run, timed as it arrives.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons, err := c.bus.JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.AllRunEvents}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var latencies []time.Duration
	ended := map[string]string{}
	allEnded := make(chan struct{})
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		at := time.Now()
		env, err := events.Decode(msg.Data())
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		latencies = append(latencies, at.Sub(env.Time))
		if env.Type == events.TypeTrainingCompleted || events.Terminal(env.Type) {
			ended[env.RunID] = env.Type
			if len(ended) == loadRuns {
				close(allEnded)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()

	start := time.Now()
	runs := make([]string, loadRuns)
	for i := range runs {
		runs[i] = c.submit(tinyRun{Steps: loadSteps, Seed: 100 + i})
	}
	select {
	case <-allEnded:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		t.Fatalf("%d of %d runs ended within 5 minutes", len(ended), loadRuns)
	}
	wall := time.Since(start)
	mu.Lock()
	for _, id := range runs {
		if ended[id] != events.TypeTrainingCompleted {
			t.Errorf("run %s ended with %s", id, ended[id])
		}
	}
	lat := slices.Clone(latencies)
	mu.Unlock()

	api := stages.trackerURL(t)
	last, err := c.bus.LastSequence(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	waitForTracker(t, api, last)
	for _, id := range runs {
		envs := c.follow(id, time.Minute)
		var d tracker.RunDetail
		trackerAPI(t, api, "/api/runs/"+id, &d)
		metrics := len(metricsByStep(t, envs))
		if d.Run.Status != tracker.StatusCompleted || d.Run.MetricEvents != metrics || metrics != loadSteps || d.Run.Events != len(envs)-metrics || len(d.Events) != d.Run.Events {
			t.Fatalf("run %s: tracker has status %s, %d metric events, %d events (%d in the timeline); the log has %d and %d",
				id, d.Run.Status, d.Run.MetricEvents, d.Run.Events, len(d.Events), metrics, len(envs)-metrics)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	t.Logf("%d runs x %d steps through 3 trainers in %s: %.2f runs/s, %.0f steps/s, %.0f events/s; event latency (creation -> consumer) p50 %s p99 %s max %s over %d events",
		loadRuns, loadSteps, wall.Round(time.Millisecond), float64(loadRuns)/wall.Seconds(), float64(loadRuns*loadSteps)/wall.Seconds(),
		float64(len(lat))/wall.Seconds(), pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond), len(lat))
}
