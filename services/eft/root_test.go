package main

import (
	"bytes"
	"strings"
	"testing"
)

// runCLI runs one command line in-process and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUnknownCommandFails(t *testing.T) {
	code, _, stderr := runCLI(t, "no-such-command")
	if code != 1 || !strings.Contains(stderr, `unknown command "no-such-command"`) {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}

func TestHomeDefaults(t *testing.T) {
	t.Setenv("EFT_HOME", "")
	g := &globals{}
	if err := g.resolve(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(g.Home, "/.eft") {
		t.Fatalf("default home %q", g.Home)
	}
	t.Setenv("EFT_HOME", "/tmp/x")
	t.Setenv("EFT_NATS_URL", "nats://h:4222")
	g = &globals{}
	_ = g.resolve()
	if g.Home != "/tmp/x" || g.NATSURL != "nats://h:4222" {
		t.Fatalf("from env: %+v", g)
	}
	g = &globals{Home: "/flag"}
	_ = g.resolve()
	if g.Home != "/flag" {
		t.Fatalf("flag lost to env: %+v", g)
	}
}
