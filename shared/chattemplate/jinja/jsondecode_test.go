package jinja

import (
	"strings"
	"testing"
)

// TestDecodeJSONLikePython: key order kept (a repeated key keeps its first
// place and last value, as json.loads into a dict does), ints and floats
// told apart by their spelling, and printing gives Python's repr.
func TestDecodeJSONLikePython(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"b": 1, "a": [1.0, 2, -0, 1e2, 3E-1, null, true, "é\u00e9"], "b": {"z": {}, "y": []}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Str(v), `{'b': {'z': {}, 'y': []}, 'a': [1.0, 2, 0, 100.0, 0.3, None, True, 'éé']}`; got != want {
		t.Errorf("decoded %s, want %s", got, want)
	}
	for _, bad := range []string{`{"a": 1`, `[1, 2`, `{"a" 1}`, `[1] [2]`, ``, `{"a": tru}`} {
		if _, err := DecodeJSON([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "invalid JSON") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

// TestDumpJSONOptions covers json.dumps' separators, indent forms and
// ensure_ascii on top of what the conformance corpus renders.
func TestDumpJSONOptions(t *testing.T) {
	v, _ := DecodeJSON([]byte(`{"k": ["é😀", {"n": 1.5}], "e": {}}`))
	tab, empty, comma, colon := "\t", "", ",", ":"
	for _, c := range []struct {
		opts JSONOptions
		want string
	}{
		{JSONOptions{}, `{"k": ["é😀", {"n": 1.5}], "e": {}}`},
		{JSONOptions{EnsureASCII: true}, `{"k": ["\u00e9\ud83d\ude00", {"n": 1.5}], "e": {}}`},
		{JSONOptions{Indent: &tab}, "{\n\t\"k\": [\n\t\t\"é😀\",\n\t\t{\n\t\t\t\"n\": 1.5\n\t\t}\n\t],\n\t\"e\": {}\n}"},
		{JSONOptions{Indent: &empty}, "{\n\"k\": [\n\"é😀\",\n{\n\"n\": 1.5\n}\n],\n\"e\": {}\n}"},
		{JSONOptions{ItemSep: &comma, KeySep: &colon, SortKeys: true}, `{"e":{},"k":["é😀",{"n":1.5}]}`},
	} {
		got, err := DumpJSON(v, c.opts)
		if err != nil || got != c.want {
			t.Errorf("%+v: got %q, %v\nwant %q", c.opts, got, err, c.want)
		}
	}
	if _, err := DumpJSON(Undefined{Name: "x"}, JSONOptions{}); err == nil || err.Error() != "Object of type Undefined is not JSON serializable" {
		t.Errorf("undefined: %v", err)
	}
}
