package cluster

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/testfixtures"
)

// What a deployed stack refuses, each through the real services: a dataset
// outside ingest's --data-root (an absolute path, and a "../" climb out of
// the root), a plain-http dataset URL (refused at validation, before any
// request is made; shared/datasets refuses it again at ingest).
// (trust_remote_code is accepted with a warning: eft runs no Python, so no
// code from a repository can run; shared/config tests the warning.)
func TestDeployedStackRefusesTraversalAndPlainHTTP(t *testing.T) {
	c := newCluster(t)
	root := filepath.Join(testfixtures.Root(t), "examples", "tiny", "data")
	c.serve("stages", "validate", "ingest", "--data-root", root)
	outside := filepath.Join(testfixtures.Root(t), "examples", "tiny", "model", "tokenizer.json")
	climb := root + "/../model/tokenizer.json" // not cleaned: the "../" is the attack

	for _, tc := range []struct {
		name, datasetPath, extra string
		stage, want              string
	}{
		{"absolute path outside the root", outside, "", events.StageIngest, "outside the allowed dataset root"},
		{"../ out of the root", climb, "", events.StageIngest, "outside the allowed dataset root"},
		{"plain http URL", "http://127.0.0.1:9/rows.jsonl", "", events.StageValidate, "datasets[0].path: http:// is not supported"},
	} {
		r := tinyRun{Steps: 1, Seed: 1, Extra: tc.extra}
		yaml := strings.Replace(r.yaml(t), filepath.Join(root, "facts.jsonl"), tc.datasetPath, 1)
		runID := c.submitYAML(yaml)
		envs := c.follow(runID, time.Minute)
		last := envs[len(envs)-1]
		f, err := events.PayloadAs[events.RunFailed](last)
		if err != nil || f.Stage != tc.stage || !strings.Contains(f.Error+issuesText(f), tc.want) {
			t.Fatalf("%s: the run ended with %s %s; want RunFailed at %s saying %q", tc.name, last.Type, last.Payload, tc.stage, tc.want)
		}
	}
}

func issuesText(f events.RunFailed) string {
	var b strings.Builder
	for _, i := range f.Issues {
		b.WriteString(" " + i.String())
	}
	return b.String()
}
