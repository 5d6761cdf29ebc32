package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/testfixtures"
)

// eftBin is the eft binary the processes run, built once by TestMain.
var eftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eft-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	eftBin = filepath.Join(dir, "eft")
	build := exec.Command("go", "build", "-o", eftBin, "github.com/eftml/eft/services/eft")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building eft for the cluster tests: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// EnvSlow turns on the slow tests (the 8-second NATS outage, the 20-run
// load): `make test-faults` sets it, `make test` does not.
const EnvSlow = "EFT_SLOW_TESTS"

// slow skips t unless EnvSlow is set.
func slow(t *testing.T) {
	t.Helper()
	if os.Getenv(EnvSlow) == "" {
		t.Skipf("slow (about 30 s): make test-faults runs it (%s=1)", EnvSlow)
	}
}

// The NATS user every process of a test cluster authenticates as: auth is
// on, as in compose.
const (
	natsUser     = "eft"
	natsPassword = "cluster-test-password"
)

// cluster is an `eft serve nats` process on a fixed port (so that a
// restarted server is found again) and the eft processes started on it.
type cluster struct {
	t    *testing.T
	dir  string
	port int
	nats *proc
	bus  *bus.Bus // the test's own connection, for submitting and following
	mu   sync.Mutex
	all  []*proc
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), port: freePort(t)}
	c.nats = c.startNATS()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, c.url(), bus.Options{Name: "cluster-test", Credentials: bus.Credentials{User: natsUser, Password: natsPassword}})
	if err != nil {
		t.Fatal(err)
	}
	c.bus = b
	t.Cleanup(func() {
		_ = b.Close()
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (c *cluster) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", c.port) }

// startNATS starts (or restarts) the server on the cluster's port and store.
func (c *cluster) startNATS() *proc {
	c.t.Helper()
	p := c.start("nats", []string{"--home", filepath.Join(c.dir, "nats"), "serve", "nats", "--listen", fmt.Sprintf("127.0.0.1:%d", c.port)})
	p.waitLog(c.t, "nats serving on", 30*time.Second)
	return p
}

// serve starts `eft serve ARGS...` with its own home, on the cluster.
func (c *cluster) serve(name string, args ...string) *proc {
	c.t.Helper()
	home := filepath.Join(c.dir, name)
	p := c.start(name, append([]string{"--home", home, "--nats", c.url(), "serve"}, args...))
	p.waitLog(c.t, "serving ", 30*time.Second)
	return p
}

// proc is one eft process; its stderr goes to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

func (c *cluster) start(name string, args []string) *proc {
	c.t.Helper()
	logPath := filepath.Join(c.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(eftBin, args...)
	cmd.Env = append(os.Environ(), bus.EnvNATSUser+"="+natsUser, bus.EnvNATSPassword+"="+natsPassword, "HF_HUB_OFFLINE=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	c.mu.Lock()
	c.all = append(c.all, p)
	c.mu.Unlock()
	c.t.Cleanup(func() { p.stop(c.t) })
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) log() string {
	data, _ := os.ReadFile(p.logPath)
	return string(data)
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitLog waits until the process logged a line containing s.
func (p *proc) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.log(), s) {
		if !p.running() {
			t.Fatalf("%s exited (%v) before logging %q:\n%s", p.name, p.err, s, p.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %s:\n%s", p.name, s, timeout, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL: no cleanup, no nak, no flush.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// stop asks the process to stop (SIGTERM, as docker stop does) and kills it
// after 30 seconds.
func (p *proc) stop(t *testing.T) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30s of SIGTERM; killing it", p.name)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

func (c *cluster) dumpLogs() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.all {
		log := p.log()
		if len(log) > 4000 {
			log = "…" + log[len(log)-4000:]
		}
		c.t.Logf("--- %s (pid %d) log:\n%s", p.name, p.pid(), log)
	}
}

// worker is how a trainer process names itself in TrainingStarted.
func (p *proc) worker() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, p.pid())
}

// tinyRun is a LoRA run of examples/tiny (the 2-layer llama and its 92
// rows) for steps steps, a checkpoint every saveSteps.
type tinyRun struct {
	Steps, SaveSteps int
	Seed             int
	Pool             string
	Extra            string
}

func (r tinyRun) yaml(t *testing.T) string {
	tiny := filepath.Join(testfixtures.Root(t), "examples", "tiny")
	save := r.SaveSteps
	if save == 0 {
		save = r.Steps
	}
	text := fmt.Sprintf(`base_model: %s
adapter: lora
lora_r: 4
lora_alpha: 8
lora_target_linear: true
datasets:
  - path: %s
    type: alpaca:chatml
val_set_size: 0
sequence_len: 128
sample_packing: true
micro_batch_size: 1
gradient_accumulation_steps: 1
max_steps: %d
learning_rate: 0.005
logging_steps: 1
save_steps: %d
save_total_limit: 2
output_dir: ./out
seed: %d
`, filepath.Join(tiny, "model"), filepath.Join(tiny, "data", "facts.jsonl"), r.Steps, save, r.Seed)
	if r.Pool != "" {
		text += "trainer_pool: " + r.Pool + "\n"
	}
	return text + r.Extra
}

// submit publishes RunRequested as `eft submit` does and returns the run id.
func (c *cluster) submit(r tinyRun) string {
	c.t.Helper()
	return c.submitYAML(r.yaml(c.t))
}

func (c *cluster) submitYAML(yaml string) string {
	c.t.Helper()
	runID := events.NewRunID()
	req := events.RunRequested{Config: events.ConfigSource{FileName: "tiny.yml", YAML: yaml}, WorkDir: c.t.TempDir()}
	if _, err := c.bus.PublishNew(context.Background(), runID, "eft", req); err != nil {
		c.t.Fatal(err)
	}
	return runID
}

// follow reads runID's events until its training ends (or it fails).
func (c *cluster) follow(runID string, timeout time.Duration) []events.Envelope {
	c.t.Helper()
	return c.eachEvent(runID, timeout, runtest.Ends)
}

// eachEvent reads runID's events from the first until visit returns true,
// skipping messages on its subjects that are not events (the fault tests
// publish poison), and returns the events read; it fails the test after
// timeout.
func (c *cluster) eachEvent(runID string, timeout time.Duration, visit func(events.Envelope) bool) []events.Envelope {
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
	var out []events.Envelope
	for {
		msg, err := iter.Next()
		if err != nil {
			c.t.Fatalf("run %s: %v after %d events (%s)", runID, err, len(out), runtest.Types(out))
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			continue
		}
		out = append(out, env)
		if visit(env) {
			return out
		}
	}
}

// waitForTracker polls the tracker's API until it has read the events
// stream up to position, failing the test after a minute.
func waitForTracker(t *testing.T, api string, position uint64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; {
		var h tracker.HealthResponse
		trackerAPI(t, api, "/api/health", &h)
		if h.Position >= position {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tracker is at %d of the stream's %d after a minute", h.Position, position)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// completed fails the test unless envs end with TrainingCompleted.
func completed(t *testing.T, runID string, envs []events.Envelope) {
	t.Helper()
	if last := envs[len(envs)-1]; last.Type != events.TypeTrainingCompleted {
		t.Fatalf("run %s ended with %s: %s", runID, last.Type, last.Payload)
	}
}

// trackerAPI reads JSON from the tracker's HTTP API.
func trackerAPI(t *testing.T, base, path string, into any) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// trackerURL is the API address a tracker process logged.
func (p *proc) trackerURL(t *testing.T) string {
	t.Helper()
	p.waitLog(t, "tracker API on ", 30*time.Second)
	sc := bufio.NewScanner(strings.NewReader(p.log()))
	url := ""
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "tracker API on "); ok {
			url = strings.TrimSpace(rest)
		}
	}
	return url
}

// metricsByStep counts each step's MetricsLogged in the log of record.
func metricsByStep(t *testing.T, envs []events.Envelope) map[int64]int {
	out := map[int64]int{}
	for _, m := range runtest.Of[events.MetricsLogged](t, envs) {
		out[m.Step]++
	}
	return out
}
