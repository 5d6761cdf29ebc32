package cluster

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/testfixtures"
)

// composeCommand finds `docker compose`: $EFT_COMPOSE (a docker-compose
// binary, as infra/compose-check.sh builds it), else the docker CLI's
// plugin, else the one compose-check.sh left in bin/tools.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if p := os.Getenv("EFT_COMPOSE"); p != "" {
		return []string{p}
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	built := filepath.Join(testfixtures.Root(t), "bin", "tools", "cli-plugins", "docker-compose")
	if _, err := os.Stat(built); err == nil {
		return []string{built}
	}
	if os.Getenv("EFT_REQUIRE_COMPOSE") != "" {
		t.Fatal("no docker compose, and EFT_REQUIRE_COMPOSE is set")
	}
	t.Skip("no docker compose here: infra/compose-check.sh (make compose-check) builds it from the Go module proxy")
	return nil
}

// composeConfig is the part of `docker compose config --format json` the
// test reads.
type composeConfig struct {
	Services map[string]struct {
		Image         string   `json:"image"`
		User          string   `json:"user"`
		Command       []string `json:"command"`
		ContainerName string   `json:"container_name"`
		ReadOnly      bool     `json:"read_only"`
		CapDrop       []string `json:"cap_drop"`
		Profiles      []string `json:"profiles"`
		Environment   map[string]*string
		Ports         []struct {
			Published string `json:"published"`
		} `json:"ports"`
		Healthcheck *struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
		Volumes []struct {
			Source string `json:"source"`
			Target string `json:"target"`
		} `json:"volumes"`
		Deploy *struct {
			Resources struct {
				Reservations struct {
					Devices []struct {
						Driver       string   `json:"driver"`
						Capabilities []string `json:"capabilities"`
					} `json:"devices"`
				} `json:"reservations"`
			} `json:"resources"`
		} `json:"deploy"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

func runCompose(t *testing.T, env []string, args ...string) ([]byte, error) {
	t.Helper()
	cmdline := append(composeCommand(t), append([]string{"-f", filepath.Join(testfixtures.Root(t), "compose.yaml")}, args...)...)
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Dir = t.TempDir() // no .env of the developer's
	cmd.Env = append(os.Environ(), env...)
	return cmd.CombinedOutput()
}

// compose.yaml passes `docker compose config` (every profile), refuses to
// render without a NATS password (auth is on by default), runs every eft
// service as the image's non-root user with a health check, keeps the
// trainer scalable (no fixed name, no host port), gives JetStream and the
// run store their volumes, and reserves an NVIDIA GPU in the gpu profile.
func TestComposeConfig(t *testing.T) {
	env := []string{"EFT_NATS_PASSWORD=compose-check"}
	out, err := runCompose(t, env, "--profile", "gpu", "--profile", "telemetry", "config", "--format", "json")
	if err != nil {
		t.Fatalf("docker compose config: %v\n%s", err, out)
	}
	var cfg composeConfig
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("docker compose config --format json: %v\n%s", err, out)
	}
	eftServices := []string{"nats", "tracker", "validate", "ingest", "tokenizer", "trainer", "evaluator", "merger", "trainer-gpu"}
	for _, name := range eftServices {
		s, ok := cfg.Services[name]
		if !ok {
			t.Fatalf("compose.yaml has no service %s", name)
		}
		if s.User != "65532:65532" || !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: user %q, read_only %v, cap_drop %v: want the non-root user, a read-only root and no capabilities", name, s.User, s.ReadOnly, s.CapDrop)
		}
		if s.Healthcheck == nil || !slices.Contains(s.Healthcheck.Test, "/eft") {
			t.Errorf("%s: health check %+v does not run eft health", name, s.Healthcheck)
		}
		if pw := s.Environment["EFT_NATS_PASSWORD"]; pw == nil || *pw != "compose-check" {
			t.Errorf("%s: EFT_NATS_PASSWORD not passed", name)
		}
		if name != "nats" && !slices.Contains(s.Command, "serve") {
			t.Errorf("%s: command %v", name, s.Command)
		}
	}
	if got := cfg.Services["nats"].Command; !slices.Equal(got, []string{"serve", "nats", "--config", "/etc/eft/nats.conf"}) {
		t.Errorf("nats runs %v", got)
	}
	trainer := cfg.Services["trainer"]
	if trainer.ContainerName != "" || len(trainer.Ports) > 0 {
		t.Errorf("trainer has a container name %q or host ports %v: --scale trainer=3 would clash", trainer.ContainerName, trainer.Ports)
	}
	if !slices.Contains(cfg.Services["ingest"].Command, "--data-root") {
		t.Errorf("ingest reads datasets from anywhere: %v", cfg.Services["ingest"].Command)
	}
	mounts := func(service, volume, target string) {
		for _, v := range cfg.Services[service].Volumes {
			if v.Source == volume && v.Target == target {
				return
			}
		}
		t.Errorf("%s does not mount volume %s at %s", service, volume, target)
	}
	mounts("nats", "nats-data", "/data")
	mounts("tracker", "tracker-data", "/data")
	mounts("trainer", "work", "/work")
	gpu := cfg.Services["trainer-gpu"]
	if gpu.Deploy == nil || len(gpu.Deploy.Resources.Reservations.Devices) != 1 ||
		gpu.Deploy.Resources.Reservations.Devices[0].Driver != "nvidia" || !slices.Contains(gpu.Deploy.Resources.Reservations.Devices[0].Capabilities, "gpu") ||
		!slices.Equal(gpu.Profiles, []string{"gpu"}) {
		t.Errorf("trainer-gpu: no NVIDIA GPU reservation in profile gpu: %+v %v", gpu.Deploy, gpu.Profiles)
	}

	// The default profile: no GPU trainer, no collector image to pull.
	out, err = runCompose(t, env, "config", "--services")
	if err != nil {
		t.Fatalf("docker compose config --services: %v\n%s", err, out)
	}
	services := strings.Fields(string(out))
	if slices.Contains(services, "trainer-gpu") || slices.Contains(services, "otel-collector") || len(services) != 8 {
		t.Errorf("default services %v", services)
	}
	// Authentication on by default: no password, no stack.
	out, err = runCompose(t, []string{"EFT_NATS_PASSWORD="}, "config", "-q")
	if err == nil || !strings.Contains(string(out), "NATS authentication is on") {
		t.Errorf("compose config without a password: %v\n%s", err, out)
	}
}

// infra/nats.conf, as compose's NATS runs it: JetStream in the EFT account,
// its user from the environment, nobody else admitted.
func TestShippedNATSConfig(t *testing.T) {
	t.Setenv(bus.EnvNATSUser, "eft")
	t.Setenv(bus.EnvNATSPassword, "shipped-config")
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{
		ConfigFile: filepath.Join(testfixtures.Root(t), "infra", "nats.conf"),
		Dir:        t.TempDir(), Host: "127.0.0.1", Port: -1, MonitorPort: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if b, err := bus.Connect(ctx, srv.URL(), bus.Options{}); err == nil {
		b.Close()
		t.Fatal("connected to the shipped config without credentials")
	}
	b, err := bus.Connect(ctx, srv.URL(), bus.Options{Credentials: bus.CredentialsFromEnv()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.PublishNew(ctx, events.NewRunID(), "test", events.RunCancelled{Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if srv.MonitorURL() == "" {
		t.Fatal("no monitoring endpoint for the health check")
	}
}
