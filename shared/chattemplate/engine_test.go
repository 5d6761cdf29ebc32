package chattemplate

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/shared/chattemplate/jinja"
	"github.com/eftml/eft/shared/testfixtures"
)

// fixtureClock is the clock generate.py pins strftime_now to.
func fixtureClock() time.Time { return time.Date(2025, 7, 10, 12, 0, 0, 0, time.UTC) }

func readJSONFixture(t testing.TB, parts ...string) any {
	t.Helper()
	data, err := os.ReadFile(testfixtures.Path(t, parts...))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jinja.DecodeJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", parts[len(parts)-1], err)
	}
	return v
}

// TestEngineSnippets holds the engine to Python's jinja2 in transformers'
// environment on small templates (testdata/chattemplates/engine.json):
// identical text, or the same exception class and message.
func TestEngineSnippets(t *testing.T) {
	cases := readJSONFixture(t, "chattemplates", "engine.json").([]any)
	failed := compareEngineCases(t, cases, false)
	t.Logf("%d/%d snippets identical to jinja2", len(cases)-failed, len(cases))
}

// TestRandomExpressions runs the cases random_expressions.py wrote when
// CHATTEMPLATE_RANDOM_CASES names the file; differences Python cannot
// reproduce (object addresses, Markup) are skipped.
func TestRandomExpressions(t *testing.T) {
	path := os.Getenv("CHATTEMPLATE_RANDOM_CASES")
	if path == "" {
		t.Skip("set CHATTEMPLATE_RANDOM_CASES to a file written by testdata/chattemplates/random_expressions.py")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jinja.DecodeJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	cases := v.([]any)
	failed := compareEngineCases(t, cases, true)
	t.Logf("%d/%d random cases identical to jinja2 (or unmatchable)", len(cases)-failed, len(cases))
}

func compareEngineCases(t *testing.T, cases []any, skipUnmatchable bool) int {
	t.Helper()
	env := transformersEnv(fixtureClock)
	failed := 0
	for i, c := range cases {
		src := field(c, "src").(string)
		vars := map[string]any{}
		d := field(c, "vars").(*jinja.Dict)
		for _, k := range d.Keys() {
			v, _ := d.Get(k)
			vars[k.(string)] = v
		}
		want, wantErr := field(c, "text"), field(c, "error")
		if skipUnmatchable {
			// Python prints object addresses, and safe/e make Markup.
			w, _ := want.(string)
			if strings.Contains(strings.ToLower(strings.ReplaceAll(w, ", ", "")), "0x") ||
				strings.Contains(src, "| e)") || strings.Contains(src, "| safe)") {
				continue
			}
		}
		var got string
		tpl, err := jinja.Compile(src)
		if err == nil {
			var res jinja.Result
			res, err = tpl.Render(vars, env)
			got = res.Text
		}
		switch {
		case wantErr != nil:
			var je *jinja.Error
			if err == nil {
				t.Errorf("case %d %q: rendered %q, want %s: %s", i, src, got, field(c, "error_type"), wantErr)
				failed++
			} else if !errors.As(err, &je) || string(je.Kind) != field(c, "error_type") || je.Msg != wantErr {
				t.Errorf("case %d %q:\n got error %v\nwant %s: %s", i, src, err, field(c, "error_type"), wantErr)
				failed++
			}
		case err != nil:
			t.Errorf("case %d %q: %v\nwant %q", i, src, err, want)
			failed++
		case got != want:
			t.Errorf("case %d %q:\n got %q\nwant %q", i, src, got, want)
			failed++
		}
	}
	return failed
}
