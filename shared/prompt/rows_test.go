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

// TestReadRowsInPartsEqualsOnePiece: a rows file large enough to be read
// and decoded in parts gives back every row as written, in order; damage
// in a later part names that row and its byte.
func TestReadRowsInPartsEqualsOnePiece(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // four parts whatever the machine
	var data []byte
	var want []Row
	var starts []int
	for len(data) < parallelReadBytes+(1<<20) {
		n := len(want)
		r := Row{Dataset: n % 3, Source: datasets.Source{File: "src.jsonl", Line: n + 1, Row: n},
			Fields: obj("instruction", fmt.Sprintf("row %d %s", n, strings.Repeat("é", n%50)), "ids", []any{int64(n), int64(-n)})}
		starts = append(starts, len(data))
		data = AppendRow(data, r)
		want = append(want, r)
	}
	path := filepath.Join(t.TempDir(), "rows.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if !sameRow(got[i], want[i]) {
			t.Fatalf("row %d: %+v != %+v", i, got[i], want[i])
		}
	}

	// Damage in a later part: the fields' tag of row bad.
	bad := len(want) * 3 / 4
	fields := len(datasets.AppendBinary(nil, want[bad].Fields)) // records of < 128 bytes: a one-byte length
	data[starts[bad]+len(AppendRow(nil, want[bad]))-fields] = '?'
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = readAll(path)
	if want := fmt.Sprintf("rows.bin: row %d (byte %d): fields: binary value: byte 0: unknown tag '?'", bad, starts[bad]); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func sameRow(a, b Row) bool {
	return a.Dataset == b.Dataset && a.Source == b.Source &&
		string(datasets.AppendJSON(nil, a.Fields)) == string(datasets.AppendJSON(nil, b.Fields))
}

// TestRowsNameTheRowOfDamage: each kind of damage is an error naming the
// file, the row and its byte; the rows before it still decode.
func TestRowsNameTheRowOfDamage(t *testing.T) {
	good := AppendRow(nil, Row{Dataset: 1, Source: datasets.Source{File: "a.jsonl", Line: 1}, Fields: obj("text", "x\n\"y\"")})
	record := func(body []byte) []byte { return append([]byte{byte(len(body))}, body...) }
	second := fmt.Sprintf("row 1 (byte %d): ", len(good)) // where its record (its length) starts
	header := []byte{1, 2, 3, 1, 'f'}                     // dataset 1, line 2, row 3, file "f"
	for _, c := range []struct {
		name string
		tail []byte
		want string
	}{
		{"cut", good[:len(good)-1], fmt.Sprintf("row 1 (byte %d): its length runs past the end of the file", len(good))},
		{"not an object", record(append(header, datasets.AppendBinary(nil, []any{"x"})...)), second + "the fields are a list, want an object"},
		{"bytes after", record(append(append(header, datasets.AppendBinary(nil, datasets.Object{})...), 'n')), second + "1 bytes follow the fields"},
		{"header cut", record([]byte{1, 2}), second + "the record ends in its header"},
		{"file too long", record([]byte{1, 2, 3, 9, 'f'}), second + "the header's numbers [1 2 3 9] are out of range"},
		{"fields cut", record(append(header, 'o', 2)), second + "fields: binary value: byte 2: a count of 2 with 0 bytes left"},
	} {
		rows := IndexRows(append(append([]byte{}, good...), c.tail...), "rows.bin")
		if r, err := rows.Row(0); err != nil || r.Source.File != "a.jsonl" {
			t.Errorf("%s: row 0: %+v, %v", c.name, r, err)
		}
		if _, err := rows.Row(1); err == nil || !strings.Contains(err.Error(), "rows: rows.bin: "+c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if _, err := rows.All(); err == nil {
			t.Errorf("%s: All decoded a damaged file", c.name)
		}
	}
}

func readAll(path string) ([]Row, error) {
	rows, err := ReadRows(path)
	if err != nil {
		return nil, err
	}
	return rows.All()
}

// TestRowDecodedAlone: each row decodes on its own to what All gives, a
// long record (its length takes more than one byte) included; no rows is
// no rows.
func TestRowDecodedAlone(t *testing.T) {
	rows := []Row{
		{Dataset: 2, Source: datasets.Source{File: "a.jsonl", Line: 7, Row: 6}, Fields: obj("text", "hi")},
		{Dataset: 0, Source: datasets.Source{File: "", Line: 1 << 40, Row: 0}, Fields: obj("text", strings.Repeat("long ", 100), "n", nil)},
		{Dataset: 1, Source: datasets.Source{File: "b", Line: 2, Row: 1}, Fields: obj("k", "v")},
	}
	all := RowsOf(rows)
	for _, i := range []int{2, 0, 1} {
		r, err := all.Row(i)
		if err != nil || !sameRow(r, rows[i]) {
			t.Fatalf("row %d: %+v, %v", i, r, err)
		}
	}
	back, err := all.All()
	if err != nil || len(back) != 3 || !sameRow(back[1], rows[1]) {
		t.Fatalf("All: %+v, %v", back, err)
	}
	var none *Rows
	if none.Len() != 0 || IndexRows(nil, "empty").Len() != 0 {
		t.Fatal("no rows have rows")
	}
}

// FuzzRows feeds arbitrary bytes to the rows reader: indexing never panics
// and its records cover the bytes in order, each row decodes on its own or
// names its row and byte, All fails exactly when a row does, and a row
// that decodes encodes back to a record that reads the same.
func FuzzRows(f *testing.F) {
	good := AppendRow(nil, Row{Dataset: 1, Source: datasets.Source{File: "a.jsonl", Line: 3, Row: 2}, Fields: obj("text", "x\n\"y\" é")})
	for _, s := range [][]byte{good, append(append([]byte{}, good...), good...), good[:len(good)-2], {0}, {5, 1, 2, 3, 0, 'o', 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows := IndexRows(data, "rows.bin")
		bad := false
		for i := range rows.Len() {
			r, err := rows.Row(i)
			if err != nil {
				bad = true
				if !strings.HasPrefix(err.Error(), fmt.Sprintf("rows: rows.bin: row %d (byte ", i)) {
					t.Fatalf("row %d: error %q does not name the row", i, err)
				}
				continue
			}
			back, err := IndexRows(AppendRow(nil, r), "again").Row(0)
			if err != nil || !sameRow(back, r) {
				t.Fatalf("row %d does not read back: %+v, %v", i, back, err)
			}
		}
		if _, err := rows.All(); (err != nil) != bad {
			t.Fatalf("All: error %v, a row failing: %v", err, bad)
		}
		if len(data) > 0 && rows.Len() == 0 {
			t.Fatalf("%d bytes hold no record", len(data))
		}
	})
}
