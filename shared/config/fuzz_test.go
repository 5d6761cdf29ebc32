package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary documents and override lists to Parse. It must
// never panic, and a config it accepts must survive YAML() and parse back
// to the same Config. The seed corpus is the five real configs plus the
// files in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, rc := range realConfigs() {
		data, err := os.ReadFile(configPath(f, rc.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
	}
	f.Add([]byte(base), "--learning-rate 2e-4 --no-sample-packing --special-tokens.pad-token <pad>")
	f.Fuzz(func(t *testing.T, data []byte, args string) {
		overrides := strings.Fields(args)
		c, _, err := Parse("fuzz.yml", data, overrides)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse returned %T, want *Error: %v", err, err)
			}
			return
		}
		out, err := c.YAML()
		if err != nil {
			t.Fatalf("YAML of an accepted config: %v", err)
		}
		again, _, err := Parse("resolved.yml", out, nil)
		if err != nil {
			t.Fatalf("the resolved config does not parse: %v\ninput:\n%s\nresolved:\n%s", err, data, out)
		}
		if !reflect.DeepEqual(public(again), public(c)) {
			t.Fatalf("round trip changed the config:\n first %+v\nsecond %+v\nresolved:\n%s", public(c), public(again), out)
		}
	})
}
