package validate

import (
	"os"
	"strings"
	"testing"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/testfixtures"
)

func TestCheckResolvesAValidConfig(t *testing.T) {
	path := testfixtures.Path(t, "configs", "llama3-qlora.yml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := Check(events.RunRequested{Config: events.ConfigSource{FileName: "qlora.yml", YAML: string(data), Overrides: []string{"--learning-rate", "1e-5"}}, WorkDir: "/runs/here"})
	ok, isOK := got.(events.ConfigValidated)
	if !isOK {
		t.Fatalf("got %#v", got)
	}
	if !strings.Contains(ok.Resolved, "learning_rate: 1e-05") || !strings.Contains(ok.Resolved, "adapter: qlora") {
		t.Fatalf("resolved config:\n%s", ok.Resolved)
	}
	if ok.WorkDir != "/runs/here" {
		t.Fatalf("work dir %q not passed on", ok.WorkDir)
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckLocatesEveryProblem(t *testing.T) {
	yaml := "base_model: m\nlearning_rate: 2e-4\nmicro_batch_size: many\ngradient_accumulation_steps: 1\n"
	got := Check(events.RunRequested{Config: events.ConfigSource{FileName: "c.yml", YAML: yaml, Overrides: []string{"--lora-rr", "3"}}})
	failed, ok := got.(events.RunFailed)
	if !ok {
		t.Fatalf("got %#v", got)
	}
	if failed.Stage != events.StageValidate || failed.Retryable {
		t.Fatalf("failed %+v", failed)
	}
	var found bool
	for _, is := range failed.Issues {
		if is.Key == "micro_batch_size" && is.Line == 3 && is.File == "c.yml" {
			found = true
		}
	}
	if !found || !strings.Contains(failed.Error, "c.yml:3:") || !strings.Contains(failed.Error, "--lora-rr") {
		t.Fatalf("issues %+v\nerror %s", failed.Issues, failed.Error)
	}
	bad := Check(events.RunRequested{Config: events.ConfigSource{FileName: "y.yml", YAML: "a: [1, 2\n"}})
	if f, ok := bad.(events.RunFailed); !ok || !strings.Contains(f.Error, "y.yml") {
		t.Fatalf("YAML syntax error: %#v", bad)
	}
}
