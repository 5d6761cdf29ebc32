package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

func intp(v int) *int           { return &v }
func floatp(v float64) *float64 { return &v }
func configPath(t testing.TB, name string) string {
	t.Helper()
	return testfixtures.Path(t, "configs", name)
}

// public is c without its bookkeeping (file, positions), for comparisons.
func public(c *Config) Config {
	out := *c
	out.file, out.set, out.pos = "", nil, nil
	return out
}

// mustParse parses a config that must be valid.
func mustParse(t *testing.T, src string, overrides ...string) (*Config, []Issue) {
	t.Helper()
	c, warns, err := Parse("cfg.yml", []byte(src), overrides)
	if err != nil {
		t.Fatalf("Parse failed:\n%v\nconfig:\n%s", err, src)
	}
	return c, warns
}

// mustFail parses a config that must be refused and returns its issues.
func mustFail(t *testing.T, src string, overrides ...string) []Issue {
	t.Helper()
	c, _, err := Parse("cfg.yml", []byte(src), overrides)
	if err == nil {
		t.Fatalf("Parse accepted a bad config:\n%s\nresolved: %+v", src, public(c))
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is %T, want *config.Error: %v", err, err)
	}
	return ce.Issues
}

// findIssue returns the issue about key whose message contains want.
func findIssue(issues []Issue, key, want string) (Issue, bool) {
	for _, is := range issues {
		if is.Key == key && strings.Contains(is.Message, want) {
			return is, true
		}
	}
	return Issue{}, false
}

func requireIssue(t *testing.T, issues []Issue, key, want string) Issue {
	t.Helper()
	is, ok := findIssue(issues, key, want)
	if !ok {
		t.Fatalf("no issue on %q containing %q; got:\n%s", key, want, (&Error{Issues: issues}).Error())
	}
	return is
}

// base is the smallest valid config; tests add keys to it.
const base = `base_model: ./models/tiny-llama
datasets:
  - path: ./data/train.jsonl
    type: alpaca
micro_batch_size: 2
gradient_accumulation_steps: 1
learning_rate: 0.0002
`

// noLR is base without learning_rate.
var noLR = strings.Replace(base, "learning_rate: 0.0002\n", "", 1)
