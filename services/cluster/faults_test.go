package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
)

// waitForEvent reads runID's events from the start until one satisfies
// until, and returns when it arrived.
func (c *cluster) waitForEvent(runID string, timeout time.Duration, until func(events.Envelope) bool) time.Time {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cons, err := c.bus.JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.RunSubjects(runID)},
	})
	if err != nil {
		c.t.Fatal(err)
	}
	iter, err := cons.Messages()
	if err != nil {
		c.t.Fatal(err)
	}
	defer iter.Stop()
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	for {
		msg, err := iter.Next()
		if err != nil {
			c.t.Fatalf("run %s: waiting for an event: %v", runID, err)
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			c.t.Fatal(err)
		}
		if until(env) {
			return time.Now()
		}
		if runtestEnds(env) {
			c.t.Fatalf("run %s ended (%s: %s) before the event the test waits for", runID, env.Type, env.Payload)
		}
	}
}

func runtestEnds(env events.Envelope) bool {
	return env.Type == events.TypeTrainingCompleted || events.Terminal(env.Type)
}

// stepLogged is an until for waitForEvent: MetricsLogged at step >= n.
func stepLogged(n int64) func(events.Envelope) bool {
	return func(env events.Envelope) bool {
		if env.Type != events.TypeMetricsLogged {
			return false
		}
		m, err := events.PayloadAs[events.MetricsLogged](env)
		return err == nil && m.Step >= n
	}
}

// natsDowntime is how long the server stays away: longer than a publish's
// ack timeout (5s), so that publishers see failures, not only delays.
var natsDowntime = 8 * time.Second

// The NATS server is SIGKILLed in the middle of a run and restarted on the
// same file store two seconds later: every service reconnects, the run
// completes with each step logged exactly once, and every process is
// still running (none gave up while the server was away).
func TestNATSRestartMidRun(t *testing.T) {
	c := newCluster(t)
	stages := c.serve("stages", "tracker", "validate", "ingest", "tokenizer", "evaluator", "merger", "--http", "127.0.0.1:0")
	trainer := c.serve("trainer", "trainer")
	run := c.submit(tinyRun{Steps: 300, SaveSteps: 50, Seed: 3})
	c.waitForEvent(run, 2*time.Minute, stepLogged(20))

	c.nats.kill(t)
	down := time.Now()
	time.Sleep(natsDowntime)
	c.nats = c.startNATS()
	restarted := time.Now()
	// Recovered: a step is logged by a trainer that reconnected.
	next := c.waitForEvent(run, 2*time.Minute, func(env events.Envelope) bool {
		return env.Type == events.TypeMetricsLogged && env.Time.After(restarted)
	})
	envs := c.follow(run, 3*time.Minute)
	completed(t, run, envs)
	steps := metricsByStep(t, envs)
	for s := int64(1); s <= 300; s++ {
		if steps[s] != 1 {
			t.Fatalf("step %d is in the log of record %d times", s, steps[s])
		}
	}
	for _, p := range []*proc{stages, trainer} {
		if !p.running() {
			t.Fatalf("%s exited while NATS was away: %v\n%s", p.name, p.err, p.log())
		}
	}
	t.Logf("NATS down %s; first new step %s after the restart; %d events checked",
		restarted.Sub(down).Round(time.Millisecond), next.Sub(restarted).Round(time.Millisecond), len(envs))
}
