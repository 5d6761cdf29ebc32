package datasets

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// toStd converts a row value to what encoding/json decodes (with UseNumber),
// so the two parsers can be compared.
func toStd(v any) any {
	switch x := v.(type) {
	case Object:
		m := map[string]any{}
		for _, f := range x {
			m[f.Name] = toStd(f.Value)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toStd(e)
		}
		return out
	default:
		return x
	}
}

func sameValue(ours, std any) bool {
	switch s := std.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(s), 64)
		switch o := ours.(type) {
		case int64:
			n, err := strconv.ParseInt(string(s), 10, 64)
			return err == nil && n == o
		case float64:
			return (err == nil || math.IsInf(f, 0)) && (f == o || math.IsInf(f, 0) && math.IsInf(o, 0))
		}
		return false
	case map[string]any:
		o, ok := ours.(map[string]any)
		if !ok || len(o) != len(s) {
			return false
		}
		for k, v := range s {
			if !sameValue(o[k], v) {
				return false
			}
		}
		return true
	case []any:
		o, ok := ours.([]any)
		if !ok || len(o) != len(s) {
			return false
		}
		for i := range s {
			if !sameValue(o[i], s[i]) {
				return false
			}
		}
		return true
	default:
		return ours == std
	}
}

func jsonDepth(data []byte) int {
	depth, maxDepth, inString, escaped := 0, 0, false, false
	for _, c := range data {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == '[' || c == '{'):
			depth++
			maxDepth = max(maxDepth, depth)
		case !inString && (c == ']' || c == '}'):
			depth--
		}
	}
	return maxDepth
}

// FuzzParseJSON holds the hand-written parser to encoding/json: it accepts
// exactly the valid UTF-8 JSON documents (within the depth limit), decodes
// the same values, and its canonical encoding reads back unchanged.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"a": 1, "b": [true, false, null], "c": {"d": "e"}}`, `[1, -2.5e3, 0, -0, 1E+2]`, `"\ud83d\ude00 \u00e9 \ud800 x"`,
		`{"dup": 1, "dup": 2}`, `12345678901234567890`, `{"a":}`, `[1,]`, "\"\xff\"", `{"a" 1}`, `  null  `, `01`, `1.`, `-`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := parseJSON(data)
		valid := json.Valid(data)
		if err == nil && !valid {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if err != nil {
			if valid && utf8.Valid(data) && jsonDepth(data) <= maxJSONDepth {
				t.Fatalf("rejected valid JSON %q: %v", data, err)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var std any
		if err := dec.Decode(&std); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if !sameValue(toStd(v), std) {
			t.Fatalf("decoded %#v, encoding/json decoded %#v", toStd(v), std)
		}
		enc := AppendJSON(nil, v)
		back, err := parseJSON(enc)
		if err != nil {
			t.Fatalf("canonical encoding %q does not parse: %v", enc, err)
		}
		if again := AppendJSON(nil, back); !bytes.Equal(again, enc) {
			t.Fatalf("encoding is not stable: %q then %q", enc, again)
		}
	})
}

// checkReport holds what every reader run must satisfy: rows and rejected
// rows account for the input, every problem names a file and line, and
// every row value encodes to JSON that reads back the same.
func checkReport(t *testing.T, name string, c *collector) {
	t.Helper()
	if c.report.Rows != len(c.rows) {
		t.Fatalf("report counts %d rows, collector holds %d", c.report.Rows, len(c.rows))
	}
	n := 0
	for _, k := range c.report.Reasons {
		n += k
	}
	if n != c.report.Rejected {
		t.Fatalf("reasons add to %d, rejected %d", n, c.report.Rejected)
	}
	for _, p := range c.report.Problems {
		if p.Source.File != name || p.Source.Line < 0 || p.Source.Row < 0 {
			t.Fatalf("problem without its file and position: %+v", p)
		}
	}
	for _, r := range c.rows {
		enc := AppendJSON(nil, r.Fields)
		back, err := parseJSON(enc)
		if err != nil {
			t.Fatalf("row %s encodes to %q which does not parse: %v", r.Source, enc, err)
		}
		if again := AppendJSON(nil, back); !bytes.Equal(again, enc) {
			t.Fatalf("row %s does not round-trip: %q then %q", r.Source, enc, again)
		}
	}
}

// FuzzReadJSON feeds arbitrary bytes to the .json/.jsonl reader: it must
// return rows, bad rows or an error, never panic.
func FuzzReadJSON(f *testing.F) {
	for _, s := range []string{
		"{\"a\": 1}\n{\"a\": 2}\n", "{\"a\": 1}\n{bad\n\n[1]\n", "[{\"a\": 1}, \"text\", 3]", "{\n \"a\": [1, 2],\n \"b\": {\"0\": 3, \"1\": 4}\n}\n",
		"\xef\xbb\xbf{\"bom\": true}\r\n", "[", "{\"a\":\"\\u0000\"}", "\n\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newCollector([]Requirement{{Field: "a"}}, 5)
		if err := readJSON(bytes.NewReader(data), "fuzz.jsonl", JSONOptions{}, c); err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.jsonl") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		checkReport(t, "fuzz.jsonl", c)
	})
}

// FuzzReadCSV feeds arbitrary bytes to the CSV reader.
func FuzzReadCSV(f *testing.F) {
	for _, s := range []string{
		"a,b\n1,2\n", "a,b\n\"x,y\",2\n\"multi\nline\",3\n", "a\n1\n2.5\nNaN\n", "a,b\n1,2,3\n4\n", "a,a,a.1\n1,2,3\n",
		"x\n\"unterminated\n", "a,b\nTrue,\nfalse,NA\n", "\xef\xbb\xbfh\r\nv\r\n", "a\n\"bare\"quote\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newCollector(nil, 5)
		if err := readCSV(bytes.NewReader(data), "fuzz.csv", c); err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		checkReport(t, "fuzz.csv", c)
		for _, r := range c.rows {
			if len(c.rows) > 0 && len(r.Fields) != len(c.rows[0].Fields) {
				t.Fatalf("row %s has %d fields, first row %d", r.Source, len(r.Fields), len(c.rows[0].Fields))
			}
		}
	})
}

func TestAppendJSONFloats(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{{1, "1.0"}, {0.5, "0.5"}, {1e21, "1e+21"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {1e-7, "1e-07"}, {0.0001, "0.0001"}, {math.Copysign(0, -1), "-0.0"}, {math.NaN(), "null"}, {123456789.125, "123456789.125"}} {
		if got := string(AppendJSON(nil, tc.f)); got != tc.want {
			t.Errorf("AppendJSON(%v) = %s, want %s", tc.f, got, tc.want)
		}
		if _, err := parseJSON(AppendJSON(nil, tc.f)); err != nil {
			t.Errorf("%v does not parse back: %v", tc.f, err)
		}
	}
	if got := string(AppendJSON(nil, "a\x01\"\\\xff")); got != `"a\u0001\"\\�"` {
		t.Errorf("string escaping = %s", got)
	}
}
