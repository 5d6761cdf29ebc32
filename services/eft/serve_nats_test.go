package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eftml/eft/shared/bus"
)

// lockedBuffer is a command's stderr read while the command still runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startCommand runs an eft command line until the test ends (its context
// cancelled, as Ctrl-C does).
func startCommand(t *testing.T, args ...string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	root := newRoot(&globals{})
	root.SetArgs(args)
	var out lockedBuffer
	root.SetOut(&out)
	root.SetErr(&out)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("eft %s: %v", strings.Join(args, " "), err)
		}
	})
	return &out
}

func waitForFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(data))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// `eft serve nats` with a user from the environment: clients without the
// password are refused, `eft health` passes with it, and the monitoring
// endpoint answers the health check compose runs.
func TestServeNATSWithAUserFromTheEnvironment(t *testing.T) {
	t.Setenv(bus.EnvNATSUser, "eft")
	t.Setenv(bus.EnvNATSPassword, "compose-secret")
	home := t.TempDir()
	log := startCommand(t, "--home", home, "serve", "nats", "--listen", "127.0.0.1:0", "--monitor", "127.0.0.1:0")
	url := waitForFile(t, filepath.Join(home, "nats.url"))
	if _, err := os.Stat(filepath.Join(home, "nats", "jetstream")); err != nil {
		t.Fatalf("the JetStream store is not under the home: %v", err)
	}

	code, out, stderr := runCLI(t, "health", url)
	if code != 0 || !strings.Contains(out, url+": ok") {
		t.Fatalf("health with the credentials of the environment: %d %s %s", code, out, stderr)
	}
	t.Setenv(bus.EnvNATSPassword, "wrong")
	if code, _, stderr := runCLI(t, "health", url); code != 1 || !strings.Contains(stderr, "Authorization Violation") {
		t.Fatalf("health with a wrong password: %d %q", code, stderr)
	}
	var monitor string
	for _, line := range strings.Split(log.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "nats monitoring on "); ok {
			monitor = strings.Fields(rest)[0]
		}
	}
	if monitor == "" {
		t.Fatalf("no monitoring address in:\n%s", log.String())
	}
	if code, out, stderr := runCLI(t, "health", monitor+"/healthz"); code != 0 {
		t.Fatalf("health of the monitoring endpoint: %d %s %s", code, out, stderr)
	}
	if code, _, stderr := runCLI(t, "health", "ftp://x"); code != 1 || !strings.Contains(stderr, "not an http(s), nats or tls URL") {
		t.Fatalf("health ftp://: %d %q", code, stderr)
	}
}

func TestServeNATSRefusesAnOpenServerOnTheNetwork(t *testing.T) {
	t.Setenv(bus.EnvNATSUser, "")
	t.Setenv(bus.EnvNATSPassword, "")
	code, _, stderr := runCLI(t, "--home", t.TempDir(), "serve", "nats", "--listen", "0.0.0.0:0")
	if code != 1 || !strings.Contains(stderr, "without authentication") {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	t.Setenv(bus.EnvNATSUser, "eft")
	code, _, stderr = runCLI(t, "--home", t.TempDir(), "serve", "nats")
	if code != 1 || !strings.Contains(stderr, "set both EFT_NATS_USER and EFT_NATS_PASSWORD") {
		t.Fatalf("a user without a password: exit %d: %q", code, stderr)
	}
}

// The health endpoint of `eft serve X --health` follows the connection:
// 200 while connected, 503 naming the state while NATS is away.
func TestServeHealthFollowsTheConnection(t *testing.T) {
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Dir: t.TempDir(), Users: []bus.User{{Name: "eft", Password: "pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g := &globals{Home: t.TempDir(), NATSURL: srv.URL(), NATSAuth: bus.Credentials{User: "eft", Password: "pw"}}
	sys, err := startSystemWith(ctx, g, "test-health", []string{"validate"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Stop()
	url, err := serveHealth(ctx, "127.0.0.1:0", sys)
	if err != nil {
		t.Fatal(err)
	}
	status := func() int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status(); s != http.StatusOK {
		t.Fatalf("healthy system answers %d", s)
	}
	srv.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for status() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("still healthy 10s after NATS went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
