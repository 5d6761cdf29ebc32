package prompt

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/datasets"
)

func TestReadRowsInPartsEqualsOnePiece(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // four parts whatever the machine
	var data []byte
	n := 0
	for len(data) < parallelReadBytes+(1<<20) {
		data = AppendRow(data, Row{Dataset: n % 3, Source: datasets.Source{File: "src.jsonl", Line: n + 1, Row: n},
			Fields: obj("instruction", fmt.Sprintf("row %d %s", n, strings.Repeat("é", n%50)), "ids", []any{int64(n), int64(-n)})})
		n++
	}
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	parts, err := readAll(path)
	if err != nil {
		t.Fatal(err)
	}
	// The same file through the general JSON lines reader, one piece.
	recs, _, err := datasets.ReadFile(path, "json", nil)
	if err != nil {
		t.Fatal(err)
	}
	whole := make([]Row, len(recs))
	for i, rec := range recs {
		if whole[i], err = rowOf(rec.Fields); err != nil {
			t.Fatal(err)
		}
	}
	if len(parts) != n || len(whole) != n {
		t.Fatalf("%d and %d rows, want %d", len(parts), len(whole), n)
	}
	for i := range parts {
		a, b := parts[i], whole[i]
		if a.Dataset != b.Dataset || a.Source != b.Source || a.Source.Row != i ||
			string(datasets.AppendJSON(nil, a.Fields)) != string(datasets.AppendJSON(nil, b.Fields)) {
			t.Fatalf("row %d: %+v != %+v", i, a, b)
		}
	}

	// Damage in a later part is reported at the file's own line.
	lines := strings.SplitAfter(string(data), "\n")
	bad := len(lines) * 3 / 4
	lines[bad] = `{"dataset": -1, "file": "x", "fields": {}}` + "\n"
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readAll(path)
	if want := fmt.Sprintf("rows.jsonl:%d: \"dataset\" is int, want a non-negative integer", bad+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestReadRowsNamesTheLineOfDamage(t *testing.T) {
	good := string(AppendRow(nil, Row{Source: datasets.Source{File: "a.jsonl", Line: 1}, Fields: obj("text", "x\n\"y\"")}))
	for _, c := range []struct{ name, file, want string }{
		{"malformed", good + "\n" + good + `{"dataset": 0, "file": "a"` + "\n", `rows.jsonl:4: malformed JSON at column 27: unexpected end of input in object`},
		{"not an object", good + "[1]\n", `rows.jsonl:2: line holds a JSON list, want an object`},
		{"no fields", good + good + `{"dataset": 0, "file": "a", "line": 1, "row": 0}`, `rows.jsonl:3: a row needs file and fields`},
		{"unknown member", `{"file": "a", "fields": {}, "extra": 1}`, `rows.jsonl:1: unknown member "extra"`},
	} {
		path := filepath.Join(t.TempDir(), "rows.jsonl")
		if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	// Blank lines count as lines and hold no row; escaped strings come back.
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	if err := os.WriteFile(path, []byte("\n"+good+"  \n"+good), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := readAll(path)
	if err != nil || len(rows) != 2 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if v, _ := rows[1].Fields.Get("text"); v != "x\n\"y\"" {
		t.Fatalf("text %q", v)
	}
}

func readAll(path string) ([]Row, error) {
	rows, err := ReadRows(path)
	if err != nil {
		return nil, err
	}
	return rows.All()
}

// TestRowParsedAlone: each row parses on its own to what All gives, its
// errors naming the file's line, blank lines included in the count.
func TestRowParsedAlone(t *testing.T) {
	good := AppendRow(nil, Row{Dataset: 2, Source: datasets.Source{File: "a.jsonl", Line: 7, Row: 6}, Fields: obj("text", "hi")})
	data := append(append(append([]byte("\n \t\n"), good...), "{\"file\": 1}\n\n"...), good...)
	rows := IndexRows(data, "rows.jsonl")
	if rows.Len() != 3 {
		t.Fatalf("%d rows, want 3", rows.Len())
	}
	for _, i := range []int{2, 0} {
		r, err := rows.Row(i)
		if err != nil || r.Dataset != 2 || r.Source != (datasets.Source{File: "a.jsonl", Line: 7, Row: 6}) {
			t.Fatalf("row %d: %+v, %v", i, r, err)
		}
	}
	if _, err := rows.Row(1); err == nil || !strings.Contains(err.Error(), `rows.jsonl:4: "file" is int`) {
		t.Fatalf("row 1: error %v", err)
	}
	if _, err := rows.All(); err == nil || !strings.Contains(err.Error(), "rows.jsonl:4:") {
		t.Fatalf("All: error %v", err)
	}
	var none *Rows
	if none.Len() != 0 {
		t.Fatal("nil rows have rows")
	}
	back, err := RowsOf([]Row{{Dataset: 1, Source: datasets.Source{File: "b", Line: 2, Row: 1}, Fields: obj("k", "v")}}).All()
	if err != nil || len(back) != 1 || back[0].Dataset != 1 || back[0].Source.File != "b" {
		t.Fatalf("RowsOf: %+v, %v", back, err)
	}
}

// FuzzRows feeds arbitrary bytes to the rows reader: indexing never fails
// or panics, every non-blank line is a row, each row parses on its own or
// names its line, All fails exactly when a row does, and a row that parses
// encodes back to a line that reads the same.
func FuzzRows(f *testing.F) {
	good := AppendRow(nil, Row{Dataset: 1, Source: datasets.Source{File: "a.jsonl", Line: 3, Row: 2}, Fields: obj("text", "x\n\"y\" é")})
	for _, s := range []string{string(good), string(good) + "\n \t\n" + string(good), `{"file": 1}`, "\r\n{", `{"dataset":0,"file":"","line":0,"row":0,"fields":{}}` + "\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows := IndexRows(data, "rows.jsonl")
		lines := 0
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Trim(line, " \t\r") != "" {
				lines++
			}
		}
		if rows.Len() != lines {
			t.Fatalf("%d rows in %d non-blank lines", rows.Len(), lines)
		}
		bad := false
		for i := range rows.Len() {
			r, err := rows.Row(i)
			if err != nil {
				bad = true
				if !strings.HasPrefix(err.Error(), "rows: rows.jsonl:") {
					t.Fatalf("row %d: error %q does not name the line", i, err)
				}
				continue
			}
			back, err := IndexRows(AppendRow(nil, r), "again").Row(0)
			if err != nil || back.Dataset != r.Dataset || back.Source != r.Source ||
				string(datasets.AppendJSON(nil, back.Fields)) != string(datasets.AppendJSON(nil, r.Fields)) {
				t.Fatalf("row %d does not read back: %+v, %v", i, back, err)
			}
		}
		if _, err := rows.All(); (err != nil) != bad {
			t.Fatalf("All: error %v, a row failing: %v", err, bad)
		}
	})
}
