package tracker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

// The crash test runs the tracker in a child process: this test binary,
// re-executed with these variables set.
const (
	envChildURL = "EFT_TRACKER_TEST_CHILD_NATS"
	envChildDir = "EFT_TRACKER_TEST_CHILD_DIR"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(envChildURL); url != "" {
		os.Exit(runChild(url, os.Getenv(envChildDir)))
	}
	os.Exit(m.Run())
}

// runChild is a tracker process: it serves the API on a random port, prints
// "addr HOST:PORT", and consumes until killed.
func runChild(url, dir string) int {
	ctx := context.Background()
	b, err := bus.Connect(ctx, url, bus.Options{Name: "tracker-child"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store, err := OpenStore(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	go http.Serve(ln, NewAPI(store))
	fmt.Printf("addr %s\n", ln.Addr())
	if err := New(b, store).Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type child struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(t *testing.T, url, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildURL+"="+url, envChildDir+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("tracker child: %v", err)
	}
	go io.Copy(io.Discard, out)
	return &child{cmd: cmd, addr: "http://" + strings.TrimSpace(strings.TrimPrefix(line, "addr "))}
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup at all
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

func getJSON(t *testing.T, url string, v any) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, data)
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return data
}

func position(t *testing.T, base string) uint64 {
	var h HealthResponse
	getJSON(t, base+"/api/health", &h)
	return h.Position
}

func waitPosition(t *testing.T, base string, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for position(t, base) < seq {
		if time.Now().After(deadline) {
			t.Fatalf("tracker at %d, never reached %d", position(t, base), seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// published records what the test sent, to check the projection against.
type published struct {
	timeline map[string][]string           // run -> ids of non-metric events, in order
	steps    map[string]map[string][]int64 // run -> metric -> steps
	metricEv map[string]int
}

func newPublished() *published {
	return &published{timeline: map[string][]string{}, steps: map[string]map[string][]int64{}, metricEv: map[string]int{}}
}

func (p *published) send(t *testing.T, b *bus.Bus, run string, payload events.Payload) {
	t.Helper()
	env := mustEnv(t, run, payload)
	if err := b.Publish(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if m, ok := payload.(events.MetricsLogged); ok {
		p.metricEv[run]++
		if p.steps[run] == nil {
			p.steps[run] = map[string][]int64{}
		}
		for name := range m.Values {
			p.steps[run][name] = append(p.steps[run][name], m.Step)
		}
		return
	}
	p.timeline[run] = append(p.timeline[run], env.ID)
}

// snapshot is everything the API says, as raw JSON, for identical-output checks.
func snapshot(t *testing.T, base string, runs []string) string {
	t.Helper()
	var sb strings.Builder
	sb.Write(getJSON(t, base+"/api/runs", nil))
	for _, r := range runs {
		sb.Write(getJSON(t, base+"/api/runs/"+r, nil))
		sb.Write(getJSON(t, base+"/api/runs/"+r+"/metrics", nil))
	}
	return sb.String()
}

func TestKilledTrackerRestartsWithEachEventOnceAndRebuildsIdentically(t *testing.T) {
	srv := bustest.Server(t)
	b := bustest.Connect(t, srv, bus.Options{})
	ctx := t.Context()
	pub := newPublished()
	runs := []string{events.NewRunID(), events.NewRunID(), events.NewRunID()}
	step := map[string]int64{}
	metrics := func(run string, n int) {
		for range n {
			step[run]++
			pub.send(t, b, run, events.MetricsLogged{Step: step[run], Epoch: float64(step[run]) / 100,
				Values: map[string]events.Metric{"loss": events.Metric(1 / float64(step[run])), "learning_rate": 2e-4, "grad_norm": 0.5}})
		}
	}
	for _, r := range runs {
		pub.send(t, b, r, events.RunRequested{Config: events.ConfigSource{FileName: r + ".yml", YAML: "base_model: x\n"}})
		pub.send(t, b, r, events.ConfigValidated{Resolved: "base_model: x\n"})
		pub.send(t, b, r, events.TrainingStarted{Worker: "w1", Method: "lora", TotalSteps: 2000})
		metrics(r, 100)
	}
	last1, _ := b.LastSequence(ctx, bus.EventsStream)

	dir := t.TempDir()
	c := startChild(t, srv.URL(), dir)
	waitPosition(t, c.addr, last1)

	// A burst the child is still working through when it is killed.
	for range 6 {
		for _, r := range runs {
			metrics(r, 150)
			pub.send(t, b, r, events.CheckpointSaved{Step: step[r], Name: fmt.Sprintf("checkpoint-%d", step[r]), Kind: "adapter",
				Files: []events.FileRef{{Path: "adapter_model.safetensors", Artifact: artifact}}})
		}
	}
	last2, _ := b.LastSequence(ctx, bus.EventsStream)
	waitPosition(t, c.addr, last1+(last2-last1)/3)
	killedAt := position(t, c.addr)
	c.kill(t)
	t.Logf("killed the tracker at stream sequence %d of %d", killedAt, last2)

	// Events published while it is down.
	pub.send(t, b, runs[0], events.RunFailed{Stage: events.StageTrain, Error: "worker lost", Retryable: true})
	metrics(runs[1], 10)
	pub.send(t, b, runs[2], events.TrainingCompleted{Steps: step[runs[2]], Kind: "adapter", Files: []events.FileRef{{Path: "adapter_model.safetensors", Artifact: artifact}}})
	last3, _ := b.LastSequence(ctx, bus.EventsStream)

	c = startChild(t, srv.URL(), dir)
	waitPosition(t, c.addr, last3)
	for _, r := range runs {
		var d RunDetail
		getJSON(t, c.addr+"/api/runs/"+r, &d)
		var ids []string
		for _, e := range d.Events {
			ids = append(ids, e.ID)
		}
		if !slices.Equal(ids, pub.timeline[r]) {
			t.Fatalf("run %s timeline:\n got  %v\n want %v", r, ids, pub.timeline[r])
		}
		if d.Run.Events != len(pub.timeline[r]) || d.Run.MetricEvents != pub.metricEv[r] || d.Run.MetricPoints != int64(3*pub.metricEv[r]) {
			t.Fatalf("run %s counts: events %d/%d metric events %d/%d points %d", r, d.Run.Events, len(pub.timeline[r]), d.Run.MetricEvents, pub.metricEv[r], d.Run.MetricPoints)
		}
		var s SeriesResponse
		getJSON(t, c.addr+"/api/runs/"+r+"/metrics", &s)
		for name, want := range pub.steps[r] {
			var got []int64
			for _, p := range s.Series[name] {
				got = append(got, p.Step)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("run %s series %s: %d points, want %d", r, name, len(got), len(want))
			}
		}
	}
	var list RunsResponse
	getJSON(t, c.addr+"/api/runs", &list)
	if len(list.Runs) != 3 || list.Runs[0].ID != runs[2] || list.Runs[2].Status != StatusFailed || list.Runs[0].Status != StatusCompleted {
		t.Fatalf("runs list: %+v", list.Runs)
	}
	before := snapshot(t, c.addr, runs)
	c.kill(t)

	rebuilt, err := Rebuild(ctx, b, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	api := httptest.NewServer(NewAPI(rebuilt))
	defer api.Close()
	if after := snapshot(t, api.URL, runs); after != before {
		t.Fatalf("rebuild differs from the crashed-and-restarted projection:\nbefore %.600s\nafter  %.600s", before, after)
	}
}

func TestAPIErrors(t *testing.T) {
	s := openTestStore(t)
	api := httptest.NewServer(NewAPI(s))
	defer api.Close()
	for path, want := range map[string]int{
		"/api/runs/nope":             http.StatusNotFound,
		"/api/runs/bad%20id":         http.StatusBadRequest,
		"/api/runs/x/events?after=z": http.StatusBadRequest,
		"/api/elsewhere":             http.StatusNotFound,
	} {
		if path == "/api/runs/x/events?after=z" {
			_, _ = s.Apply(mustEnv(t, "x", events.RunCancelled{}), 1)
		}
		resp, err := http.Get(api.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != want || body["error"] == "" {
			t.Errorf("GET %s: %d %v, want %d with an error", path, resp.StatusCode, body, want)
		}
	}
	var list RunsResponse
	getJSON(t, api.URL+"/api/runs", &list)
	if len(list.Runs) != 1 {
		t.Fatalf("runs %+v", list)
	}
}
