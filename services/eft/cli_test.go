package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/tracker"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/testfixtures"
)

var runLine = regexp.MustCompile(`(?m)^run ([0-9A-Z]{26})$`)

func runIDFrom(t *testing.T, out string) string {
	t.Helper()
	m := runLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no run id in output:\n%s", out)
	}
	return m[1]
}

func showRun(t *testing.T, home, id string) tracker.RunDetail {
	t.Helper()
	code, out, stderr := runCLI(t, "--home", home, "runs", "show", id, "--json")
	if code != 0 {
		t.Fatalf("runs show: %d %s", code, stderr)
	}
	var d tracker.RunDetail
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("runs show --json: %v\n%s", err, out)
	}
	return d
}

// A valid config: RunRequested reaches the tracker, the validate stage
// passes it, and the run ends plainly at ingest, which cannot fetch the
// hub dataset offline (tests never reach the real hub).
func TestTrainValidConfigEndsAtTheFirstMissingStage(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "1")
	home := t.TempDir()
	cfg := testfixtures.Path(t, "configs", "llama3-lora.yml")
	code, out, stderr := runCLI(t, "--home", home, "train", cfg, "--lora-r", "8")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the run cannot complete)\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "FAILED     at stage ingest: datasets[0] (mhenrichsen/alpaca_2k_test)") {
		t.Fatalf("output does not name the missing stage:\n%s", out)
	}
	if !strings.Contains(stderr, "failed at stage ingest") {
		t.Fatalf("stderr %q", stderr)
	}
	id := runIDFrom(t, out)
	d := showRun(t, home, id)
	var types []string
	for _, e := range d.Events {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, " "); got != "run.requested.v1 config.validated.v1 run.failed.v1" {
		t.Fatalf("timeline %s", got)
	}
	var req events.RunRequested
	if err := json.Unmarshal(d.Events[0].Payload, &req); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg)
	if req.Config.YAML != string(data) || req.Config.FileName != cfg || strings.Join(req.Config.Overrides, " ") != "--lora-r 8" {
		t.Fatalf("RunRequested does not carry the config as submitted: %+v", req.Config)
	}
	var validated events.ConfigValidated
	_ = json.Unmarshal(d.Events[1].Payload, &validated)
	if !strings.Contains(validated.Resolved, "lora_r: 8") {
		t.Fatalf("resolved config does not have the override:\n%s", validated.Resolved)
	}
	if d.Run.Status != tracker.StatusFailed || d.Run.Failure.Stage != events.StageIngest || d.Run.Failure.Retryable {
		t.Fatalf("run %+v", d.Run)
	}

	// One trace from the CLI's publish through every stage that reacted.
	if d.Run.TraceID == "" {
		t.Fatal("the run has no trace id")
	}
	for _, e := range d.Events {
		if !strings.Contains(e.TraceParent, d.Run.TraceID) {
			t.Fatalf("%s by %s has traceparent %q, not trace %s", e.Type, e.Producer, e.TraceParent, d.Run.TraceID)
		}
	}
	if d.Events[1].Producer != "validate" || d.Events[2].Producer != "ingest" {
		t.Fatalf("producers %s, %s", d.Events[1].Producer, d.Events[2].Producer)
	}

	// The same home again: state persists, the new run is listed first.
	code, out, _ = runCLI(t, "--home", home, "train", cfg)
	if code != 1 {
		t.Fatalf("second train: %d", code)
	}
	second := runIDFrom(t, out)
	code, out, _ = runCLI(t, "--home", home, "runs")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[1], second) || !strings.HasPrefix(lines[2], id) || !strings.Contains(lines[2], "ingest: datasets[0]") {
		t.Fatalf("runs:\n%s", out)
	}
	code, out, _ = runCLI(t, "--home", home, "logs", id)
	if code != 0 || !strings.Contains(out, "validated  config ok") || !strings.Contains(out, "FAILED     at stage ingest") {
		t.Fatalf("logs: %d\n%s", code, out)
	}
}

