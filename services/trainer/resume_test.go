package trainer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

// The resume test runs trainers as separate processes: this test binary,
// re-executed with these variables set.
const (
	envChildNATS    = "EFT_TRAINER_TEST_CHILD_NATS"
	envChildScratch = "EFT_TRAINER_TEST_CHILD_SCRATCH"
	// envChildPace is the pause after each step (default 100ms).
	envChildPace = "EFT_TRAINER_TEST_CHILD_PACE"
	childAckWait = 2 * time.Second
	// childRankLease is a child's data-parallel claim lease: a killed
	// child's peers notice within about this.
	childRankLease = time.Second
)

func TestMain(m *testing.M) {
	if url := os.Getenv(envChildNATS); url != "" {
		os.Exit(runChild(url, os.Getenv(envChildScratch)))
	}
	os.Exit(m.Run())
}

// runChild is a trainer process that takes 100 ms per step more than it
// needs (or $EFT_TRAINER_TEST_CHILD_PACE), so that the test can kill it in
// the middle of a run.
func runChild(url, scratch string) int {
	pace := 100 * time.Millisecond
	if p := os.Getenv(envChildPace); p != "" {
		var err error
		if pace, err = time.ParseDuration(p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	ctx := context.Background()
	b, err := bus.Connect(ctx, url, bus.Options{Name: "trainer-child"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	svc := New(b, Options{ScratchDir: scratch, AckWait: childAckWait, RankLease: childRankLease, RendezvousTimeout: time.Minute,
		AfterStep: func(int) { time.Sleep(pace) }})
	if err := svc.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func startChild(t *testing.T, url string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), envChildNATS+"="+url, envChildScratch+"="+t.TempDir()), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("trainer child: %v", err)
	}
	go io.Copy(io.Discard, out)
	return cmd
}

// A trainer process SIGKILLed after a checkpoint loses nothing: the job
// comes back after AckWait, another trainer process resumes from the
// checkpoint, and every step's loss equals an uninterrupted run's — the
// steps the dead trainer did after its checkpoint and the ones only the
// second did. No step is logged twice, in the log of record or in the
// tracker.
func TestKilledTrainerResumesExactly(t *testing.T) {
	b, srv := bustest.New(t)
	store, err := tracker.OpenStore(filepath.Join(t.TempDir(), "tracker"))
	if err != nil {
		t.Fatal(err)
	}
	trk := tracker.New(b, store)
	ctx, cancel := context.WithCancel(context.Background())
	trkDone := make(chan error, 1)
	go func() { trkDone <- trk.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-trkDone; store.Close() })

	yaml := loraConfig(t, "")
	_, cfg := runtest.Resolve(t, yaml)
	data := runtest.MakeData(t, b, cfg, 48, 0)

	// The reference: the same run, uninterrupted, by a trainer in this process.
	stop := startTrainer(t, b, Options{})
	straight := runtest.Submit(t, b, yaml, data)
	want := metricsByStep(t, runtest.Follow(t, b, straight.ID, 2*time.Minute, runtest.Ends))
	stop()

	run := runtest.Submit(t, b, yaml, data)
	first := startChild(t, srv.URL())
	killedAfter := int64(0)
	runtest.Follow(t, b, run.ID, time.Minute, func(env events.Envelope) bool {
		if env.Type == events.TypeMetricsLogged {
			m, _ := events.PayloadAs[events.MetricsLogged](env)
			killedAfter = m.Step
			return m.Step == 6 // two steps past checkpoint-4
		}
		return events.Terminal(env.Type) || env.Type == events.TypeTrainingCompleted
	})
	if killedAfter != 6 {
		t.Fatalf("the first trainer did not get to step 6 (%d)", killedAfter)
	}
	if err := first.Process.Kill(); err != nil { // SIGKILL: no cleanup, no nak
		t.Fatal(err)
	}
	_ = first.Wait()
	startChild(t, srv.URL())
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, runtest.Ends)
	if last := envs[len(envs)-1]; last.Type != events.TypeTrainingCompleted {
		t.Fatalf("resumed run ended with %s: %s", last.Type, last.Payload)
	}

	starts := runtest.Of[events.TrainingStarted](t, envs)
	if len(starts) != 2 || starts[1].ResumedFromStep != 4 || starts[1].Attempt != 2 || starts[0].Worker == starts[1].Worker {
		t.Fatalf("TrainingStarted events %+v, want a second attempt by another worker resuming from step 4", starts)
	}
	got := metricsByStep(t, envs)
	if len(got) != len(want) {
		t.Fatalf("%d steps logged, the uninterrupted run logged %d", len(got), len(want))
	}
	for step, ms := range got {
		if len(ms) != 1 {
			t.Fatalf("step %d is in the log of record %d times", step, len(ms))
		}
		g, w := ms[0].Values["loss"], want[step][0].Values["loss"]
		if g != w {
			t.Fatalf("step %d: loss %v after the kill, %v uninterrupted", step, g, w)
		}
		if g, w := ms[0].Values["grad_norm"], want[step][0].Values["grad_norm"]; g != w {
			t.Fatalf("step %d: grad norm %v after the kill, %v uninterrupted", step, g, w)
		}
	}

	last, err := b.LastSequence(context.Background(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := trk.WaitFor(wctx, last); err != nil {
		t.Fatal(err)
	}
	series, err := store.Series(run.ID, "loss")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, p := range series["loss"] {
		if seen[p.Step] {
			t.Fatalf("the tracker holds step %d twice", p.Step)
		}
		seen[p.Step] = true
		if p.Value != got[p.Step][0].Values["loss"] {
			t.Fatalf("tracker: step %d loss %v, log %v", p.Step, p.Value, got[p.Step][0].Values["loss"])
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("the tracker holds %d steps, want %d", len(seen), len(want))
	}
}
