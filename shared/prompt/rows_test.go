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
	parts, err := ReadRows(path)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := readRows(path)
	if err != nil {
		t.Fatal(err)
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
	_, err = ReadRows(path)
	if want := fmt.Sprintf("rows.jsonl:%d: \"dataset\" is int, want a non-negative integer", bad+1); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}