// An invalid config: RunFailed at stage "validate", naming the key and line.
func TestTrainInvalidConfigFailsAtValidateNamingKeyAndLine(t *testing.T) {
	home := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "bad.yml")
	yaml := `base_model: ./models/llama
datasets:
  - path: data.jsonl
    type: alpaca
micro_batch_size: 2
gradient_accumulation_steps: 4
learning_rate: fast
output_dir: ./out
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "--home", home, "train", cfg)
	if code != 1 || !strings.Contains(out, "FAILED     at stage validate:") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	d := showRun(t, home, runIDFrom(t, out))
	last := d.Events[len(d.Events)-1]
	var failed events.RunFailed
	if err := json.Unmarshal(last.Payload, &failed); err != nil || last.Type != events.TypeRunFailed {
		t.Fatalf("last event %s: %v", last.Type, err)
	}
	if failed.Stage != events.StageValidate || failed.Retryable || len(failed.Issues) == 0 {
		t.Fatalf("RunFailed %+v", failed)
	}
	is := failed.Issues[0]
	if is.Key != "learning_rate" || is.Line != 7 || is.File != cfg {
		t.Fatalf("issue %+v, want learning_rate at %s:7", is, cfg)
	}
	if !strings.Contains(failed.Error, cfg+":7:") || !strings.Contains(out, cfg+":7:") {
		t.Fatalf("error text does not locate the problem: %q", failed.Error)
	}
}

func TestConfigCommand(t *testing.T) {
	cfg := testfixtures.Path(t, "configs", "llama3-lora.yml")
	code, out, stderr := runCLI(t, "config", cfg, "--learning-rate", "3e-4", "--sample-packing=false")
	if code != 0 || !strings.Contains(out, "learning_rate: 0.0003") || !strings.Contains(out, "sample_packing: false") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "config", cfg, "--no-such-key", "1")
	if code != 1 || out != "" || !strings.Contains(stderr, "error: --no-such-key") {
		t.Fatalf("bad override: exit %d stdout %q stderr %q", code, out, stderr)
	}
	code, _, stderr = runCLI(t, "config", filepath.Join(t.TempDir(), "missing.yml"))
	if code != 1 || !strings.Contains(stderr, "missing.yml") {
		t.Fatalf("missing file: %d %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "config")
	if code != 1 || !strings.Contains(stderr, "takes one config file") {
		t.Fatalf("no file: %d %q", code, stderr)
	}
}

func TestSplitConfigArgs(t *testing.T) {
	g := &globals{}
	var cmd *cobra.Command
	root := newRoot(g)
	for _, c := range root.Commands() {
		if c.Name() == "submit" {
			cmd = c
		}
	}
	pos, ovr, err := splitConfigArgs(cmd, []string{"--nats", "nats://x:1", "cfg.yml", "--lora-r", "8", "--sample-packing", "-f", "--learning-rate=2e-4", "--home=/h"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pos, " ") != "cfg.yml" || strings.Join(ovr, " ") != "--lora-r 8 --sample-packing --learning-rate=2e-4" {
		t.Fatalf("positional %q overrides %q", pos, ovr)
	}
	if g.NATSURL != "nats://x:1" || g.Home != "/h" || !cmd.Flags().Changed("follow") {
		t.Fatalf("our flags: %+v follow %v", g, cmd.Flags().Changed("follow"))
	}
}

// `eft serve` against a cluster and `eft submit` to it: the submitted run's
// id is printed, and the served tracker has it.
func TestServeAndSubmit(t *testing.T) {
	srv := bustest.Server(t)
	home := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g := &globals{Home: home, NATSURL: srv.URL()}
	sys, err := startSystemWith(ctx, g, "test-serve", serviceNames(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Stop()
	cfg := testfixtures.Path(t, "configs", "full-finetune.yml")
	code, out, stderr := runCLI(t, "--home", t.TempDir(), "--nats", srv.URL(), "submit", cfg, "-f")
	if code != 1 {
		t.Fatalf("submit -f: exit %d\n%s\n%s", code, out, stderr)
	}
	id := strings.SplitN(out, "\n", 2)[0]
	if !events.ValidRunID(id) || !strings.Contains(out, "FAILED     at stage ingest") {
		t.Fatalf("submit output:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, _ = runCLI(t, "--tracker", sys.tracker.URL(), "runs", "show", id)
		if code == 0 && strings.Contains(out, "status   failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracker never showed the run failed:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, _, stderr = runCLI(t, "--home", home, "submit", cfg)
	if code != 1 || !strings.Contains(stderr, "--nats") {
		t.Fatalf("submit without a cluster: %d %q", code, stderr)
	}
	if code, _, stderr = runCLI(t, "serve", "nonesuch"); code != 1 || !strings.Contains(stderr, `no service "nonesuch"`) {
		t.Fatalf("serve nonesuch: %d %q", code, stderr)
	}
}

func TestTrackerRebuildCommand(t *testing.T) {
	home := t.TempDir()
	cfg := testfixtures.Path(t, "configs", "llama3-lora.yml")
	runCLI(t, "--home", home, "train", cfg)
	_, before, _ := runCLI(t, "--home", home, "runs", "--json")
	code, out, stderr := runCLI(t, "--home", home, "tracker", "rebuild")
	if code != 0 || !strings.Contains(out, "rebuilt 1 runs from 3 stream messages") {
		t.Fatalf("rebuild: %d %q %q", code, out, stderr)
	}
	_, after, _ := runCLI(t, "--home", home, "runs", "--json")
	if before != after || !strings.Contains(after, `"status": "failed"`) {
		t.Fatalf("runs differ after rebuild:\n%s\n%s", before, after)
	}
}
