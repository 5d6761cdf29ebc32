package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/shared/bus"
)

// waitForEvent reads runID's events from the start until one satisfies
// until, and returns when it arrived.
func (c *cluster) waitForEvent(runID string, timeout time.Duration, until func(events.Envelope) bool) time.Time {
	c.t.Helper()
	var at time.Time
	c.eachEvent(runID, timeout, func(env events.Envelope) bool {
		if until(env) {
			at = time.Now()
			return true
		}
		if runtest.Ends(env) {
			c.t.Fatalf("run %s ended (%s: %s) before the event the test waits for", runID, env.Type, env.Payload)
		}
		return false
	})
	return at
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
	slow(t)
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

// The tracker is SIGKILLed while a run streams metrics and restarted while
// the run goes on: it catches up from its own position, and its counters,
// timeline and loss series hold every event of the log of record exactly
// once.
func TestTrackerSIGKILLCatchesUpWithoutDoubleCounting(t *testing.T) {
	c := newCluster(t)
	trk := c.serve("tracker", "tracker", "--http", "127.0.0.1:0")
	c.serve("stages", "validate", "ingest", "tokenizer")
	c.serve("trainer", "trainer")
	const steps = 300
	run := c.submit(tinyRun{Steps: steps, SaveSteps: 50, Seed: 5})
	c.waitForEvent(run, 2*time.Minute, stepLogged(40))
	var before tracker.HealthResponse
	trackerAPI(t, trk.trackerURL(t), "/api/health", &before)
	trk.kill(t)
	c.waitForEvent(run, 2*time.Minute, stepLogged(120))
	trk = c.serve("tracker", "tracker", "--http", "127.0.0.1:0")
	restarted := time.Now()
	api := trk.trackerURL(t)
	behind, err := c.bus.LastSequence(context.Background(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	waitForTracker(t, api, behind)
	caughtUp := time.Since(restarted)

	envs := c.follow(run, 3*time.Minute)
	completed(t, run, envs)
	last, err := c.bus.LastSequence(context.Background(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	waitForTracker(t, api, last)
	var d tracker.RunDetail
	trackerAPI(t, api, "/api/runs/"+run, &d)
	var metrics, points, others, checkpoints int
	var timeline []string
	for _, e := range envs {
		switch e.Type {
		case events.TypeMetricsLogged:
			m, _ := events.PayloadAs[events.MetricsLogged](e)
			metrics++
			points += len(m.Values)
		default:
			others++
			timeline = append(timeline, e.ID)
			if e.Type == events.TypeCheckpointSaved {
				checkpoints++
			}
		}
	}
	r := d.Run
	if r.Status != tracker.StatusCompleted || r.MetricEvents != metrics || r.MetricPoints != int64(points) || r.Events != others || r.Checkpoints != checkpoints {
		t.Fatalf("tracker counts: status %s, %d metric events, %d points, %d events, %d checkpoints; the log holds %d, %d, %d, %d",
			r.Status, r.MetricEvents, r.MetricPoints, r.Events, r.Checkpoints, metrics, points, others, checkpoints)
	}
	if len(d.Events) != len(timeline) {
		t.Fatalf("timeline of %d events; the log holds %d", len(d.Events), len(timeline))
	}
	for i, e := range d.Events {
		if e.ID != timeline[i] {
			t.Fatalf("timeline[%d] is %s, the log has %s", i, e.ID, timeline[i])
		}
	}
	var series tracker.SeriesResponse
	trackerAPI(t, api, "/api/runs/"+run+"/metrics?name=loss", &series)
	if n := len(series.Series["loss"]); n != steps {
		t.Fatalf("loss series of %d points, want %d", n, steps)
	}
	for i, p := range series.Series["loss"] {
		if p.Step != int64(i+1) {
			t.Fatalf("loss point %d is step %d", i, p.Step)
		}
	}
	t.Logf("tracker killed at stream position %d (step 40), restarted at %d (step 120): caught up in %s; %d events checked (%d metric events, %d points)",
		before.Position, behind, caughtUp.Round(time.Millisecond), len(envs), metrics, points)
}

// Poison: bytes that are not an event, on a run's config.validated subject
// and on the train-job queue. Each is dead-lettered at its first delivery
// (retrying cannot decode it) with the error in its headers, the run its
// subject names fails at that stage instead of waiting forever, and a good
// run submitted right after completes.
func TestPoisonMessagesAreDeadLetteredAndOthersKeepFlowing(t *testing.T) {
	c := newCluster(t)
	trk := c.serve("stages", "tracker", "validate", "ingest", "tokenizer", "--http", "127.0.0.1:0")
	c.serve("trainer", "trainer")
	ctx := context.Background()
	js := c.bus.JetStream()
	poisoned := events.NewRunID()
	sent := time.Now()
	if _, err := js.Publish(ctx, events.Subject(poisoned, events.TypeConfigValidated), []byte("\x00not an event{")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, events.JobSubject(events.NewRunID()), []byte(`{"id":"nope"}`)); err != nil {
		t.Fatal(err)
	}
	good := c.submit(tinyRun{Steps: 20, Seed: 7})

	for _, consumer := range []string{"ingest", "trainer"} {
		stream, _ := js.Stream(ctx, bus.DeadLetterStream)
		var got *jetstream.RawStreamMsg
		for deadline := time.Now().Add(time.Minute); got == nil; {
			got, _ = stream.GetLastMsgForSubject(ctx, events.DeadLetterSubject(consumer))
			if got == nil {
				if time.Now().After(deadline) {
					t.Fatalf("nothing dead-lettered by %s within a minute", consumer)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if got.Header.Get(bus.HeaderDeadLetterConsumer) != consumer || got.Header.Get(bus.HeaderDeadLetterError) == "" {
			t.Fatalf("dead letter of %s: headers %v", consumer, got.Header)
		}
		t.Logf("%s dead-lettered %q (%s after it was sent): %s", consumer, got.Data, got.Time.Sub(sent).Round(time.Millisecond), got.Header.Get(bus.HeaderDeadLetterError))
	}
	failed := c.follow(poisoned, time.Minute)
	f, err := events.PayloadAs[events.RunFailed](failed[len(failed)-1])
	if err != nil || f.Stage != events.StageIngest || !strings.Contains(f.Error, "undecodable config.validated.v1") {
		t.Fatalf("the poisoned run ended with %+v (%v)", f, err)
	}
	completed(t, good, c.follow(good, 2*time.Minute))
	var d tracker.RunDetail
	api := trk.trackerURL(t)
	for deadline := time.Now().Add(30 * time.Second); d.Run.Status != tracker.StatusFailed; {
		if time.Now().After(deadline) {
			t.Fatalf("the tracker shows the poisoned run as %q", d.Run.Status)
		}
		if resp, err := http.Get(api + "/api/runs/" + poisoned); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&d)
			resp.Body.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
}
